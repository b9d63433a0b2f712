-- Failures a provider reported, by the error it gave, on the day their run started (as in
-- fct_delivery_performance); plus deliveries blocked before any provider was called (consent
-- withdrawn, channel unconfigured), under provider 'not_sent' on the day they were recorded.
with

attempts as (

    select * from {{ ref('int_delivery_attempts_parsed') }}
    where attempt_outcome != 'delivered'

),

outcomes as (

    select * from {{ ref('int_delivery_outcomes_recorded') }}
    where is_blocked

),

provider_failures as (

    select
        channel,
        provider,
        run_started_date as delivery_date,
        coalesce(error, 'unknown') as error_reason,
        count(*) as failed_attempts,
        count(*) filter (where attempt_outcome = 'transient_failure') as transient_failures,
        count(*) filter (where attempt_outcome = 'permanent_failure') as permanent_failures,
        count(*) filter (where is_final_attempt) as failed_messages,

    from attempts
    group by channel, provider, run_started_date, coalesce(error, 'unknown')

),

blocked as (

    select
        channel,
        'not_sent' as provider,
        finished_date as delivery_date,
        coalesce(error, 'unknown') as error_reason,
        0 as failed_attempts,
        0 as transient_failures,
        0 as permanent_failures,
        count(*) as failed_messages,

    from outcomes
    group by channel, finished_date, coalesce(error, 'unknown')

),

final as (

    select * from provider_failures
    union all
    select * from blocked

)

select * from final
