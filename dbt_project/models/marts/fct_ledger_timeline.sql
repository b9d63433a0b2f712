-- One row per ledger event, slim: the ids it concerns and one line of text saying what
-- happened, for Diagnostics and the detail pages' histories. The payload itself stays in the
-- build warehouse (one row per event: at scale this is the largest published table).
with

events as (

    select * from {{ ref('stg_ledger__events') }}

),

described as (

    select
        event_seq,
        event_id,
        occurred_at,
        event_type,
        campaign_id,
        voucher_id,
        customer_id,
        order_id,
        channel,
        redemption_id,
        store_id,
        staff_id,
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
            when 'voucher_created'
                then 'created ' || coalesce(payload->>'kind', '') || ' voucher '
                || coalesce(payload->>'code', '?')
                || coalesce(' (' || (payload->>'source') || ')', '')
            when 'voucher_published'
                then 'published ' || coalesce(payload->>'code', '?')
                || coalesce(' by ' || (payload->>'source'), '')
                || coalesce(' via ' || channel, '')
            when 'voucher_accepted'
                then 'accepted ' || coalesce(payload->>'code', '?')
            when 'voucher_disabled'
                then 'disabled ' || coalesce(payload->>'code', '?')
                || coalesce(': ' || nullif(payload->>'note', ''), '')
            when 'voucher_enabled'
                then 'enabled ' || coalesce(payload->>'code', '?')
                || coalesce(': ' || nullif(payload->>'note', ''), '')
            when 'gift_card_topped_up'
                then 'topped up ' || {{ format_money("cast(payload->>'amount' as bigint)", 'null') }}
                || ', balance ' || {{ format_money("cast(payload->>'balance' as bigint)", 'null') }}
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
            when 'redemption_succeeded'
                then 'redeemed: '
                || case
                    when coalesce(cast(payload->>'gift_amount' as bigint), 0) > 0
                        then 'gift card '
                        || {{ format_money("cast(payload->>'gift_amount' as bigint)", "payload->>'currency'") }}
                    else 'discount '
                        || {{ format_money("cast(payload->>'discount' as bigint)", "payload->>'currency'") }}
                end
                || coalesce(
                    ' on order '
                    || {{ format_money("cast(payload->'order'->>'amount' as bigint)", "payload->'order'->>'currency'") }},
                    ''
                )
            when 'redemption_rejected'
                then 'rejected: ' || coalesce(
                    nullif(array_to_string(
                        cast(json_extract_string(payload, '$.reasons[*].code') as varchar[]),
                        ', '
                    ), ''),
                    '?'
                )
            when 'redemption_rolled_back'
                then 'rolled back: '
                || {{ format_money("cast(payload->>'discount' as bigint) + coalesce(cast(payload->>'gift_amount' as bigint), 0)", 'null') }}
                || ' given back'
                || coalesce(' (' || nullif(payload->>'reason', '') || ')', '')
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
            when 'order_recorded'
                then 'order '
                || {{ format_money("cast(payload->>'amount' as bigint)", "payload->>'currency'") }}
                || ', ' || coalesce(json_array_length(payload->'items'), 0) || ' lines'
            when 'order_refunded'
                then 'refunded ' || {{ format_money("cast(payload->>'amount' as bigint)", 'null') }}
                || coalesce(': ' || nullif(payload->>'reason', ''), '')
            when 'order_cancelled'
                then 'cancelled' || coalesce(': ' || nullif(payload->>'reason', ''), '')
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
            when 'trigger_matched'
                then 'trigger matched: ' || coalesce(payload->>'trigger', '?')
            when 'trigger_completed'
                then 'trigger completed' || case
                    when payload->>'outcome' = 'completed' then ''
                    else coalesce(': ' || (payload->>'outcome'), '')
                end
            when 'trigger_failed'
                then 'trigger failed: ' || coalesce(payload->>'reason', '?')
            when 'customer_held_out'
                then 'held out (control group)' || coalesce(' by ' || (payload->>'source'), '')
            when 'offer_skipped'
                then 'skipped: ' || coalesce(payload->>'reason', '?')
            when 'delivery_attempted'
                then 'attempt ' || coalesce(payload->>'attempt', '?')
                || coalesce(' via ' || (payload->>'provider'), '') || ': '
                || coalesce(payload->>'outcome', '?')
                || coalesce(' (' || nullif(payload->>'error', '') || ')', '')
            when 'voucher_delivered'
                then 'delivered' || coalesce(' via ' || (payload->>'provider'), '')
                || case
                    when cast(payload->>'attempts' as integer) > 1
                        then ' after ' || (payload->>'attempts') || ' attempts'
                    else ''
                end
            when 'delivery_failed'
                then case
                    when coalesce(cast(payload->>'attempts' as integer), 0) = 0
                        then 'delivery blocked'
                    when cast(payload->>'attempts' as integer) = 1
                        then 'delivery failed after 1 attempt'
                    else 'delivery failed after ' || (payload->>'attempts') || ' attempts'
                end
                || coalesce(': ' || nullif(payload->>'error', ''), '')
            when 'fraud_review_recorded'
                then 'review: ' || coalesce(payload->>'decision', '?') || ' on '
                || coalesce(payload->>'entity_type', '?') || ' '
                || coalesce(payload->>'entity_id', '?')
                || coalesce(' by ' || (payload->>'reviewer'), '')
                || coalesce(': ' || nullif(payload->>'note', ''), '')
            else replace(event_type, '_', ' ')
        end as detail,

    from events

),

final as (

    select * from described

)

select * from final
