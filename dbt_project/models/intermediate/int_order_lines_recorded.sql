-- One row per line of an order_recorded event: lines never change once recorded, so the
-- table is appended to with each new order instead of being rebuilt.
{{ config(materialized='incremental', incremental_strategy='append') }}

with

orders as (

    select * from {{ ref('stg_ledger__order_events') }}
    where event_type = 'order_recorded'
    {{ new_ledger_events() }}

),

unnested as (

    select
        event_seq,
        order_id,
        customer_id,
        occurred_at as ordered_at,
        unnest(items) as item,
        generate_subscripts(items, 1) as line_number,

    from orders

),

final as (

    select
        order_id || ':' || line_number as order_line_id,
        order_id,
        line_number,
        customer_id,
        ordered_at,
        item.product_id,
        item.category,
        item.quantity,
        item.unit_price,
        item.quantity * item.unit_price as line_amount,
        -- the high-water mark of the next incremental run
        event_seq,

    from unnested

)

select * from final
