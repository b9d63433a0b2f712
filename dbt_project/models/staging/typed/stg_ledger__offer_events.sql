-- Distribution decisions (held out, skipped) and autopilot triggers. The payload is parsed
-- once, here, into typed columns (json_transform with a structure).
with

source as (

    select * from {{ source('ledger', 'events') }}
    where event_type in {{ ledger_event_types('offer') }}
    {{ new_ledger_events('seq') }}

),

parsed as (

    select
        {{ ledger_event_columns() }}
        json_transform(payload, '{
            "source": "VARCHAR",
            "trigger_id": "VARCHAR",
            "reason": "VARCHAR",
            "trigger": "VARCHAR",
            "outcome": "VARCHAR"
        }') as fields,

    from source

),

renamed as (

    select
        * exclude (fields),
        fields.source,
        fields.trigger_id,
        fields.reason,
        fields.trigger,
        fields.outcome,

    from parsed

)

select * from renamed
