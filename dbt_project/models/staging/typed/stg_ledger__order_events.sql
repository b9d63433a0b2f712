-- The payload is parsed once, here, into typed columns (json_transform with a structure);
-- an order's lines stay a typed list for int_order_lines_recorded to unnest.
with

source as (

    select * from {{ source('ledger', 'events') }}
    where event_type in {{ ledger_event_types('order') }}
    {{ new_ledger_events('seq') }}

),

parsed as (

    select
        {{ ledger_event_columns() }}
        json_transform(payload, '{
            "amount": "BIGINT",
            "currency": "VARCHAR",
            "reason": "VARCHAR",
            "items": [{
                "product_id": "VARCHAR",
                "category": "VARCHAR",
                "quantity": "INTEGER",
                "unit_price": "BIGINT"
            }]
        }') as fields,

    from source

),

renamed as (

    select
        * exclude (fields),
        fields.amount,
        fields.currency,
        fields.reason,
        fields.items,

    from parsed

)

select * from renamed
