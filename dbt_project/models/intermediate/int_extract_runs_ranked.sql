with

runs as (

    select * from {{ ref('stg_ledger__extract_runs') }}

),

final as (

    select
        row_number() over (order by extract_run_at, watermark_after) as extract_run_number,
        extract_run_at,
        watermark_before,
        watermark_after,
        ledger_high_water,
        new_events,
        late_events,
        ledger_high_water - watermark_after as events_left_behind,
        row_number() over (order by extract_run_at desc, watermark_after desc) = 1 as is_latest,

    from runs

)

select * from final
