-- One row per voucher published to a customer, with what happened to it since: delivery,
-- acceptance and redemptions. A voucher is published at most once (the core refuses to
-- publish it to a second holder). Rebuilt per voucher (see incremental_entities): a voucher is
-- recomputed when any of its events is new, or its campaign's definition (expires_at).
{{ config(
    materialized='incremental', incremental_strategy='delete+insert', unique_key='voucher_id',
) }}

-- depends_on: {{ ref('stg_ledger__events') }}
{%- set high_water = entity_high_water() %}

with

{% if high_water is not none -%}
touched as (

    select voucher_id from {{ ref('stg_ledger__voucher_events') }}
    where event_seq > {{ high_water }}

    union

    select voucher_id from {{ ref('stg_ledger__delivery_events') }}
    where event_seq > {{ high_water }}

    union

    select voucher_id from {{ ref('stg_ledger__redemption_events') }}
    where event_seq > {{ high_water }}

    union

    select voucher_id from {{ ref('stg_ledger__voucher_events') }}
    where event_type = 'voucher_published'
        and campaign_id in (
            select campaign_id from {{ ref('stg_ledger__events') }}
            where event_type = 'campaign_created' and event_seq > {{ high_water }}
        )

),

{% endif -%}
vouchers as (

    select * from {{ ref('stg_ledger__voucher_events') }}
    {%- if high_water is not none %}
    where voucher_id in (select voucher_id from touched)
    {%- endif %}

),

deliveries as (

    select * from {{ ref('stg_ledger__delivery_events') }}
    {%- if high_water is not none %}
    where voucher_id in (select voucher_id from touched)
    {%- endif %}

),

redemptions as (

    select * from {{ ref('stg_ledger__redemption_events') }}
    {%- if high_water is not none %}
    where voucher_id in (select voucher_id from touched)
    {%- endif %}

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

published as (

    select
        voucher_id,
        campaign_id,
        customer_id,
        channel,
        -- Distribution says promotion/autopilot, `promo import` says import; a publication
        -- by hand (`promo voucher publish`) carries no source.
        coalesce(source, 'manual') as source,
        trigger_id,
        code as voucher_code,
        occurred_at as published_at,
        event_seq,

    from vouchers
    where event_type = 'voucher_published'
    qualify row_number() over (partition by voucher_id order by event_seq) = 1

),

later_events as (

    select voucher_id, event_type, occurred_at, event_seq,
    from vouchers
    where event_type in ('voucher_accepted', 'voucher_disabled', 'voucher_enabled')

    union all

    select voucher_id, event_type, occurred_at, event_seq,
    from deliveries

    union all

    select voucher_id, event_type, occurred_at, event_seq,
    from redemptions

),

voucher_events as (

    select
        voucher_id,
        min(occurred_at) filter (where event_type = 'voucher_delivered') as delivered_at,
        max(occurred_at) filter (where event_type = 'delivery_failed') as last_delivery_failed_at,
        count(*) filter (where event_type = 'delivery_attempted') as delivery_attempts,
        min(occurred_at) filter (where event_type = 'voucher_accepted') as accepted_at,
        min(occurred_at) filter (where event_type = 'redemption_succeeded') as first_redeemed_at,
        count(*) filter (where event_type = 'redemption_succeeded') as redemptions,
        count(*) filter (where event_type = 'redemption_rolled_back') as rolled_back_redemptions,
        count(*) filter (where event_type = 'redemption_rejected') as rejected_attempts,
        min(occurred_at) filter (where event_type = 'redemption_rejected') as first_rejected_at,
        max(occurred_at) filter (where event_type = 'voucher_disabled') as last_disabled_at,
        max(occurred_at) filter (where event_type = 'voucher_enabled') as last_enabled_at,
        max(event_seq) as last_event_seq,

    from later_events
    where voucher_id is not null
    group by voucher_id

),

joined as (

    select
        published.voucher_id,
        published.campaign_id,
        published.customer_id,
        published.channel,
        published.source,
        published.trigger_id,
        published.voucher_code,
        published.published_at,
        -- Known only where the campaign limits validity after publication; the campaign's own
        -- end (active_until) bounds it too.
        least(
            published.published_at
            + to_days(campaigns.valid_days_after_publication),
            campaigns.active_until
        ) as expires_at,
        voucher_events.delivered_at,
        -- Final: a failure later followed by a delivery (a resumed send) is no failure.
        case
            when voucher_events.delivered_at is null
                or voucher_events.last_delivery_failed_at > voucher_events.delivered_at
                then voucher_events.last_delivery_failed_at
        end as delivery_failed_at,
        coalesce(voucher_events.delivery_attempts, 0) as delivery_attempts,
        voucher_events.accepted_at,
        voucher_events.first_redeemed_at,
        coalesce(voucher_events.redemptions, 0) as redemptions,
        coalesce(voucher_events.rolled_back_redemptions, 0) as rolled_back_redemptions,
        coalesce(voucher_events.redemptions, 0)
        - coalesce(voucher_events.rolled_back_redemptions, 0) as standing_redemptions,
        coalesce(voucher_events.rejected_attempts, 0) as rejected_attempts,
        voucher_events.first_rejected_at,
        voucher_events.last_disabled_at is not null
        and (
            voucher_events.last_enabled_at is null
            or voucher_events.last_disabled_at > voucher_events.last_enabled_at
        ) as is_disabled,
        -- the newest of the voucher's own events in the row: what entity_high_water reads
        greatest(published.event_seq, voucher_events.last_event_seq) as last_event_seq,

    from published
    left join voucher_events
        on published.voucher_id = voucher_events.voucher_id
    left join campaigns
        on published.campaign_id = campaigns.campaign_id

),

final as (

    select
        *,
        case
            when delivered_at is not null and delivery_failed_at is null then 'delivered'
            when delivery_failed_at is not null then 'failed'
            else 'pending'
        end as delivery_status,

    from joined

)

select * from final
