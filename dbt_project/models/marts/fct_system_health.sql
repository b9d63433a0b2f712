-- One row per build. Ledger figures are measured at the as-of instant (the latest event);
-- pipeline freshness compares wall-clock times: the extract's run_at and this build's start
-- (dbt's run_started_at), the only clock reading in the marts, since freshness is about
-- the pipeline's real time, not the ledger's (a simulated ledger lives in the past).
-- Error-rate windows are the last 1 and 7 days up to the as-of instant; their baseline is
-- every day before the last 7.
-- Monitors (each with a status and the rule that set it; health_status is the worst):
--   completeness - failing when sequence numbers are missing between the ledger and the
--                  warehouse, warning when the ledger had events the extract did not take;
--   redemption rejections - macros/rate_monitor.sql against the baseline, with ceilings of
--                  50 % (warning) and 80 % (failing): more than half of the attempts refused
--                  turns customers away at the till, whatever the rate was before;
--   delivery failures - the same with ceilings of 10 % and 25 %, as per campaign in
--                  fct_campaign_health.
{%- set rejection_args = [
    'redemption_rates.redemptions_rejected_7d', 'redemption_rates.redemption_attempts_7d',
    'redemption_rates.redemptions_rejected_baseline',
    'redemption_rates.redemption_attempts_baseline', '0.50', '0.80',
] %}
{%- set delivery_args = [
    'delivery_rates.deliveries_failed_7d', 'delivery_rates.deliveries_7d',
    'delivery_rates.deliveries_failed_baseline', 'delivery_rates.deliveries_baseline',
    '0.10', '0.25',
] %}
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
        count(*) filter (where attempted_at <= ledger.as_of - interval 7 day)
            as redemption_attempts_baseline,
        count(*) filter (
            where attempted_at <= ledger.as_of - interval 7 day and not is_succeeded
        ) as redemptions_rejected_baseline,

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
        count(*) filter (where finished_at <= ledger.as_of - interval 7 day)
            as deliveries_baseline,
        count(*) filter (
            where finished_at <= ledger.as_of - interval 7 day and delivery_outcome = 'failed'
        ) as deliveries_failed_baseline,

    from outcomes
    cross join ledger

),

build as (

    select
        '{{ invocation_id }}' as build_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
            as built_at,

),

joined as (

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
        redemption_rates.redemption_attempts_baseline,
        redemption_rates.redemptions_rejected_baseline,
        redemption_rates.redemptions_rejected_baseline
        / nullif(redemption_rates.redemption_attempts_baseline, 0)
            as redemption_rejection_rate_baseline,
        {{ rate_monitor_status(*rejection_args) }} as redemption_rejection_status,
        {{ rate_monitor_rule(
            'rejection rate', 'redemption attempts', 'rejections', '7 days', *rejection_args
        ) }} as redemption_rejection_rule,
        delivery_rates.deliveries_1d,
        delivery_rates.deliveries_failed_1d,
        delivery_rates.deliveries_failed_1d / nullif(delivery_rates.deliveries_1d, 0)
            as delivery_failure_rate_1d,
        delivery_rates.deliveries_7d,
        delivery_rates.deliveries_failed_7d,
        delivery_rates.deliveries_failed_7d / nullif(delivery_rates.deliveries_7d, 0)
            as delivery_failure_rate_7d,
        delivery_rates.deliveries_baseline,
        delivery_rates.deliveries_failed_baseline,
        delivery_rates.deliveries_failed_baseline / nullif(delivery_rates.deliveries_baseline, 0)
            as delivery_failure_rate_baseline,
        {{ rate_monitor_status(*delivery_args) }} as delivery_failure_status,
        {{ rate_monitor_rule(
            'failure rate', 'deliveries', 'failures', '7 days', *delivery_args
        ) }} as delivery_failure_rule,

    from build
    cross join ledger
    cross join sequences
    cross join redemption_rates
    cross join delivery_rates
    left join latest_run
        on true

),

completeness as (

    select
        *,
        case
            when coalesce(missing_seqs, 0) > 0 then 'failing'
            when coalesce(lag_events, 0) > 0 then 'warning'
            else 'ok'
        end as completeness_status,
        case
            when coalesce(missing_seqs, 0) > 0 then format(
                '{:,} sequence numbers missing between the ledger and the warehouse: events '
                || 'were lost on the way. Failing: any sequence number missing',
                missing_seqs
            )
            when coalesce(lag_events, 0) > 0 then format(
                'the ledger held {:,} events the last extract did not take: run the pipeline '
                || 'again. Warning: any event behind',
                lag_events
            )
            else format(
                'every ledger event up to seq {:,} is in the warehouse, none missing', max_event_seq
            )
        end as completeness_rule,

    from joined

),

final as (

    select
        *,
        case
            when 'failing' in (
                completeness_status, redemption_rejection_status, delivery_failure_status
            ) then 'failing'
            when 'warning' in (
                completeness_status, redemption_rejection_status, delivery_failure_status
            ) then 'warning'
            else 'ok'
        end as health_status,

    from completeness

)

select * from final
