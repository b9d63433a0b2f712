-- A message is one delivery run: a voucher sent once, with its retries. Every figure of a run
-- (its attempts, latencies and outcome) belongs to the UTC day the run started, so a run
-- crossing midnight is not split and delivered + failed = messages attempted on every row.
with

attempts as (

    select * from {{ ref('int_delivery_attempts_parsed') }}

),

final as (

    select
        channel,
        provider,
        run_started_date as delivery_date,
        count(*) as attempts,
        count(distinct delivery_run_id) as messages_attempted,
        count(distinct voucher_id) as vouchers_attempted,
        count(*) filter (where is_final_attempt and attempt_outcome = 'delivered') as delivered,
        count(*) filter (where is_final_attempt and attempt_outcome != 'delivered') as failed,
        count(*) - count(distinct delivery_run_id) as retries,
        count(*) filter (where attempt_outcome = 'transient_failure') as transient_failures,
        count(*) filter (where attempt_outcome = 'permanent_failure') as permanent_failures,
        count(*) filter (where is_final_attempt and attempt_outcome = 'delivered')
        / count(distinct delivery_run_id) as success_rate,
        -- Percentiles of single attempts, interpolated linearly between the closest ranks and
        -- rounded to the payload's precision (µs).
        round(quantile_cont(latency_ms, 0.50), 3) as latency_p50_ms,
        round(quantile_cont(latency_ms, 0.95), 3) as latency_p95_ms,
        round(quantile_cont(latency_ms, 0.99), 3) as latency_p99_ms,
        -- favg (Kahan summation): the same mean whatever order the threads add the attempts in.
        round(favg(latency_ms), 3) as latency_mean_ms,
        max(latency_ms) as latency_max_ms,

    from attempts
    group by channel, provider, run_started_date

)

select * from final
