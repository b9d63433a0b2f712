-- Customer 360, as of the latest event in the ledger.
--   lifetime_value: net spend to date (order amounts, minus refunds, cancelled orders at zero),
--     integer minor units; what the customer has actually paid for, before voucher discounts.
--   recency_days: whole days from the last standing order to the as-of instant.
--   frequency: standing (not cancelled) orders. monetary: lifetime_value.
--   RFM scores (1-5) are quintiles among customers with a standing order:
--     ceil(5 * cume_dist()), so equal values share a score (ties never split across scores;
--     with many ties a low score may stay empty). Recency scores 5 for the most recent.
--   favourite_category: most items bought (quantity, standing orders), then amount, then name.
--   favourite_channel: most offers accepted through it, then most delivered, then name.
with

customers as (

    select * from {{ ref('int_customers_profiled') }}

),

orders as (

    select * from {{ ref('int_orders_recorded') }}
    where customer_id is not null

),

order_lines as (

    select * from {{ ref('int_order_lines_recorded') }}
    where customer_id is not null

),

offers as (

    select * from {{ ref('int_vouchers_published') }}

),

wallet as (

    select * from {{ ref('int_vouchers_held') }}
    where wallet_status = 'active'

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

order_summary as (

    select
        customer_id,
        count(*) as orders_recorded,
        count(*) filter (where is_cancelled) as orders_cancelled,
        count(*) filter (where not is_cancelled) as orders,
        coalesce(sum(amount) filter (where not is_cancelled), 0)::bigint as gross_spend,
        coalesce(sum(refunded_amount) filter (where not is_cancelled), 0)::bigint
            as refunded_amount,
        sum(net_amount)::bigint as net_spend,
        min(ordered_at) filter (where not is_cancelled) as first_order_at,
        max(ordered_at) filter (where not is_cancelled) as last_order_at,

    from orders
    group by customer_id

),

category_ranks as (

    select
        order_lines.customer_id,
        order_lines.category,
        sum(order_lines.quantity) as items,
        row_number() over (
            partition by order_lines.customer_id
            order by sum(order_lines.quantity) desc, sum(order_lines.line_amount) desc,
                order_lines.category
        ) as category_rank,

    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id
    where not orders.is_cancelled and order_lines.category is not null
    group by order_lines.customer_id, order_lines.category

),

categories as (

    select
        customer_id,
        min(category) filter (where category_rank = 1) as favourite_category,
        list(category order by category_rank) filter (where category_rank <= 3)
            as top_categories,

    from category_ranks
    group by customer_id

),

offer_summary as (

    select
        customer_id,
        count(*) as offers_received,
        count(*) filter (where delivery_status = 'delivered') as offers_delivered,
        count(*) filter (where accepted_at is not null) as offers_accepted,
        count(*) filter (where standing_redemptions > 0) as offers_redeemed,

    from offers
    group by customer_id

),

channel_ranks as (

    select
        customer_id,
        channel,
        row_number() over (
            partition by customer_id
            order by count(accepted_at) desc,
                count(*) filter (where delivery_status = 'delivered') desc,
                channel
        ) as channel_rank,

    from offers
    where channel is not null and (accepted_at is not null or delivery_status = 'delivered')
    group by customer_id, channel

),

wallet_summary as (

    select
        wallet.customer_id,
        count(*) as active_vouchers,
        coalesce(sum(wallet.gift_balance), 0)::bigint as gift_balance,
        count(*) filter (where wallet.expires_at <= ledger.as_of + interval 7 day)
            as vouchers_expiring_7d,
        min(wallet.expires_at) as next_expiry_at,

    from wallet
    cross join ledger
    group by wallet.customer_id

),

measured as (

    select
        customers.customer_id,
        customers.signup_at,
        customers.created_at,
        customers.home_store,
        customers.birthday,
        customers.email_masked,
        customers.phone_masked,
        customers.has_email_consent,
        customers.has_sms_consent,
        customers.has_push_consent,
        customers.consent_updated_at,
        coalesce(order_summary.orders_recorded, 0) as orders_recorded,
        coalesce(order_summary.orders_cancelled, 0) as orders_cancelled,
        coalesce(order_summary.orders, 0) as orders,
        coalesce(order_summary.gross_spend, 0) as gross_spend,
        coalesce(order_summary.refunded_amount, 0) as refunded_amount,
        coalesce(order_summary.net_spend, 0) as net_spend,
        coalesce(order_summary.net_spend, 0) as lifetime_value,
        order_summary.first_order_at,
        order_summary.last_order_at,
        floor(
            date_diff('second', order_summary.last_order_at, ledger.as_of) / 86400
        )::integer as recency_days,
        coalesce(order_summary.orders, 0) as frequency,
        coalesce(order_summary.net_spend, 0) as monetary,
        categories.favourite_category,
        coalesce(categories.top_categories, []) as top_categories,
        channel_ranks.channel as favourite_channel,
        coalesce(offer_summary.offers_received, 0) as offers_received,
        coalesce(offer_summary.offers_delivered, 0) as offers_delivered,
        coalesce(offer_summary.offers_accepted, 0) as offers_accepted,
        coalesce(offer_summary.offers_redeemed, 0) as offers_redeemed,
        coalesce(wallet_summary.active_vouchers, 0) as active_vouchers,
        coalesce(wallet_summary.gift_balance, 0) as gift_balance,
        coalesce(wallet_summary.vouchers_expiring_7d, 0) as vouchers_expiring_7d,
        wallet_summary.next_expiry_at,
        ledger.as_of,

    from customers
    cross join ledger
    left join order_summary
        on customers.customer_id = order_summary.customer_id
    left join categories
        on customers.customer_id = categories.customer_id
    left join offer_summary
        on customers.customer_id = offer_summary.customer_id
    left join channel_ranks
        on customers.customer_id = channel_ranks.customer_id
        and channel_ranks.channel_rank = 1
    left join wallet_summary
        on customers.customer_id = wallet_summary.customer_id

),

scored as (

    select
        customer_id,
        ceil(5 * cume_dist() over (order by recency_days desc))::integer as recency_score,
        ceil(5 * cume_dist() over (order by frequency))::integer as frequency_score,
        ceil(5 * cume_dist() over (order by monetary))::integer as monetary_score,

    from measured
    where frequency > 0

),

final as (

    select
        measured.*,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        scored.recency_score::varchar || scored.frequency_score::varchar
        || scored.monetary_score::varchar as rfm_cell,
        scored.recency_score + scored.frequency_score + scored.monetary_score as rfm_total,
        case
            when scored.customer_id is null then 'no_orders'
            when scored.recency_score >= 4 and scored.frequency_score >= 4 then 'champion'
            when scored.recency_score <= 2 and scored.frequency_score >= 3 then 'at_risk'
            when scored.frequency_score >= 4 then 'loyal'
            when scored.recency_score >= 4 then 'promising'
            else 'hibernating'
        end as rfm_segment,

    from measured
    left join scored
        on measured.customer_id = scored.customer_id

)

select * from final
