-- reads several models; Dagster shows it as a check on fct_delivery_failures
{{ config(meta={'dagster': {'ref': {'name': 'fct_delivery_failures'}}}) }}

-- Failed messages by error add up to the failed messages of delivery performance.
with

failures as (

    select channel, provider, delivery_date, sum(failed_messages) as failed
    from {{ ref('fct_delivery_failures') }}
    where provider != 'not_sent'
    group by all

)

select performance.channel, performance.provider, performance.delivery_date
from {{ ref('fct_delivery_performance') }} as performance
full outer join failures
    on performance.channel = failures.channel
    and performance.provider = failures.provider
    and performance.delivery_date = failures.delivery_date
where coalesce(performance.failed, 0) != coalesce(failures.failed, 0)
