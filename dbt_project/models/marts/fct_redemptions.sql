with

attempts as (

    select * from {{ ref('int_redemptions_enriched') }}

),

orders as (

    select order_id from {{ ref('int_orders_recorded') }}

),

final as (

    select
        attempts.redemption_id,
        attempts.attempted_at as redeemed_at,
        cast(attempts.attempted_at as date) as redeemed_date,
        attempts.campaign_id,
        attempts.voucher_id,
        attempts.voucher_code,
        attempts.customer_id,
        attempts.order_id,
        -- false for a redemption naming an order the ledger never recorded (or none at all):
        -- it is not on the Orders page, which says so
        orders.order_id is not null as is_order_recorded,
        attempts.order_amount,
        attempts.discount,
        attempts.gift_amount,
        attempts.currency,
        attempts.store_id,
        attempts.staff_id,
        attempts.sales_channel,
        attempts.is_rolled_back,
        attempts.rolled_back_at,
        attempts.rollback_reason,
        attempts.rollback_cause,
        attempts.rolled_back_discount,
        attempts.rolled_back_gift_amount,
        attempts.net_discount,
        attempts.net_gift_amount,
        attempts.are_amounts_known,

    from attempts
    left join orders
        on attempts.order_id = orders.order_id
    where attempts.is_succeeded

)

select * from final
