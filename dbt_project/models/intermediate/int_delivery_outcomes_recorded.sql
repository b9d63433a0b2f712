-- Blocked deliveries (consent withdrawn or channel unconfigured at send time) have no
-- provider and no attempts: they never reached a provider.
-- A row per event, made from that event alone: appended to (see new_ledger_events).
{{ config(materialized='incremental', incremental_strategy='append') }}

with

events as (

    select * from {{ ref('stg_ledger__delivery_events') }}
    where event_type in ('voucher_delivered', 'delivery_failed')
    {{ new_ledger_events() }}

),

final as (

    select
        event_id as delivery_outcome_id,
        event_seq,
        occurred_at as finished_at,
        cast(occurred_at as date) as finished_date,
        campaign_id,
        voucher_id,
        customer_id,
        channel,
        provider,
        case event_type
            when 'voucher_delivered' then 'delivered'
            else 'failed'
        end as delivery_outcome,
        attempts,
        latency_ms,
        error,
        coalesce(attempts, 0) = 0 as is_blocked,

    from events

)

select * from final
