-- The payload is parsed once, here, into typed columns (json_transform with a structure).
with

source as (

    select * from {{ source('ledger', 'events') }}
    where event_type in {{ ledger_event_types('delivery') }}
    {{ new_ledger_events('seq') }}

),

parsed as (

    select
        {{ ledger_event_columns() }}
        json_transform(payload, '{
            "provider": "VARCHAR",
            "attempt": "INTEGER",
            "attempts": "INTEGER",
            "latency_ms": "DOUBLE",
            "backoff_ms": "DOUBLE",
            "outcome": "VARCHAR",
            "error": "VARCHAR"
        }') as fields,

    from source

),

renamed as (

    select
        * exclude (fields),
        fields.provider,
        fields.attempt,
        fields.attempts,
        fields.latency_ms,
        fields.backoff_ms,
        fields.outcome,
        fields.error,

    from parsed

)

select * from renamed
