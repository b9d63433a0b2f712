-- A delivery run is one send of a voucher with its retries. Attempt numbers restart at 1 when
-- a failed delivery is re-sent (retry_deliveries) or resumed after a crash, so a new run
-- starts at every attempt numbered 1, in ledger order. Rebuilt per voucher (see
-- incremental_entities): a new attempt renumbers its voucher's runs, so all the attempts of a
-- voucher with a new one are recomputed (those without a voucher every time; there are none).
{{ config(
    materialized='incremental', incremental_strategy='delete+insert',
    unique_key='delivery_attempt_id',
) }}

{%- set high_water = entity_high_water('event_seq') %}

with

events as (

    select * from {{ ref('stg_ledger__delivery_events') }}
    where event_type = 'delivery_attempted'
    {%- if high_water is not none %}
        and (
            voucher_id in (
                select voucher_id from {{ ref('stg_ledger__delivery_events') }}
                where event_type = 'delivery_attempted' and event_seq > {{ high_water }}
            )
            or voucher_id is null
        )
    {%- endif %}

),

parsed as (

    select
        event_id as delivery_attempt_id,
        event_seq,
        occurred_at as attempted_at,
        campaign_id,
        voucher_id,
        customer_id,
        channel,
        provider,
        attempt as attempt_number,
        latency_ms,
        backoff_ms,
        outcome as attempt_outcome,
        error,

    from events

),

numbered as (

    select
        *,
        count(*) filter (where attempt_number = 1) over (
            partition by voucher_id order by event_seq rows unbounded preceding
        ) as delivery_run_number,

    from parsed

),

final as (

    select
        delivery_attempt_id,
        event_seq,
        attempted_at,
        cast(attempted_at as date) as attempted_date,
        campaign_id,
        voucher_id,
        customer_id,
        channel,
        provider,
        attempt_number,
        latency_ms,
        backoff_ms,
        attempt_outcome,
        error,
        voucher_id || ':' || delivery_run_number as delivery_run_id,
        min(attempted_at) over (
            partition by voucher_id, delivery_run_number
        ) as run_started_at,
        cast(min(attempted_at) over (
            partition by voucher_id, delivery_run_number
        ) as date) as run_started_date,
        event_seq = max(event_seq) over (
            partition by voucher_id, delivery_run_number
        ) as is_final_attempt,

    from numbered

)

select * from final
