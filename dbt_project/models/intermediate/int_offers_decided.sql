-- Every decision a distribution (promotion or autopilot) made about one customer: held out
-- (control group), skipped (with its reason) or published. `trigger_failed` is not read: it
-- repeats an autopilot's `offer_skipped` with the same reason, or reports a delivery failure
-- that `delivery_failed` already records.
-- A row per event, made from that event alone: appended to like the typed staging tables it
-- reads (see new_ledger_events), whose families share one seq, so one high-water mark serves.
{{ config(materialized='incremental', incremental_strategy='append') }}

with

offers as (

    select * from {{ ref('stg_ledger__offer_events') }}

),

vouchers as (

    select * from {{ ref('stg_ledger__voucher_events') }}

),

decision_events as (

    select event_seq, event_id, event_type, campaign_id, customer_id, occurred_at, reason,
        source, trigger_id, voucher_id, channel,
    from offers
    where event_type in ('customer_held_out', 'offer_skipped')
    {{ new_ledger_events() }}

    union all

    select event_seq, event_id, event_type, campaign_id, customer_id, occurred_at,
        null as reason, source, trigger_id, voucher_id, channel,
    from vouchers
    -- Only publications made by a distribution are decisions; a manual or imported
    -- publication has no audience behind it.
    where event_type = 'voucher_published' and source in ('promotion', 'autopilot')
    {{ new_ledger_events() }}

),

decisions as (

    select
        event_seq,
        event_id as decision_event_id,
        campaign_id,
        customer_id,
        occurred_at as decided_at,
        case event_type
            when 'customer_held_out' then 'held_out'
            when 'offer_skipped' then 'skipped'
            else 'published'
        end as decision,
        case when event_type = 'offer_skipped' then reason end as skip_reason,
        source,
        trigger_id,
        voucher_id,
        channel,

    from decision_events

),

final as (

    select * from decisions

)

select * from final
