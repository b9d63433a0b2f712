with

orders as (

    select * from {{ ref('stg_ledger__events') }}
    where event_type = 'order_recorded'

),

unnested as (

    select
        order_id,
        customer_id,
        occurred_at as ordered_at,
        unnest(cast(payload->'items' as json[])) as item,
        generate_subscripts(cast(payload->'items' as json[]), 1) as line_number,

    from orders

),

final as (

    select
        order_id || ':' || line_number as order_line_id,
        order_id,
        line_number,
        customer_id,
        ordered_at,
        item->>'product_id' as product_id,
        item->>'category' as category,
        cast(item->>'quantity' as integer) as quantity,
        cast(item->>'unit_price' as bigint) as unit_price,
        cast(item->>'quantity' as integer) * cast(item->>'unit_price' as bigint) as line_amount,

    from unnested

)

select * from final
