with

attempts as (

    select * from {{ ref('int_redemptions_enriched') }}

),

final as (

    select
        redemption_id,
        attempted_at as redeemed_at,
        cast(attempted_at as date) as redeemed_date,
        campaign_id,
        voucher_id,
        voucher_code,
        customer_id,
        order_id,
        order_amount,
        discount,
        gift_amount,
        currency,
        store_id,
        staff_id,
        sales_channel,
        is_rolled_back,
        rolled_back_at,
        rollback_reason,
        rollback_cause,
        rolled_back_discount,
        rolled_back_gift_amount,
        net_discount,
        net_gift_amount,
        are_amounts_known,

    from attempts
    where is_succeeded

)

select * from final
