-- One row per order recorded in the ledger, with its refunds and cancellation. Revenue here
-- is the order amount before any voucher discount; `net_amount` takes refunds off and is zero
-- for a cancelled order. Rebuilt per order (see incremental_entities): an order is recomputed
-- from all its events when any of them (the order, a refund, a cancellation) is new.
{{ config(
    materialized='incremental', incremental_strategy='delete+insert', unique_key='order_id',
) }}

{%- set high_water = entity_high_water() %}

with

events as (

    select * from {{ ref('stg_ledger__order_events') }}
    {%- if high_water is not none %}
    where order_id in (
        select order_id from {{ ref('stg_ledger__order_events') }}
        where event_seq > {{ high_water }}
    )
    {%- endif %}

),

orders as (

    select
        order_id,
        customer_id,
        occurred_at as ordered_at,
        amount,
        currency,
        -- unsigned, as json_array_length gave it before the payload was parsed upstream
        cast(len(items) as ubigint) as lines,
        store_id,
        sales_channel,
        event_seq,

    from events
    where event_type = 'order_recorded'
    qualify row_number() over (partition by order_id order by event_seq) = 1

),

refunds as (

    select
        order_id,
        sum(amount)::bigint as refunded_amount,
        count(*) as refunds,
        max(event_seq) as last_event_seq,

    from events
    where event_type = 'order_refunded'
    group by order_id

),

cancellations as (

    select
        order_id,
        min(occurred_at) as cancelled_at,
        max(event_seq) as last_event_seq,

    from events
    where event_type = 'order_cancelled'
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.amount,
        orders.currency,
        orders.lines,
        orders.store_id,
        orders.sales_channel,
        coalesce(refunds.refunds, 0) as refunds,
        coalesce(refunds.refunded_amount, 0) as refunded_amount,
        cancellations.cancelled_at,
        cancellations.cancelled_at is not null as is_cancelled,
        case
            when cancellations.cancelled_at is not null then 0
            else greatest(orders.amount - coalesce(refunds.refunded_amount, 0), 0)
        end as net_amount,
        -- the newest event in the row: what entity_high_water reads
        greatest(
            orders.event_seq, refunds.last_event_seq, cancellations.last_event_seq
        ) as last_event_seq,

    from orders
    left join refunds
        on orders.order_id = refunds.order_id
    left join cancellations
        on orders.order_id = cancellations.order_id

)

select * from final
