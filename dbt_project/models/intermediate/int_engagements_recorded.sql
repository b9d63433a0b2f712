-- One row per engagement event: a message opened or clicked, a visit to the site or app, with
-- the campaign (and voucher) it is attributed to, if any. Read from stg_ledger__events (payload
-- as JSON): few ledgers have these, and those that do have them by the thousand, not million.
with

events as (

    select * from {{ ref('stg_ledger__events') }}
    where event_type in ('message_opened', 'message_clicked', 'site_visited')

),

final as (

    select
        event_id as engagement_event_id,
        event_seq,
        case event_type
            when 'message_opened' then 'opened'
            when 'message_clicked' then 'clicked'
            else 'visited'
        end as engagement,
        occurred_at,
        customer_id,
        campaign_id,
        voucher_id,
        channel,
        payload->>'surface' as surface,

    from events

)

select * from final
