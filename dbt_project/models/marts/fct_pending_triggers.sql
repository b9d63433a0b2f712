with

triggers as (

    select * from {{ ref('int_triggers_tracked') }}
    where trigger_status = 'pending'

),

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

final as (

    select
        triggers.trigger_id,
        triggers.campaign_id,
        campaigns.campaign_name,
        triggers.customer_id,
        triggers.trigger_type,
        triggers.matched_at,
        date_diff('millisecond', triggers.matched_at, ledger.as_of) / 3600000.0 as age_hours,
        ledger.as_of,

    from triggers
    cross join ledger
    left join campaigns
        on triggers.campaign_id = campaigns.campaign_id

)

select * from final
