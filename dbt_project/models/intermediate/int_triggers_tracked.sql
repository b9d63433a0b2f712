with

events as (

    select * from {{ ref('stg_ledger__offer_events') }}
    where event_type in ('trigger_matched', 'trigger_completed', 'trigger_failed')

),

matched as (

    select
        trigger_id as trigger_id,
        campaign_id,
        customer_id,
        trigger as trigger_type,
        occurred_at as matched_at,

    from events
    where event_type = 'trigger_matched'

),

closed as (

    select
        trigger_id as trigger_id,
        occurred_at as closed_at,
        voucher_id,
        case
            when event_type = 'trigger_failed' then 'failed'
            else outcome
        end as trigger_status,
        case when event_type = 'trigger_failed' then reason end as failure_reason,

    from events
    where event_type in ('trigger_completed', 'trigger_failed')
    -- A trigger is closed once; should a second closing ever appear, the first one counts.
    qualify row_number() over (partition by trigger_id order by event_seq) = 1

),

final as (

    select
        matched.trigger_id,
        matched.campaign_id,
        matched.customer_id,
        matched.trigger_type,
        matched.matched_at,
        coalesce(closed.trigger_status, 'pending') as trigger_status,
        closed.closed_at,
        closed.failure_reason,
        closed.voucher_id,
        date_diff('millisecond', matched.matched_at, closed.closed_at) / 3600000.0
            as hours_to_close,

    from matched
    left join closed
        on matched.trigger_id = closed.trigger_id

)

select * from final
