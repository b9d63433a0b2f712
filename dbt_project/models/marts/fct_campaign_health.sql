-- Health of each campaign's distribution at the as-of instant (the latest ledger event).
-- Recent window: the 7 days up to the as-of instant; baseline: every day before it.
-- The audience is what the campaign set out to deliver: vouchers it published and triggers
-- still pending. Thresholds (see the thresholds CTE and macros/rate_monitor.sql):
--   failing  - active, an audience in the last 3 days and no delivery in the last 3 days;
--            - the delivery failure rate's monitor fails: at least 5 failures in the last 7
--              days, and the rate at least 3x the campaign's own baseline with 99.9 %
--              confidence (Wilson lower bound above the baseline), or at least 25 % with
--              99.9 % confidence;
--   warning  - active, an audience in the last day and no delivery in the last day;
--            - the monitor warns: at least 3 failures, and at least 1.5x the baseline with
--              99 % confidence, or at least 10 % with 99 % confidence;
--            - a trigger pending for more than 24 hours;
--   ok       - none of these.
-- status_reason lists every rule of the reported severity; failure_rate_rule always says what
-- the failure-rate monitor found and which rule it applied.
{%- set failure_args = [
    'delivery_failures_7d', 'delivery_outcomes_7d',
    'delivery_failures_baseline', 'delivery_outcomes_baseline', '0.10', '0.25',
] %}
{%- set failure_monitor = rate_monitor_status(*failure_args) %}
{%- set failure_rule = rate_monitor_rule(
    'delivery failure rate', 'deliveries', 'failures', '7 days', *failure_args
) %}

with

campaigns as (

    select * from {{ ref('int_campaigns_defined') }}

),

triggers as (

    select * from {{ ref('int_triggers_tracked') }}

),

vouchers as (

    select * from {{ ref('int_vouchers_published') }}

),

outcomes as (

    select * from {{ ref('int_delivery_outcomes_recorded') }}

),

ledger as (

    select * from {{ ref('int_ledgers_read') }}

),

thresholds as (

    select
        3 as silence_failing_days,
        1 as silence_warning_days,
        24 as stale_trigger_hours,

),

trigger_summary as (

    select
        triggers.campaign_id,
        max(triggers.matched_at) as last_trigger_at,
        count(*) filter (where triggers.trigger_status = 'pending') as pending_triggers,
        count(*) filter (
            where triggers.trigger_status = 'pending'
            and triggers.matched_at
            < ledger.as_of - to_hours(thresholds.stale_trigger_hours)
        ) as stale_pending_triggers,
        count(*) filter (
            where triggers.trigger_status = 'pending'
            and triggers.matched_at > ledger.as_of - to_days(thresholds.silence_failing_days)
        ) as pending_triggers_failing_window,
        count(*) filter (
            where triggers.trigger_status = 'pending'
            and triggers.matched_at > ledger.as_of - to_days(thresholds.silence_warning_days)
        ) as pending_triggers_warning_window,

    from triggers
    cross join ledger
    cross join thresholds
    group by triggers.campaign_id

),

publication_summary as (

    select
        vouchers.campaign_id,
        max(vouchers.published_at) as last_published_at,
        count(*) filter (
            where vouchers.published_at > ledger.as_of - to_days(thresholds.silence_failing_days)
        ) as published_failing_window,
        count(*) filter (
            where vouchers.published_at > ledger.as_of - to_days(thresholds.silence_warning_days)
        ) as published_warning_window,

    from vouchers
    cross join ledger
    cross join thresholds
    group by vouchers.campaign_id

),

delivery_summary as (

    select
        outcomes.campaign_id,
        max(outcomes.finished_at) filter (where outcomes.delivery_outcome = 'delivered')
            as last_delivered_at,
        count(*) filter (
            where outcomes.delivery_outcome = 'delivered'
            and outcomes.finished_at > ledger.as_of - to_days(thresholds.silence_failing_days)
        ) as delivered_failing_window,
        count(*) filter (
            where outcomes.delivery_outcome = 'delivered'
            and outcomes.finished_at > ledger.as_of - to_days(thresholds.silence_warning_days)
        ) as delivered_warning_window,
        count(*) filter (where outcomes.finished_at > ledger.as_of - interval 7 day)
            as outcomes_7d,
        count(*) filter (
            where outcomes.finished_at > ledger.as_of - interval 7 day
            and outcomes.delivery_outcome = 'failed'
        ) as failed_7d,
        count(*) filter (where outcomes.finished_at <= ledger.as_of - interval 7 day)
            as outcomes_baseline,
        count(*) filter (
            where outcomes.finished_at <= ledger.as_of - interval 7 day
            and outcomes.delivery_outcome = 'failed'
        ) as failed_baseline,

    from outcomes
    cross join ledger
    cross join thresholds
    group by outcomes.campaign_id

),

joined as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.status as campaign_status,
        campaigns.distribution_mode,
        campaigns.distribution_mode is not null
        and campaigns.status = 'active'
        and (campaigns.active_from is null or campaigns.active_from <= ledger.as_of)
        and (campaigns.active_until is null or campaigns.active_until > ledger.as_of)
            as is_active,
        trigger_summary.last_trigger_at,
        publication_summary.last_published_at,
        delivery_summary.last_delivered_at,
        coalesce(trigger_summary.pending_triggers, 0) as pending_triggers,
        coalesce(trigger_summary.stale_pending_triggers, 0) as stale_pending_triggers,
        coalesce(publication_summary.published_failing_window, 0)
        + coalesce(trigger_summary.pending_triggers_failing_window, 0)
            as audience_failing_window,
        coalesce(publication_summary.published_warning_window, 0)
        + coalesce(trigger_summary.pending_triggers_warning_window, 0)
            as audience_warning_window,
        coalesce(delivery_summary.delivered_failing_window, 0) as delivered_failing_window,
        coalesce(delivery_summary.delivered_warning_window, 0) as delivered_warning_window,
        coalesce(delivery_summary.outcomes_7d, 0) as delivery_outcomes_7d,
        coalesce(delivery_summary.failed_7d, 0) as delivery_failures_7d,
        coalesce(delivery_summary.outcomes_baseline, 0) as delivery_outcomes_baseline,
        coalesce(delivery_summary.failed_baseline, 0) as delivery_failures_baseline,
        delivery_summary.failed_7d / nullif(delivery_summary.outcomes_7d, 0)
            as failure_rate_7d,
        delivery_summary.failed_baseline / nullif(delivery_summary.outcomes_baseline, 0)
            as failure_rate_baseline,
        ledger.as_of,
        thresholds.*,

    from campaigns
    cross join ledger
    cross join thresholds
    left join trigger_summary
        on campaigns.campaign_id = trigger_summary.campaign_id
    left join publication_summary
        on campaigns.campaign_id = publication_summary.campaign_id
    left join delivery_summary
        on campaigns.campaign_id = delivery_summary.campaign_id

),

rules as (

    select
        *,
        is_active and audience_failing_window > 0 and delivered_failing_window = 0
            as is_silent_failing,
        is_active and audience_warning_window > 0 and delivered_warning_window = 0
            as is_silent_warning,
        {{ failure_monitor }} = 'failing' as is_failure_rate_failing,
        {{ failure_monitor }} = 'warning' as is_failure_rate_warning,
        {{ failure_rule }} as failure_rate_rule,
        stale_pending_triggers > 0 as has_stale_triggers,

    from joined

),

final as (

    select
        campaign_id,
        campaign_name,
        campaign_status,
        distribution_mode,
        is_active,
        last_trigger_at,
        last_published_at,
        last_delivered_at,
        pending_triggers,
        stale_pending_triggers,
        delivery_outcomes_7d,
        delivery_failures_7d,
        failure_rate_7d,
        delivery_outcomes_baseline,
        delivery_failures_baseline,
        failure_rate_baseline,
        case
            when is_silent_failing or is_failure_rate_failing then 'failing'
            when is_silent_warning or is_failure_rate_warning or has_stale_triggers
                then 'warning'
            else 'ok'
        end as health_status,
        case
            when is_silent_failing or is_failure_rate_failing then concat_ws(
                '; ',
                case when is_silent_failing then format(
                    'no delivery for {} days while {} vouchers or triggers awaited one',
                    silence_failing_days, audience_failing_window
                ) end,
                case when is_failure_rate_failing then failure_rate_rule end
            )
            when is_silent_warning or is_failure_rate_warning or has_stale_triggers
                then concat_ws(
                    '; ',
                    case when is_silent_warning then format(
                        'no delivery for {} day while {} vouchers or triggers awaited one',
                        silence_warning_days, audience_warning_window
                    ) end,
                    case when is_failure_rate_warning then failure_rate_rule end,
                    case when has_stale_triggers then format(
                        '{} triggers pending for more than {} hours',
                        stale_pending_triggers, stale_trigger_hours
                    ) end
                )
            when distribution_mode is null then 'not distributed through channels'
            when not is_active then format('not active (status {})', campaign_status)
            when last_delivered_at is null then 'active, nothing to deliver yet'
            else 'delivering normally'
        end as status_reason,
        failure_rate_rule,
        as_of,

    from rules

)

select * from final
