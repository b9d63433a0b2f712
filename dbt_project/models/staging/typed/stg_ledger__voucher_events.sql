-- The payload is parsed once, here, into typed columns (json_transform with a structure).
with

source as (

    select * from {{ source('ledger', 'events') }}
    where event_type in {{ ledger_event_types('voucher') }}
    {{ new_ledger_events('seq') }}

),

parsed as (

    select
        {{ ledger_event_columns() }}
        json_transform(payload, '{
            "code": "VARCHAR",
            "kind": "VARCHAR",
            "source": "VARCHAR",
            "trigger_id": "VARCHAR",
            "note": "VARCHAR",
            "gift_balance": "BIGINT",
            "amount": "BIGINT",
            "balance": "BIGINT"
        }') as fields,

    from source

),

renamed as (

    select
        * exclude (fields),
        fields.code,
        fields.kind,
        fields.source,
        fields.trigger_id,
        fields.note,
        fields.gift_balance,
        fields.amount,
        fields.balance,

    from parsed

)

select * from renamed
