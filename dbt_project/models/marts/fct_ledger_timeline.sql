-- One row per ledger event, slim: the ids it concerns and one line of text saying what
-- happened, for Diagnostics and the detail pages' histories. The payload itself stays in the
-- build warehouse (one row per event: at scale this is the largest published table).
-- An event's line never changes once written, so the table is appended to with each new
-- event. The frequent event families are described from their typed staging tables (payload
-- parsed once); the rare rest from stg_ledger__events.
{{ config(materialized='incremental', incremental_strategy='append') }}

with

{#- the typed staging table of each frequent family, from its first event not yet here -#}
{%- for family in ledger_event_families() %}
{{ family }}_events as (

    select * from {{ ref('stg_ledger__' ~ family ~ '_events') }}
    where true {{ new_ledger_events() }}

),
{% endfor %}
other_events as (

    select * from {{ ref('stg_ledger__events') }}
    where event_type not in {{ ledger_event_types() }}
    {{ new_ledger_events() }}

),

described_orders as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'order_recorded'
                then 'order '
                || {{ format_money('amount', 'currency') }}
                || ', ' || coalesce(len(items), 0) || ' lines'
            when 'order_refunded'
                then 'refunded ' || {{ format_money('amount', 'null') }}
                || coalesce(': ' || nullif(reason, ''), '')
            when 'order_cancelled'
                then 'cancelled' || coalesce(': ' || nullif(reason, ''), '')
            else replace(event_type, '_', ' ')
        end as detail,

    from order_events

),

described_deliveries as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'delivery_attempted'
                then 'attempt ' || coalesce(cast(attempt as varchar), '?')
                || coalesce(' via ' || provider, '') || ': '
                || coalesce(outcome, '?')
                || coalesce(' (' || nullif(error, '') || ')', '')
            when 'voucher_delivered'
                then 'delivered' || coalesce(' via ' || provider, '')
                || case
                    when attempts > 1 then ' after ' || cast(attempts as varchar) || ' attempts'
                    else ''
                end
            when 'delivery_failed'
                then case
                    when coalesce(attempts, 0) = 0 then 'delivery blocked'
                    when attempts = 1 then 'delivery failed after 1 attempt'
                    else 'delivery failed after ' || cast(attempts as varchar) || ' attempts'
                end
                || coalesce(': ' || nullif(error, ''), '')
            else replace(event_type, '_', ' ')
        end as detail,

    from delivery_events

),

described_vouchers as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'voucher_created'
                then 'created ' || coalesce(kind, '') || ' voucher '
                || coalesce(code, '?')
                || coalesce(' (' || source || ')', '')
            when 'voucher_published'
                then 'published ' || coalesce(code, '?')
                || coalesce(' by ' || source, '')
                || coalesce(' via ' || channel, '')
            when 'voucher_accepted'
                then 'accepted ' || coalesce(code, '?')
            when 'voucher_disabled'
                then 'disabled ' || coalesce(code, '?')
                || coalesce(': ' || nullif(note, ''), '')
            when 'voucher_enabled'
                then 'enabled ' || coalesce(code, '?')
                || coalesce(': ' || nullif(note, ''), '')
            when 'gift_card_topped_up'
                then 'topped up ' || {{ format_money('amount', 'null') }}
                || ', balance ' || {{ format_money('balance', 'null') }}
            else replace(event_type, '_', ' ')
        end as detail,

    from voucher_events

),

described_redemptions as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'redemption_succeeded'
                then 'redeemed: '
                || case
                    when coalesce(gift_amount, 0) > 0
                        then 'gift card ' || {{ format_money('gift_amount', 'currency') }}
                    else 'discount ' || {{ format_money('discount', 'currency') }}
                end
                || coalesce(' on order ' || {{ format_money('order_amount', 'order_currency') }}, '')
            when 'redemption_rejected'
                then 'rejected: ' || coalesce(nullif(array_to_string(reason_codes, ', '), ''), '?')
            when 'redemption_rolled_back'
                then 'rolled back: '
                || {{ format_money('discount + coalesce(gift_amount, 0)', 'null') }}
                || ' given back'
                || coalesce(' (' || nullif(reason, '') || ')', '')
            else replace(event_type, '_', ' ')
        end as detail,

    from redemption_events

),

described_offers as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'customer_held_out'
                then 'held out (control group)' || coalesce(' by ' || source, '')
            when 'offer_skipped'
                then 'skipped: ' || coalesce(reason, '?')
            when 'trigger_matched'
                then 'trigger matched: ' || coalesce(trigger, '?')
            when 'trigger_completed'
                then 'trigger completed' || case
                    when outcome = 'completed' then ''
                    else coalesce(': ' || outcome, '')
                end
            when 'trigger_failed'
                then 'trigger failed: ' || coalesce(reason, '?')
            else replace(event_type, '_', ' ')
        end as detail,

    from offer_events

),

described_others as (

    select
        {{ timeline_ids() }}
        case event_type
            when 'main_campaign_created'
                then 'main campaign created: ' || coalesce(payload->'definition'->>'name', '?')
            when 'campaign_created'
                then 'created: ' || coalesce(payload->'definition'->>'name', '?')
                || ', ' || coalesce(payload->'definition'->'voucher'->>'kind', '?')
                || ' vouchers, ' || coalesce(payload->'definition'->'discount'->>'type', '?')
                || ' discount, status ' || coalesce(payload->'definition'->>'status', '?')
            when 'campaign_status_changed'
                then 'status: ' || coalesce(payload->>'previous', '?')
                || ' → ' || coalesce(payload->>'status', '?')
            when 'segment_member_added'
                then 'joined segment ' || coalesce(payload->>'segment_id', '?')
            when 'segment_member_removed'
                then 'left segment ' || coalesce(payload->>'segment_id', '?')
            when 'voucher_validated'
                then case
                    when cast(payload->>'valid' as boolean)
                        then 'validated ' || coalesce(payload->>'code', '?') || ': discount '
                        || {{ format_money("cast(payload->>'discount' as bigint)", "payload->>'currency'") }}
                    else 'validation failed: ' || coalesce(
                        array_to_string(
                            cast(json_extract_string(payload, '$.reasons[*].code') as varchar[]),
                            ', '
                        ),
                        '?'
                    )
                end
            when 'validation_hold_created'
                then 'hold on ' || coalesce(payload->>'code', '?') || ' until '
                || coalesce(payload->>'expires_at', '?')
            when 'rollback_rejected'
                then 'rollback rejected: ' || coalesce(
                    nullif(array_to_string(
                        cast(json_extract_string(payload, '$.reasons[*].code') as varchar[]),
                        ', '
                    ), ''),
                    payload->>'reason',
                    '?'
                )
            when 'customer_created'
                then 'customer created'
                || coalesce(', home store ' || (payload->'attributes'->>'store'), '')
            when 'customer_updated'
                then 'customer updated: ' || array_to_string(json_keys(payload), ', ')
            when 'consent_changed'
                then 'consent ' || coalesce(payload->>'channel', channel, '?')
                || case when cast(payload->>'granted' as boolean) then ' granted' else ' withdrawn' end
                || coalesce(' (' || (payload->>'source') || ')', '')
            when 'segment_defined'
                then 'segment defined: ' || coalesce(payload->'definition'->>'id', '?')
            when 'frequency_cap_set'
                then 'frequency cap: ' || coalesce(payload->>'max_offers', '?')
                || ' offers per ' || coalesce(payload->>'days', '?') || ' days'
            when 'promotion_started'
                then 'promotion started: audience ' || coalesce(payload->>'audience', '?')
            when 'promotion_finished'
                then 'promotion finished: ' || coalesce(payload->>'published', '0')
                || ' published, ' || coalesce(payload->>'held_out', '0') || ' held out, '
                || coalesce(payload->>'delivered', '0') || ' delivered, '
                || coalesce(payload->>'failed', '0') || ' failed'
            when 'fraud_review_recorded'
                then 'review: ' || coalesce(payload->>'decision', '?') || ' on '
                || coalesce(payload->>'entity_type', '?') || ' '
                || coalesce(payload->>'entity_id', '?')
                || coalesce(' by ' || (payload->>'reviewer'), '')
                || coalesce(': ' || nullif(payload->>'note', ''), '')
            else replace(event_type, '_', ' ')
        end as detail,

    from other_events

),

final as (

    select * from described_orders
    union all
    select * from described_deliveries
    union all
    select * from described_vouchers
    union all
    select * from described_redemptions
    union all
    select * from described_offers
    union all
    select * from described_others

)

select * from final
