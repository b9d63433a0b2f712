-- The console's order browser: every order recorded in the ledger, with the vouchers redeemed
-- on it. Amounts are integer minor units of `currency`; `amount` is before any discount.
-- Voucher columns count successful redemptions, rolled back or not (a cancellation rolls
-- them back); `discount_net` is what stands after rollbacks. Redemptions that name an order
-- the ledger never recorded are not here (they are in fct_redemptions).
-- Rebuilt per order (see incremental_entities): an order is recomputed when its row in
-- int_orders_recorded or a redemption attempt naming it changed since the last build.
{{ config(
    materialized='incremental', incremental_strategy='delete+insert', unique_key='order_id',
    post_hook="{{ record_upstream_high_waters(['int_orders_recorded', 'int_redemptions_enriched']) }}",
) }}

{%- set high_waters = upstream_high_waters() %}

with

{% if high_waters is not none -%}
touched as (

    select order_id from {{ ref('int_orders_recorded') }}
    where last_event_seq > {{ high_waters.get('int_orders_recorded', 0) }}

    union

    select order_id from {{ ref('int_redemptions_enriched') }}
    where last_event_seq > {{ high_waters.get('int_redemptions_enriched', 0) }}

),

{% endif -%}
orders as (

    select * from {{ ref('int_orders_recorded') }}
    {%- if high_waters is not none %}
    where order_id in (select order_id from touched)
    {%- endif %}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}
    where order_id is not null
    {%- if high_waters is not none %}
        and order_id in (select order_id from touched)
    {%- endif %}

),

used as (

    select
        order_id,
        count(*) filter (where is_succeeded) as redemptions,
        count(*) filter (where is_rolled_back) as redemptions_rolled_back,
        count(*) filter (where not is_succeeded) as redemptions_rejected,
        coalesce(
            list(voucher_code order by attempted_at, redemption_id)
                filter (where is_succeeded),
            []
        ) as voucher_codes,
        coalesce(
            list(redemption_id order by attempted_at, redemption_id)
                filter (where is_succeeded),
            []
        ) as redemption_ids,
        coalesce(
            list(distinct campaign_id) filter (where is_succeeded), []
        ) as campaign_ids,
        coalesce(sum(discount) filter (where is_succeeded), 0)::bigint as discount,
        coalesce(sum(net_discount) filter (where is_succeeded), 0)::bigint as discount_net,
        coalesce(sum(net_gift_amount) filter (where is_succeeded), 0)::bigint as gift_amount_net,

    from redemptions
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        cast(orders.ordered_at as date) as ordered_date,
        orders.amount,
        orders.currency,
        orders.lines,
        orders.store_id,
        orders.sales_channel,
        orders.refunds,
        orders.refunded_amount,
        orders.is_cancelled,
        orders.cancelled_at,
        orders.net_amount,
        coalesce(used.redemptions, 0) as redemptions,
        coalesce(used.redemptions_rolled_back, 0) as redemptions_rolled_back,
        coalesce(used.redemptions_rejected, 0) as redemptions_rejected,
        coalesce(used.redemptions, 0) > 0 as has_voucher,
        coalesce(used.voucher_codes, []) as voucher_codes,
        coalesce(used.redemption_ids, []) as redemption_ids,
        coalesce(used.campaign_ids, []) as campaign_ids,
        coalesce(used.discount, 0) as discount,
        coalesce(used.discount_net, 0) as discount_net,
        coalesce(used.gift_amount_net, 0) as gift_amount_net,

    from orders
    left join used
        on orders.order_id = used.order_id

)

select * from final
