with

attempts as (

    select * from {{ ref('int_redemptions_enriched') }}

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
