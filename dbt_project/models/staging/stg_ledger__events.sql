with

source as (

    select * from {{ source('ledger', 'events') }}

),

renamed as (

    select
        {{ ledger_event_columns() }}
        cast(payload as json) as payload,

    from source

)

select * from renamed
