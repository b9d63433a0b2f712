-- The payload is parsed once, here, into typed columns (json_transform with a structure).
with

source as (

    select * from {{ source('ledger', 'events') }}
    where event_type in {{ ledger_event_types('redemption') }}
    {{ new_ledger_events('seq') }}

),

parsed as (

    select
        {{ ledger_event_columns() }}
        json_transform(payload, '{
            "code": "VARCHAR",
            "order": {"id": "VARCHAR", "amount": "BIGINT", "currency": "VARCHAR"},
            "discount": "BIGINT",
            "gift_amount": "BIGINT",
            "currency": "VARCHAR",
            "reasons": [{"code": "VARCHAR"}],
            "amounts_known": "BOOLEAN",
            "rollback_id": "VARCHAR",
            "reason": "VARCHAR",
            "cause": "VARCHAR"
        }') as fields,

    from source

),

renamed as (

    select
        * exclude (fields),
        fields.code,
        fields.order.id as order_ref,
        fields.order.amount as order_amount,
        fields.order.currency as order_currency,
        fields.discount,
        fields.gift_amount,
        fields.currency,
        -- The core lists every failing rule in the order it checks them.
        coalesce(
            list_filter(
                list_transform(fields.reasons, lambda reason: reason.code),
                lambda code: code is not null
            ),
            []
        ) as reason_codes,
        fields.amounts_known,
        fields.rollback_id,
        fields.reason,
        fields.cause,

    from parsed

)

select * from renamed
