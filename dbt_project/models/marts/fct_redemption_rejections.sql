-- Rebuilt per attempt (see incremental_entities): a rejection is a projection of its attempt's
-- row in int_redemptions_enriched, recomputed when that row changed since the last build.
{{ config(
    materialized='incremental', incremental_strategy='delete+insert', unique_key='rejection_id',
    post_hook="{{ record_upstream_high_waters(['int_redemptions_enriched']) }}",
) }}

{%- set high_waters = upstream_high_waters() %}

with

attempts as (

    select * from {{ ref('int_redemptions_enriched') }}
    {%- if high_waters is not none %}
    where last_event_seq > {{ high_waters.get('int_redemptions_enriched', 0) }}
    {%- endif %}

),

final as (

    select
        attempt_event_id as rejection_id,
        attempted_at as rejected_at,
        cast(attempted_at as date) as rejected_date,
        campaign_id,
        voucher_id,
        voucher_code,
        customer_id,
        order_id,
        order_amount,
        currency,
        reason_codes,
        primary_reason_code,
        len(reason_codes) as reasons,
        store_id,
        staff_id,
        sales_channel,
        idempotency_key,

    from attempts
    where not is_succeeded

)

select * from final
