-- One row per build. Ledger figures are measured at the as-of instant (the latest event);
-- pipeline freshness compares wall-clock times: the extract's run_at and this build's start
-- (dbt's run_started_at), the only clock reading in the marts, since freshness is about
-- the pipeline's real time, not the ledger's (a simulated ledger lives in the past).
-- Error-rate windows are the last 1 and 7 days up to the as-of instant.
with

sequences as (

    select * from {{ ref('int_ledger_sequences_checked') }}

),

extract_runs as (

    select * from {{ ref('int_extract_runs_ranked') }}

),

redemptions as (

    select * from {{ ref('int_redemptions_enriched') }}

),

outcomes as (

    select * from {{ ref('int_delivery_outcomes_recorded') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

latest_run as (

    select
        count(*) over () as extract_runs,
        *,

    from extract_runs
    qualify is_latest

),

redemption_rates as (

    select
        count(*) filter (where attempted_at > ledger.as_of - interval 1 day)
            as redemption_attempts_1d,
        count(*) filter (
            where attempted_at > ledger.as_of - interval 1 day and not is_succeeded
        ) as redemptions_rejected_1d,
        count(*) filter (where attempted_at > ledger.as_of - interval 7 day)
            as redemption_attempts_7d,
        count(*) filter (
            where attempted_at > ledger.as_of - interval 7 day and not is_succeeded
        ) as redemptions_rejected_7d,

    from redemptions
    cross join ledger

),

delivery_rates as (

    select
        count(*) filter (where finished_at > ledger.as_of - interval 1 day) as deliveries_1d,
        count(*) filter (
            where finished_at > ledger.as_of - interval 1 day and delivery_outcome = 'failed'
        ) as deliveries_failed_1d,
        count(*) filter (where finished_at > ledger.as_of - interval 7 day) as deliveries_7d,
        count(*) filter (
            where finished_at > ledger.as_of - interval 7 day and delivery_outcome = 'failed'
        ) as deliveries_failed_7d,

    from outcomes
    cross join ledger

),

build as (

    select
        '{{ invocation_id }}' as build_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
            as built_at,

),

final as (

    select
        build.build_id,
        build.built_at,
        ledger.as_of,
        sequences.ledger_events,
        sequences.min_event_seq,
        sequences.max_event_seq,
        sequences.missing_seqs,
        sequences.last_recorded_at,
        latest_run.extract_runs,
        latest_run.extract_run_at as last_extract_run_at,
        latest_run.ledger_high_water,
        latest_run.new_events as last_extract_new_events,
        latest_run.late_events as last_extract_late_events,
        latest_run.ledger_high_water - sequences.max_event_seq as lag_events,
        date_diff('millisecond', latest_run.extract_run_at, build.built_at) / 3600000.0
            as hours_since_last_extract,
        date_diff('millisecond', ledger.as_of, latest_run.extract_run_at) / 3600000.0
            as hours_from_latest_event_to_extract,
        redemption_rates.redemption_attempts_1d,
        redemption_rates.redemptions_rejected_1d,
        redemption_rates.redemptions_rejected_1d
        / nullif(redemption_rates.redemption_attempts_1d, 0) as redemption_rejection_rate_1d,
        redemption_rates.redemption_attempts_7d,
        redemption_rates.redemptions_rejected_7d,
        redemption_rates.redemptions_rejected_7d
        / nullif(redemption_rates.redemption_attempts_7d, 0) as redemption_rejection_rate_7d,
        delivery_rates.deliveries_1d,
        delivery_rates.deliveries_failed_1d,
        delivery_rates.deliveries_failed_1d / nullif(delivery_rates.deliveries_1d, 0)
            as delivery_failure_rate_1d,
        delivery_rates.deliveries_7d,
        delivery_rates.deliveries_failed_7d,
        delivery_rates.deliveries_failed_7d / nullif(delivery_rates.deliveries_7d, 0)
            as delivery_failure_rate_7d,

    from build
    cross join ledger
    cross join sequences
    cross join redemption_rates
    cross join delivery_rates
    left join latest_run
        on true

)

select * from final
