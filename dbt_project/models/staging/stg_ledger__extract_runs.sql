with

source as (

    select * from {{ source('ledger', 'extract_runs') }}

),

renamed as (

    select
        run_at as extract_run_at,
        watermark_before,
        watermark_after,
        ledger_high_water,
        new_events,
        late_events,

    from source

)

select * from renamed
