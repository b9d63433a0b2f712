-- Every decision a distribution (promotion or autopilot) made about one customer: held out
-- (control group), skipped (with its reason) or published. `trigger_failed` is not read: it
-- repeats an autopilot's `offer_skipped` with the same reason, or reports a delivery failure
-- that `delivery_failed` already records.
with

events as (

    select * from {{ ref('stg_ledger__events') }}

),

decisions as (

    select
        event_id as decision_event_id,
        campaign_id,
        customer_id,
        occurred_at as decided_at,
        case event_type
            when 'customer_held_out' then 'held_out'
            when 'offer_skipped' then 'skipped'
            else 'published'
        end as decision,
        case when event_type = 'offer_skipped' then payload->>'reason' end as skip_reason,
        payload->>'source' as source,
        payload->>'trigger_id' as trigger_id,
        voucher_id,
        channel,

    from events
    where
        event_type in ('customer_held_out', 'offer_skipped')
        -- Only publications made by a distribution are decisions; a manual or imported
        -- publication has no audience behind it.
        or (
            event_type = 'voucher_published'
            and payload->>'source' in ('promotion', 'autopilot')
        )

),

final as (

    select * from decisions

)

select * from final
