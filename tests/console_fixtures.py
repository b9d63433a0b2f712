"""Small published warehouses for the console's tests, written by hand so that every number a
page shows can be worked out on paper.

`published_warehouse(home)` writes `home/warehouse/published.duckdb` with the tables a test
asks for (all of them by default). Each table has a function of its own that creates it with
the real mart's column names and types, holding a few rows about the same three campaigns:

- winback  "Win-back"          autopilot, EUR, with a control group, health warning
- vip      "VIP thank-you"     promotion, EUR, no control group, finished, health ok
- flash    "Slow-night filler" promotion, EUR, no activity yet, health failing

The figures each page should show are worked out in the tests that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb

Builder = Callable[[duckdb.DuckDBPyConnection], None]


def dim_campaigns(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE marts.dim_campaigns AS
        SELECT
            campaign_id,
            campaign_name,
            'main' AS main_campaign_id,
            'Regulars' AS main_campaign_name,
            status,
            TIMESTAMP '2026-01-01 09:00:00' AS status_since,
            voucher_kind,
            false AS is_gift_card,
            CASE WHEN voucher_kind = 'standalone' THEN 'SLOW' END AS standalone_code,
            'percent' AS discount_type,
            10.0 AS discount_value,
            CAST(NULL AS BIGINT) AS discount_max_discount,
            CAST(NULL AS VARCHAR) AS discount_free_product,
            currency,
            CAST(50000 AS BIGINT) AS budget_cap,
            CAST(1 AS BIGINT) AS per_customer_limit,
            CAST(1 AS BIGINT) AS per_voucher_limit,
            CAST(NULL AS BIGINT) AS campaign_total_limit,
            CAST(1000 AS BIGINT) AS min_order_amount,
            is_acceptance_required,
            14 AS valid_days_after_publication,
            distribution_mode,
            CAST(NULL AS VARCHAR) AS distribution_segment,
            ['email', 'sms', 'push'] AS distribution_channels,
            CASE WHEN distribution_mode = 'autopilot' THEN 'inactivity' END AS trigger_type,
            CASE WHEN has_control_group THEN 0.2 END AS control_share,
            has_control_group,
            CAST(active_from AS TIMESTAMP) AS active_from,
            CAST(active_until AS TIMESTAMP) AS active_until,
            TIMESTAMP '2026-01-01 09:00:00' AS created_at,
            TIMESTAMP '2026-01-21 06:00:00' AS as_of,
            CAST(vouchers_published AS BIGINT) AS vouchers_published,
            CAST(vouchers_published AS BIGINT) AS vouchers_delivered,
            CAST(vouchers_published AS BIGINT) AS vouchers_accepted,
            CAST(redemptions AS BIGINT) AS vouchers_redeemed,
            CAST(vouchers_published AS BIGINT) AS customers_treated,
            CAST(0 AS BIGINT) AS customers_held_out,
            CAST(redemptions AS BIGINT) AS redemptions,
            CAST(0 AS BIGINT) AS redemptions_rolled_back,
            CAST(0 AS BIGINT) AS redemptions_rejected,
            CAST(redemptions AS BIGINT) AS customers_redeemed,
            CAST(discount_net AS HUGEINT) AS discount_net,
            CAST(NULL AS TIMESTAMP) AS last_redeemed_at,
        FROM (VALUES
            ('winback', 'Win-back', 'active', 'unique', 'EUR', 'autopilot', true, true,
             '2026-01-01', NULL, 20, 4, 1050),
            ('vip', 'VIP thank-you', 'finished', 'unique', 'EUR', 'promotion', false, false,
             '2026-01-05', '2026-01-15', 5, 1, 1000),
            ('flash', 'Slow-night filler', 'active', 'standalone', 'EUR', 'promotion', true,
             false, '2026-01-18', '2026-01-31', 0, 0, 0)
        ) AS rows (
            campaign_id, campaign_name, status, voucher_kind, currency, distribution_mode,
            is_acceptance_required, has_control_group, active_from, active_until,
            vouchers_published, redemptions, discount_net
        )
        """
    )


FUNNEL_COUNTS = (
    "held_out",
    "skipped",
    "skipped_frequency_cap",
    "skipped_no_consent",
    "skipped_channel_unavailable",
    "skipped_no_contact",
    "skipped_unknown_customer",
    "skipped_other",
    "published",
    "delivered",
    "delivery_failed",
    "delivery_pending",
    "accepted",
    "redeemed",
    "rejected",
    "rolled_back",
)


def fct_campaign_funnel(db: duckdb.DuckDBPyConnection) -> None:
    """Totals: published 25, delivered 23, accepted 14, redeemed 10; held out 3, skipped 2.
    10-15 Jan: published 19, delivered 17, accepted 11, redeemed 8. Email: 16, 14, 8, 5."""
    counts = ",\n".join(f"CAST({name} AS BIGINT) AS {name}" for name in FUNNEL_COUNTS)
    db.execute(
        f"""
        CREATE TABLE marts.fct_campaign_funnel AS
        SELECT
            campaign_id,
            channel,
            CAST(cohort_date AS DATE) AS cohort_date,
            {counts},
            -- a ledger that records no engagement: null, not 0
            CAST(NULL AS BIGINT) AS opened,
            CAST(NULL AS BIGINT) AS clicked,
            CAST(NULL AS BIGINT) AS visited,
            delivered / nullif(published, 0) AS delivered_per_published,
            accepted / nullif(delivered, 0) AS accepted_per_delivered,
            redeemed / nullif(accepted, 0) AS redeemed_per_accepted,
            redeemed / nullif(published, 0) AS redeemed_per_published,
        FROM (VALUES
            ('winback', 'email', '2026-01-10', 0, 0, 0, 0, 0, 0, 0, 0, 10, 8, 1, 1, 5, 3, 1, 1),
            ('winback', 'sms', '2026-01-10', 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 0, 0, 2, 1, 0, 0),
            ('winback', 'none', '2026-01-10', 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            ('winback', 'email', '2026-01-20', 0, 0, 0, 0, 0, 0, 0, 0, 6, 6, 0, 0, 3, 2, 0, 0),
            ('vip', 'push', '2026-01-12', 0, 0, 0, 0, 0, 0, 0, 0, 5, 5, 0, 0, 4, 4, 0, 0)
        ) AS rows (campaign_id, channel, cohort_date, {", ".join(FUNNEL_COUNTS)})
        """
    )


def fct_redemptions(db: duckdb.DuckDBPyConnection) -> None:
    """Standing: r1, r2, r4, r5 (r3 rolled back). All: 4 redemptions, discount EUR 20.50,
    revenue EUR 145.00. 10-15 Jan: 3, EUR 18.00, EUR 120.00. vip: 1, EUR 10.00, EUR 40.00."""
    db.execute(
        """
        CREATE TABLE marts.fct_redemptions AS
        SELECT
            redemption_id,
            CAST(redeemed_at AS TIMESTAMP) AS redeemed_at,
            CAST(CAST(redeemed_at AS TIMESTAMP) AS DATE) AS redeemed_date,
            campaign_id,
            'v_' || redemption_id AS voucher_id,
            'CODE-' || redemption_id AS voucher_code,
            customer_id,
            order_id,
            true AS is_order_recorded,  -- o1 to o5 are all in fct_orders
            CAST(order_amount AS BIGINT) AS order_amount,
            CAST(discount AS BIGINT) AS discount,
            CAST(0 AS BIGINT) AS gift_amount,
            'EUR' AS currency,
            'store_1' AS store_id,
            'staff_1' AS staff_id,
            'in_store' AS sales_channel,
            is_rolled_back,
            CASE WHEN is_rolled_back THEN CAST(redeemed_at AS TIMESTAMP) END AS rolled_back_at,
            CASE WHEN is_rolled_back THEN 'voided at the till' END AS rollback_reason,
            CAST(NULL AS VARCHAR) AS rollback_cause,
            CAST(CASE WHEN is_rolled_back THEN discount ELSE 0 END AS BIGINT)
                AS rolled_back_discount,
            CAST(0 AS BIGINT) AS rolled_back_gift_amount,
            CAST(CASE WHEN is_rolled_back THEN 0 ELSE discount END AS BIGINT) AS net_discount,
            CAST(0 AS BIGINT) AS net_gift_amount,
            true AS are_amounts_known,
        FROM (VALUES
            ('r1', '2026-01-11 12:00:00', 'winback', 'cust_1', 'o1', 5000, 500, false),
            ('r2', '2026-01-12 19:30:00', 'winback', 'cust_2', 'o2', 3000, 300, false),
            ('r3', '2026-01-12 20:00:00', 'winback', 'cust_3', 'o3', 2000, 200, true),
            ('r4', '2026-01-13 13:00:00', 'vip', 'cust_4', 'o4', 4000, 1000, false),
            ('r5', '2026-01-21 11:00:00', 'winback', 'cust_1', 'o5', 2500, 250, false)
        ) AS rows (
            redemption_id, redeemed_at, campaign_id, customer_id, order_id, order_amount,
            discount, is_rolled_back
        )
        """
    )


def fct_campaign_performance(db: duckdb.DuckDBPyConnection) -> None:
    """winback pays for itself (profit EUR 12.00, 95 % CI EUR 3.00 to 21.00, standard error
    EUR 4.5918 = 9.00 / 1.96); vip and flash have no control group. Attributed revenue
    EUR 145.00, discount EUR 20.50."""
    db.execute(
        """
        CREATE TABLE marts.fct_campaign_performance AS
        SELECT
            campaign_id,
            campaign_name,
            'EUR' AS currency,
            has_control_group,
            CAST(redemptions AS BIGINT) AS attributed_redemptions,
            CAST(redemptions AS BIGINT) AS attributed_orders,
            CAST(redemptions AS BIGINT) AS attributed_customers,
            CAST(revenue AS HUGEINT) AS attributed_revenue,
            CAST(discount AS HUGEINT) AS attributed_discount_given,
            CAST(0 AS HUGEINT) AS attributed_discount_rolled_back,
            CAST(discount AS HUGEINT) AS attributed_discount,
            CAST(revenue - discount AS HUGEINT) AS attributed_net_revenue,
            revenue / nullif(discount, 0) AS attributed_return_on_discount,
            CAST(NULL AS HUGEINT) AS attributed_gift_card_liability,
            CASE WHEN has_control_group THEN 14 END AS incremental_window_days,
            CASE WHEN has_control_group THEN 0.65 END AS incremental_gross_margin,
            CAST(CASE WHEN has_control_group THEN 40 END AS BIGINT)
                AS incremental_treated_customers,
            CAST(CASE WHEN has_control_group THEN 10 END AS BIGINT)
                AS incremental_control_customers,
            CAST(CASE WHEN has_control_group THEN 0 END AS BIGINT)
                AS incremental_open_window_customers,
            CAST(NULL AS TIMESTAMP) AS outcome_window_closes_at,
            CAST(NULL AS DOUBLE) AS incremental_treated_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_control_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate_ci_low,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate_ci_high,
            CASE WHEN has_control_group THEN 0.30 END AS incremental_treated_conversion,
            CASE WHEN has_control_group THEN 0.20 END AS incremental_control_conversion,
            CASE WHEN has_control_group THEN 0.10 END AS incremental_conversion,
            CASE WHEN has_control_group THEN -0.05 END AS incremental_conversion_ci_low,
            CASE WHEN has_control_group THEN 0.25 END AS incremental_conversion_ci_high,
            CAST(CASE WHEN has_control_group THEN 3000 END AS BIGINT) AS incremental_revenue,
            CAST(CASE WHEN has_control_group THEN 1600 END AS BIGINT) AS incremental_revenue_ci_low,
            CAST(CASE WHEN has_control_group THEN 4400 END AS BIGINT)
                AS incremental_revenue_ci_high,
            CAST(CASE WHEN has_control_group THEN 750 END AS HUGEINT)
                AS incremental_treated_discount,
            CAST(CASE WHEN has_control_group THEN 1200 END AS BIGINT) AS incremental_profit,
            CAST(CASE WHEN has_control_group THEN 300 END AS BIGINT) AS incremental_profit_ci_low,
            CAST(CASE WHEN has_control_group THEN 2100 END AS BIGINT)
                AS incremental_profit_ci_high,
            CASE WHEN has_control_group THEN 459.18 END AS incremental_profit_se,
        FROM (VALUES
            ('winback', 'Win-back', true, 3, 10500, 1050),
            ('vip', 'VIP thank-you', false, 1, 4000, 1000),
            ('flash', 'Slow-night filler', false, 0, 0, 0)
        ) AS rows (campaign_id, campaign_name, has_control_group, redemptions, revenue, discount)
        """
    )


def fct_delivery_performance(db: duckdb.DuckDBPyConnection) -> None:
    """25 messages, 24 delivered (96.0 %), 1 failed, 2 retries."""
    db.execute(
        """
        CREATE TABLE marts.fct_delivery_performance AS
        SELECT
            channel,
            provider,
            CAST(delivery_date AS DATE) AS delivery_date,
            CAST(attempts AS BIGINT) AS attempts,
            CAST(messages AS BIGINT) AS messages_attempted,
            CAST(messages AS BIGINT) AS vouchers_attempted,
            CAST(delivered AS BIGINT) AS delivered,
            CAST(messages - delivered AS BIGINT) AS failed,
            CAST(attempts - messages AS BIGINT) AS retries,
            CAST(attempts - messages AS BIGINT) AS transient_failures,
            CAST(messages - delivered AS BIGINT) AS permanent_failures,
            delivered / messages AS success_rate,
            CAST(p50 AS DOUBLE) AS latency_p50_ms,
            CAST(p95 AS DOUBLE) AS latency_p95_ms,
            CAST(p99 AS DOUBLE) AS latency_p99_ms,
            CAST(p50 AS DOUBLE) AS latency_mean_ms,
            CAST(p99 AS DOUBLE) AS latency_max_ms,
        FROM (VALUES
            ('email', 'smtp', '2026-01-10', 12, 10, 9, 120, 300, 400),
            ('sms', 'twilio', '2026-01-10', 4, 4, 4, 80, 150, 160),
            ('push', 'fcm', '2026-01-12', 5, 5, 5, 40, 60, 70),
            ('email', 'smtp', '2026-01-20', 6, 6, 6, 110, 250, 300)
        ) AS rows (channel, provider, delivery_date, attempts, messages, delivered, p50, p95, p99)
        """
    )


def fct_delivery_failures(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE marts.fct_delivery_failures AS
        SELECT
            channel,
            provider,
            CAST(delivery_date AS DATE) AS delivery_date,
            error_reason,
            CAST(failed_attempts AS BIGINT) AS failed_attempts,
            CAST(transient AS BIGINT) AS transient_failures,
            CAST(permanent AS BIGINT) AS permanent_failures,
            CAST(failed_messages AS BIGINT) AS failed_messages,
        FROM (VALUES
            ('email', 'smtp', '2026-01-10', 'mailbox full', 3, 2, 1, 1),
            ('email', 'not_sent', '2026-01-10', 'consent withdrawn', 0, 0, 0, 1)
        ) AS rows (
            channel, provider, delivery_date, error_reason, failed_attempts, transient, permanent,
            failed_messages
        )
        """
    )


def fct_system_health(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE marts.fct_system_health AS
        SELECT
            'build_1' AS build_id,
            TIMESTAMP '2026-01-21 06:00:00' AS built_at,
            TIMESTAMP '2026-01-21 05:00:00' AS as_of,
            CAST(1234 AS BIGINT) AS ledger_events,
            CAST(1 AS BIGINT) AS min_event_seq,
            CAST(1234 AS BIGINT) AS max_event_seq,
            CAST(0 AS BIGINT) AS missing_seqs,
            TIMESTAMP '2026-01-21 05:00:00' AS last_recorded_at,
            CAST(3 AS BIGINT) AS extract_runs,
            TIMESTAMP '2026-01-21 05:30:00' AS last_extract_run_at,
            CAST(1234 AS BIGINT) AS ledger_high_water,
            CAST(100 AS BIGINT) AS last_extract_new_events,
            CAST(0 AS BIGINT) AS last_extract_late_events,
            CAST(0 AS BIGINT) AS lag_events,
            0.5 AS hours_since_last_extract,
            0.5 AS hours_from_latest_event_to_extract,
            CAST(20 AS BIGINT) AS redemption_attempts_1d,
            CAST(2 AS BIGINT) AS redemptions_rejected_1d,
            0.1 AS redemption_rejection_rate_1d,
            CAST(100 AS BIGINT) AS redemption_attempts_7d,
            CAST(5 AS BIGINT) AS redemptions_rejected_7d,
            CAST(0.05 AS DOUBLE) AS redemption_rejection_rate_7d,
            CAST(10 AS BIGINT) AS deliveries_1d,
            CAST(0 AS BIGINT) AS deliveries_failed_1d,
            0.0 AS delivery_failure_rate_1d,
            CAST(50 AS BIGINT) AS deliveries_7d,
            CAST(1 AS BIGINT) AS deliveries_failed_7d,
            0.02 AS delivery_failure_rate_7d,
            CAST(400 AS BIGINT) AS redemption_attempts_baseline,
            CAST(20 AS BIGINT) AS redemptions_rejected_baseline,
            CAST(0.05 AS DOUBLE) AS redemption_rejection_rate_baseline,
            CAST(300 AS BIGINT) AS deliveries_baseline,
            CAST(6 AS BIGINT) AS deliveries_failed_baseline,
            0.02 AS delivery_failure_rate_baseline,
            'ok' AS completeness_status,
            'every ledger event up to seq 1,234 is in the warehouse, none missing'
                AS completeness_rule,
            'ok' AS redemption_rejection_status,
            'rejection rate 5.0 % (5 of 100 redemption attempts) in 7 days against a 5.0 % '
            || 'baseline (20 of 400); ok: 1.0x the baseline, under 1.5x' AS redemption_rejection_rule,
            'ok' AS delivery_failure_status,
            'failure rate 2.0 % (1 of 50 deliveries) in 7 days against a 2.0 % baseline (6 of '
            || '300); ok: only 1 failures, too few to tell from chance' AS delivery_failure_rule,
            'ok' AS health_status,
        """
    )


def fct_campaign_health(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE marts.fct_campaign_health AS
        SELECT
            campaign_id,
            campaign_name,
            campaign_status,
            distribution_mode,
            is_active,
            CAST(NULL AS TIMESTAMP) AS last_trigger_at,
            CAST(NULL AS TIMESTAMP) AS last_published_at,
            CAST(NULL AS TIMESTAMP) AS last_delivered_at,
            CAST(pending AS BIGINT) AS pending_triggers,
            CAST(stale AS BIGINT) AS stale_pending_triggers,
            CAST(outcomes AS BIGINT) AS delivery_outcomes_7d,
            CAST(failures AS BIGINT) AS delivery_failures_7d,
            failures / nullif(outcomes, 0) AS failure_rate_7d,
            CAST(100 AS BIGINT) AS delivery_outcomes_baseline,
            CAST(2 AS BIGINT) AS delivery_failures_baseline,
            0.02 AS failure_rate_baseline,
            health_status,
            status_reason,
            CASE WHEN outcomes < 20
                THEN format('ok: {} deliveries in 7 days, too few to judge the delivery failure '
                    || 'rate (it takes 20)', outcomes)
                ELSE format('delivery failure rate {:.1f} % ({} of {} deliveries) in 7 days '
                    || 'against a 2.0 % baseline (2 of 100); ok: only {} failures, too few to '
                    || 'tell from chance', 100.0 * failures / outcomes, failures, outcomes,
                    failures)
            END AS failure_rate_rule,
            TIMESTAMP '2026-01-21 05:00:00' AS as_of,
        FROM (VALUES
            ('winback', 'Win-back', 'active', 'autopilot', true, 2, 1, 16, 1, 'warning',
             '1 triggers pending for more than 24 hours'),
            ('vip', 'VIP thank-you', 'finished', 'promotion', false, 0, 0, 5, 0, 'ok',
             'not active (status finished)'),
            ('flash', 'Slow-night filler', 'active', 'promotion', true, 1, 1, 0, 0, 'failing',
             'no delivery for 3 days while 4 vouchers or triggers awaited one')
        ) AS rows (
            campaign_id, campaign_name, campaign_status, distribution_mode, is_active, pending,
            stale, outcomes, failures, health_status, status_reason
        )
        """
    )


def fct_pending_triggers(db: duckdb.DuckDBPyConnection) -> None:
    """Three pending, two of them for more than 24 hours; the oldest 80 hours."""
    db.execute(
        """
        CREATE TABLE marts.fct_pending_triggers AS
        SELECT
            trigger_id,
            campaign_id,
            campaign_name,
            customer_id,
            'inactivity' AS trigger_type,
            TIMESTAMP '2026-01-21 05:00:00' - to_hours(age) AS matched_at,
            CAST(age AS DOUBLE) AS age_hours,
            TIMESTAMP '2026-01-21 05:00:00' AS as_of,
        FROM (VALUES
            ('t1', 'winback', 'Win-back', 'cust_7', 30),
            ('t2', 'winback', 'Win-back', 'cust_8', 2),
            ('t3', 'flash', 'Slow-night filler', 'cust_9', 80)
        ) AS rows (trigger_id, campaign_id, campaign_name, customer_id, age)
        """
    )


def fct_ledger_timeline(db: duckdb.DuckDBPyConnection) -> None:
    """cust_1 got and redeemed a win-back voucher; cust_5 allows no channel and was skipped;
    cust_6's delivery failed; cust_3 was held out."""
    db.execute(
        """
        CREATE TABLE marts.fct_ledger_timeline AS
        SELECT
            CAST(event_seq AS BIGINT) AS event_seq,
            'evt_' || event_seq AS event_id,
            CAST(occurred_at AS TIMESTAMP) AS occurred_at,
            event_type,
            campaign_id,
            voucher_id,
            customer_id,
            order_id,
            channel,
            redemption_id,
            CAST(NULL AS VARCHAR) AS store_id,
            CAST(NULL AS VARCHAR) AS staff_id,
            detail,
        FROM (VALUES
            (1, '2026-01-01 09:00:00', 'campaign_created', 'winback', NULL, NULL, NULL, NULL,
             NULL, 'created: Win-back, unique vouchers, percent discount, status active'),
            (2, '2026-01-02 08:00:00', 'customer_created', NULL, NULL, 'cust_5', NULL, NULL,
             NULL, 'customer created'),
            (3, '2026-01-03 08:00:00', 'consent_changed', NULL, NULL, 'cust_5', NULL, 'email',
             NULL, 'consent email: withdrawn'),
            (4, '2026-01-10 06:00:00', 'voucher_published', 'winback', 'v_1', 'cust_1', NULL,
             'email', NULL, 'published WB-1 by autopilot'),
            (5, '2026-01-10 06:00:01', 'voucher_delivered', 'winback', 'v_1', 'cust_1', NULL,
             'email', NULL, 'delivered via smtp'),
            (6, '2026-01-10 06:00:02', 'offer_skipped', 'winback', NULL, 'cust_5', NULL, NULL,
             NULL, 'skipped: no_consent'),
            (7, '2026-01-10 06:00:03', 'customer_held_out', 'winback', NULL, 'cust_3', NULL,
             NULL, NULL, 'held out (control group) by autopilot'),
            (8, '2026-01-10 06:00:04', 'voucher_published', 'winback', 'v_6', 'cust_6', NULL,
             'email', NULL, 'published WB-6 by autopilot'),
            (9, '2026-01-10 06:05:00', 'delivery_failed', 'winback', 'v_6', 'cust_6', NULL,
             'email', NULL, 'delivery failed after 3 attempts: mailbox full'),
            (10, '2026-01-11 12:00:00', 'redemption_succeeded', 'winback', 'v_1', 'cust_1',
             'o1', NULL, 'r1', 'redeemed: discount EUR 5.00 on order EUR 50.00'),
            (11, '2026-01-20 06:00:00', 'offer_skipped', 'winback', NULL, 'cust_5', NULL, NULL,
             NULL, 'skipped: no_consent')
        ) AS rows (
            event_seq, occurred_at, event_type, campaign_id, voucher_id, customer_id, order_id,
            channel, redemption_id, detail
        )
        """
    )


def published(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("CREATE TABLE main.published (published_at TIMESTAMP, info JSON)")
    db.execute(
        "INSERT INTO main.published VALUES "
        '(TIMESTAMP \'2026-01-21 06:05:00\', \'{"run_id": "fixture", "tables": 9}\')'
    )


REPORT_TABLES: tuple[Builder, ...] = (
    dim_campaigns,
    fct_campaign_funnel,
    fct_redemptions,
    fct_campaign_performance,
    fct_delivery_performance,
    fct_delivery_failures,
    fct_system_health,
    fct_campaign_health,
    fct_pending_triggers,
    fct_ledger_timeline,
    published,
)


def published_warehouse(home: Path, tables: Iterable[Builder] = REPORT_TABLES) -> Path:
    """Write `home/warehouse/published.duckdb` holding `tables`; return its path."""
    path = home / "warehouse" / "published.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA marts")
        for build in tables:
            build(db)
    return path


# ---- Record pages (campaigns, vouchers, orders, redemptions, customers, ml) ------------------
# The same three campaigns and customers as above; numbers worked out in
# tests/test_console_records.py.


def fct_campaign_budget(db: duckdb.DuckDBPyConnection) -> None:
    """winback: EUR 10.50 of EUR 500.00 used (2.1 %); vip EUR 10.00; flash nothing."""
    db.execute(
        """
        CREATE TABLE marts.fct_campaign_budget AS
        SELECT
            campaign_id,
            campaign_name,
            status,
            'EUR' AS currency,
            TIMESTAMP '2026-01-21 06:00:00' AS as_of,
            CAST(50000 AS BIGINT) AS budget_cap,
            CAST(used AS HUGEINT) AS budget_used,
            CAST(50000 - used AS HUGEINT) AS budget_remaining,
            used / 50000.0 AS budget_share_used,
            CAST(20 AS BIGINT) AS active_days,
            used / 20.0 AS burn_per_active_day,
            CAST(used AS HUGEINT) AS used_last_7_days,
            used / 7.0 AS burn_per_day_last_7_days,
            CASE WHEN used > 0 THEN (50000 - used) / (used / 7.0) END
                AS projected_days_to_exhaustion,
        FROM (VALUES
            ('winback', 'Win-back', 'active', 1050),
            ('vip', 'VIP thank-you', 'finished', 1000),
            ('flash', 'Slow-night filler', 'active', 0)
        ) AS rows (campaign_id, campaign_name, status, used)
        """
    )


def fct_redemption_rejections(db: duckdb.DuckDBPyConnection) -> None:
    """4 rejections: winback x1 (voucher_expired, 11 Jan) and x2 (order_below_minimum, then
    voucher_expired, 12 Jan); vip x3 (voucher_disabled, 14 Jan); x4 an unknown code (20 Jan)."""
    db.execute(
        """
        CREATE TABLE marts.fct_redemption_rejections AS
        SELECT
            rejection_id,
            CAST(rejected_at AS TIMESTAMP) AS rejected_at,
            CAST(CAST(rejected_at AS TIMESTAMP) AS DATE) AS rejected_date,
            campaign_id,
            voucher_id,
            voucher_code,
            customer_id,
            order_id,
            CAST(1500 AS BIGINT) AS order_amount,
            'EUR' AS currency,
            CAST(string_split(reasons, ',') AS VARCHAR[]) AS reason_codes,
            string_split(reasons, ',')[1] AS primary_reason_code,
            CAST(len(string_split(reasons, ',')) AS BIGINT) AS reasons,
            'store_1' AS store_id,
            'staff_1' AS staff_id,
            'in_store' AS sales_channel,
            CAST(NULL AS VARCHAR) AS idempotency_key,
        FROM (VALUES
            ('x1', '2026-01-11 13:00:00', 'winback', 'v_6', 'WB-6', 'cust_6', 'o8',
             'voucher_expired'),
            ('x2', '2026-01-12 19:00:00', 'winback', 'v_2', 'WB-2', 'cust_2', 'o9',
             'order_below_minimum,voucher_expired'),
            ('x3', '2026-01-14 12:00:00', 'vip', 'v_9', 'VIP-9', 'cust_9', 'o10',
             'voucher_disabled'),
            ('x4', '2026-01-20 12:00:00', NULL, NULL, 'NOPE', NULL, 'o11',
             'resource_not_found')
        ) AS rows (
            rejection_id, rejected_at, campaign_id, voucher_id, voucher_code, customer_id,
            order_id, reasons
        )
        """
    )


def dim_vouchers(db: duckdb.DuckDBPyConnection) -> None:
    """7 vouchers: active 2 (WB-3, SLOW), redeemed 3 (WB-1, WB-2, VIP-4), expired 1 (WB-6),
    disabled 1 (VIP-9). winback has 4 (WB-1, WB-2, WB-3, WB-6); SLOW is not published."""
    db.execute(
        """
        CREATE TABLE marts.dim_vouchers AS
        SELECT
            voucher_id,
            voucher_code,
            campaign_id,
            campaign_name,
            voucher_kind,
            CASE WHEN voucher_kind = 'standalone' THEN 'definition' ELSE 'generated' END
                AS creation_source,
            status,
            CASE WHEN campaign_id = 'vip' THEN 'finished' ELSE 'active' END AS campaign_status,
            'EUR' AS currency,
            customer_id,
            customer_id IS NOT NULL AS is_published,
            channel,
            CASE WHEN customer_id IS NOT NULL THEN 'autopilot' END AS publication_source,
            CAST(created_at AS TIMESTAMP) AS created_at,
            CAST(published_at AS TIMESTAMP) AS published_at,
            CASE WHEN delivery_status = 'delivered' THEN CAST(published_at AS TIMESTAMP)
                END AS delivered_at,
            delivery_status,
            CAST(CASE WHEN customer_id IS NOT NULL THEN 1 ELSE 0 END AS BIGINT)
                AS delivery_attempts,
            CAST(NULL AS TIMESTAMP) AS accepted_at,
            CAST(first_redeemed_at AS TIMESTAMP) AS first_redeemed_at,
            CAST(first_redeemed_at AS TIMESTAMP) AS last_redeemed_at,
            CAST(expires_at AS TIMESTAMP) AS expires_at,
            CASE WHEN status = 'disabled' THEN TIMESTAMP '2026-01-14 09:00:00' END
                AS disabled_at,
            CAST(redemptions AS BIGINT) AS redemptions,
            CAST(redemptions + rolled_back AS BIGINT) AS redemptions_succeeded,
            CAST(rolled_back AS BIGINT) AS redemptions_rolled_back,
            CAST(rejected AS BIGINT) AS redemptions_rejected,
            CAST(CASE WHEN voucher_kind = 'unique' THEN 1 END AS BIGINT) AS per_voucher_limit,
            CAST(CASE WHEN voucher_kind = 'unique' THEN 1 - redemptions END AS BIGINT)
                AS redemptions_left,
            CAST(discount_net AS BIGINT) AS discount_net,
            CAST(NULL AS BIGINT) AS gift_initial_balance,
            CAST(NULL AS BIGINT) AS gift_topped_up,
            CAST(NULL AS BIGINT) AS gift_balance,
            TIMESTAMP '2026-01-21 06:00:00' AS as_of,
        FROM (VALUES
            ('v_1', 'WB-1', 'winback', 'Win-back', 'unique', 'redeemed', 'cust_1', 'email',
             '2026-01-10 05:00:00', '2026-01-10 06:00:00', 'delivered', '2026-01-11 12:00:00',
             '2026-01-24 06:00:00', 1, 0, 0, 500),
            ('v_2', 'WB-2', 'winback', 'Win-back', 'unique', 'redeemed', 'cust_2', 'sms',
             '2026-01-10 05:00:00', '2026-01-10 06:00:00', 'delivered', '2026-01-12 19:30:00',
             '2026-01-24 06:00:00', 1, 0, 1, 300),
            ('v_3', 'WB-3', 'winback', 'Win-back', 'unique', 'active', 'cust_3', 'email',
             '2026-01-10 05:00:00', '2026-01-10 06:00:00', 'delivered', '2026-01-12 20:00:00',
             '2026-01-24 06:00:00', 0, 1, 0, 0),
            ('v_6', 'WB-6', 'winback', 'Win-back', 'unique', 'expired', 'cust_6', 'email',
             '2026-01-01 05:00:00', '2026-01-01 06:00:00', 'failed', NULL,
             '2026-01-10 06:00:00', 0, 0, 1, 0),
            ('v_4', 'VIP-4', 'vip', 'VIP thank-you', 'unique', 'redeemed', 'cust_4', 'push',
             '2026-01-12 05:00:00', '2026-01-12 06:00:00', 'delivered', '2026-01-13 13:00:00',
             '2026-01-15 00:00:00', 1, 0, 0, 1000),
            ('v_9', 'VIP-9', 'vip', 'VIP thank-you', 'unique', 'disabled', 'cust_9', 'push',
             '2026-01-12 05:00:00', '2026-01-12 06:00:00', 'delivered', NULL,
             '2026-01-15 00:00:00', 0, 0, 1, 0),
            ('v_s', 'SLOW', 'flash', 'Slow-night filler', 'standalone', 'active', NULL, NULL,
             '2026-01-18 00:00:00', NULL, NULL, NULL, '2026-01-31 00:00:00', 0, 0, 0, 0)
        ) AS rows (
            voucher_id, voucher_code, campaign_id, campaign_name, voucher_kind, status,
            customer_id, channel, created_at, published_at, delivery_status, first_redeemed_at,
            expires_at, redemptions, rolled_back, rejected, discount_net
        )
        """
    )


def fct_orders(db: duckdb.DuckDBPyConnection) -> None:
    """7 orders, EUR 195.00 before discount; 5 with a voucher; discount EUR 20.50 net (o3's
    was rolled back when it was cancelled); o6 refunded EUR 3.00; net EUR 172.00. cust_1: o1
    and o5, EUR 75.00. 10-13 Jan: o1-o4, EUR 140.00. EUR 30.00 and up: o1, o2, o4."""
    db.execute(
        """
        CREATE TABLE marts.fct_orders AS
        SELECT
            order_id,
            customer_id,
            CAST(ordered_at AS TIMESTAMP) AS ordered_at,
            CAST(CAST(ordered_at AS TIMESTAMP) AS DATE) AS ordered_date,
            CAST(amount AS BIGINT) AS amount,
            'EUR' AS currency,
            CAST(2 AS BIGINT) AS lines,
            'store_1' AS store_id,
            'in_store' AS sales_channel,
            CAST(CASE WHEN refunded > 0 THEN 1 ELSE 0 END AS BIGINT) AS refunds,
            CAST(refunded AS BIGINT) AS refunded_amount,
            CASE WHEN cancelled THEN CAST(ordered_at AS TIMESTAMP) + INTERVAL 2 HOUR
                END AS cancelled_at,
            cancelled AS is_cancelled,
            CAST(CASE WHEN cancelled THEN 0 ELSE amount - refunded END AS BIGINT)
                AS net_amount,
            CAST(CASE WHEN code IS NULL THEN 0 ELSE 1 END AS BIGINT) AS redemptions,
            CAST(CASE WHEN cancelled AND code IS NOT NULL THEN 1 ELSE 0 END AS BIGINT)
                AS redemptions_rolled_back,
            CAST(0 AS BIGINT) AS redemptions_rejected,
            code IS NOT NULL AS has_voucher,
            CASE WHEN code IS NULL THEN [] ELSE [code] END AS voucher_codes,
            CASE WHEN redemption_id IS NULL THEN [] ELSE [redemption_id] END AS redemption_ids,
            CASE WHEN campaign_id IS NULL THEN [] ELSE [campaign_id] END AS campaign_ids,
            CAST(discount AS BIGINT) AS discount,
            CAST(CASE WHEN cancelled THEN 0 ELSE discount END AS BIGINT) AS discount_net,
            CAST(0 AS BIGINT) AS gift_amount_net,
        FROM (VALUES
            ('o1', 'cust_1', '2026-01-11 12:00:00', 5000, 0, false, 'WB-1', 'r1', 'winback', 500),
            ('o2', 'cust_2', '2026-01-12 19:30:00', 3000, 0, false, 'WB-2', 'r2', 'winback', 300),
            ('o3', 'cust_3', '2026-01-12 20:00:00', 2000, 0, true, 'WB-3', 'r3', 'winback', 200),
            ('o4', 'cust_4', '2026-01-13 13:00:00', 4000, 0, false, 'VIP-4', 'r4', 'vip', 1000),
            ('o5', 'cust_1', '2026-01-21 11:00:00', 2500, 0, false, 'WB-5', 'r5', 'winback', 250),
            ('o6', 'cust_2', '2026-01-14 18:00:00', 1800, 300, false, NULL, NULL, NULL, 0),
            ('o7', 'cust_5', '2026-01-16 18:00:00', 1200, 0, false, NULL, NULL, NULL, 0)
        ) AS rows (
            order_id, customer_id, ordered_at, amount, refunded, cancelled, code,
            redemption_id, campaign_id, discount
        )
        """
    )


def dim_customers(db: duckdb.DuckDBPyConnection) -> None:
    """cust_1: 2 orders, lifetime value EUR 75.00, champion, email c***@example.com, phone
    +49*******12, email and push consent. cust_3 and cust_5 for company."""
    db.execute(
        """
        CREATE TABLE marts.dim_customers AS
        SELECT
            customer_id,
            TIMESTAMP '2025-06-01 10:00:00' AS signup_at,
            TIMESTAMP '2025-06-01 10:00:00' AS created_at,
            'store_1' AS home_store,
            '03-14' AS birthday,
            email_masked,
            phone_masked,
            email AS has_email_consent,
            false AS has_sms_consent,
            push AS has_push_consent,
            TIMESTAMP '2026-01-03 08:00:00' AS consent_updated_at,
            CAST(orders AS BIGINT) AS orders_recorded,
            CAST(0 AS BIGINT) AS orders_cancelled,
            CAST(orders AS BIGINT) AS orders,
            CAST(ltv AS BIGINT) AS gross_spend,
            CAST(0 AS BIGINT) AS refunded_amount,
            CAST(ltv AS BIGINT) AS net_spend,
            CAST(ltv AS BIGINT) AS lifetime_value,
            CAST(first_order AS TIMESTAMP) AS first_order_at,
            CAST(last_order AS TIMESTAMP) AS last_order_at,
            CAST(recency AS INTEGER) AS recency_days,
            CAST(orders AS BIGINT) AS frequency,
            CAST(ltv AS BIGINT) AS monetary,
            'pizza' AS favourite_category,
            ['pizza', 'pasta'] AS top_categories,
            'email' AS favourite_channel,
            CAST(1 AS BIGINT) AS offers_received,
            CAST(1 AS BIGINT) AS offers_delivered,
            CAST(1 AS BIGINT) AS offers_accepted,
            CAST(1 AS BIGINT) AS offers_redeemed,
            CAST(active AS BIGINT) AS active_vouchers,
            CAST(0 AS BIGINT) AS gift_balance,
            CAST(0 AS BIGINT) AS vouchers_expiring_7d,
            CAST(NULL AS TIMESTAMP) AS next_expiry_at,
            TIMESTAMP '2026-01-21 06:00:00' AS as_of,
            CAST(score AS INTEGER) AS recency_score,
            CAST(score AS INTEGER) AS frequency_score,
            CAST(score AS INTEGER) AS monetary_score,
            score::VARCHAR || score::VARCHAR || score::VARCHAR AS rfm_cell,
            CAST(3 * score AS INTEGER) AS rfm_total,
            segment AS rfm_segment,
        FROM (VALUES
            ('cust_1', 'c***@example.com', '+49*******12', true, true, 2, 7500,
             '2026-01-11 12:00:00', '2026-01-21 11:00:00', 0, 0, 5, 'champion'),
            ('cust_3', 'd***@example.com', NULL, true, false, 1, 0,
             '2026-01-12 20:00:00', '2026-01-12 20:00:00', 8, 1, 1, 'hibernating'),
            ('cust_5', NULL, NULL, false, false, 1, 1200,
             '2026-01-16 18:00:00', '2026-01-16 18:00:00', 4, 0, 3, 'promising')
        ) AS rows (
            customer_id, email_masked, phone_masked, email, push, orders, ltv, first_order,
            last_order, recency, active, score, segment
        )
        """
    )


def fct_customer_wallet(db: duckdb.DuckDBPyConnection) -> None:
    """cust_3 holds WB-3 (active, expires 24 Jan)."""
    db.execute(
        """
        CREATE TABLE marts.fct_customer_wallet AS
        SELECT
            'v_3' AS voucher_id,
            'cust_3' AS customer_id,
            'WB-3' AS voucher_code,
            'winback' AS campaign_id,
            'Win-back' AS campaign_name,
            'unique' AS voucher_kind,
            'email' AS channel,
            TIMESTAMP '2026-01-10 06:00:00' AS published_at,
            TIMESTAMP '2026-01-10 06:00:00' AS delivered_at,
            CAST(NULL AS TIMESTAMP) AS accepted_at,
            TIMESTAMP '2026-01-24 06:00:00' AS expires_at,
            3.0 AS days_to_expiry,
            true AS is_expiring_7d,
            CAST(1 AS BIGINT) AS redemptions_left,
            CAST(NULL AS BIGINT) AS gift_balance,
            TIMESTAMP '2026-01-21 06:00:00' AS as_of,
        """
    )


def ml_fraud_review_queue(db: duckdb.DuckDBPyConnection) -> None:
    """Three cases, by score: redemption r3 (0.95), device dev-abc (0.80), customer cust_2
    (0.40), scored by fraud-v2; and one set aside by reviews (store:store_9, 0.70)."""
    db.execute("CREATE SCHEMA IF NOT EXISTS ml")
    db.execute(
        """
        CREATE TABLE ml.fraud_review_queue AS
        SELECT
            flag_id,
            entity_type,
            entity_id,
            score,
            CAST(string_split(layers, ',') AS VARCHAR[]) AS layers,
            CAST(string_split(sources, ',') AS VARCHAR[]) AS sources,
            CAST(string_split(reasons, ';') AS VARCHAR[]) AS reasons,
            [0.0, 1.0, 0.0, 5.0]::DOUBLE[] AS series,
            'attempts per day from 2026-01-09' AS series_label,
            CAST(2 AS BIGINT) AS attempts,
            ['evt_1', 'evt_2']::VARCHAR[] AS event_ids,
            CASE WHEN customer_id IS NULL THEN []::VARCHAR[] ELSE [customer_id] END AS customer_ids,
            ['HAPPY5']::VARCHAR[] AS codes,
            ['dev-abc']::VARCHAR[] AS device_hashes,
            []::VARCHAR[] AS ip_hashes,
            []::VARCHAR[] AS payment_hashes,
            CASE WHEN redemption_id IS NULL THEN []::VARCHAR[] ELSE [redemption_id] END
                AS redemption_ids,
            TIMESTAMP '2026-01-12 20:01:00' AS first_flagged_at,
            suppressed,
            CASE WHEN suppressed THEN 'every source is noisy in reviews' END AS suppressed_by,
            customer_id,
            voucher_id,
            redemption_id,
            'store_1' AS store_id,
            staff_id,
            TIMESTAMP '2026-01-12 20:00:00' AS first_seen,
            TIMESTAMP '2026-01-12 20:05:00' AS last_seen,
            'fraud-v2' AS model_version,
            TIMESTAMP '2026-01-21 06:02:00' AS scored_at,
        FROM (VALUES
            ('redemption:r3', 'redemption', 'r3', 0.95, 'rules,model', 'code_velocity,model',
             'rolled back 5 minutes after redeeming;new device', 'cust_3', 'v_3', 'r3',
             'staff_1', false),
            ('device:dev-abc', 'device', 'dev-abc', 0.80, 'rules', 'new_accounts_on_device',
             '5 customers on one device', NULL, NULL, NULL, NULL, false),
            ('store:store_9', 'store', 'store_9', 0.70, 'drift', 'drift:small_basket_share',
             'small baskets rose from 5% to 20%', NULL, NULL, NULL, NULL, true),
            ('customer:cust_2', 'customer', 'cust_2', 0.40, 'model', 'model',
             'rejected twice in an hour', 'cust_2', NULL, NULL, NULL, false)
        ) AS rows (
            flag_id, entity_type, entity_id, score, layers, sources, reasons, customer_id,
            voucher_id, redemption_id, staff_id, suppressed
        )
        """
    )


def ml_next_best_offers(db: duckdb.DuckDBPyConnection) -> None:
    """cust_1: winback (score 0.12) then vip; cust_3: winback; cust_5: vip. By personalisation-v2."""
    db.execute("CREATE SCHEMA IF NOT EXISTS ml")
    db.execute(
        """
        CREATE TABLE ml.next_best_offers AS
        SELECT
            customer_id,
            CAST(rank AS INTEGER) AS rank,
            campaign_id,
            campaign_name,
            propensity,
            uplift,
            score,
            'personalisation-v2' AS model_version,
            TIMESTAMP '2026-01-21 06:03:00' AS scored_at,
        FROM (VALUES
            ('cust_1', 1, 'winback', 'Win-back', 0.40, 0.30, 0.12),
            ('cust_1', 2, 'vip', 'VIP thank-you', 0.20, 0.10, 0.02),
            ('cust_3', 1, 'winback', 'Win-back', 0.30, 0.20, 0.06),
            ('cust_5', 1, 'vip', 'VIP thank-you', 0.50, 0.10, 0.05)
        ) AS rows (customer_id, rank, campaign_id, campaign_name, propensity, uplift, score)
        """
    )


RECORD_TABLES: tuple[Builder, ...] = (
    *REPORT_TABLES,
    fct_campaign_budget,
    fct_redemption_rejections,
    dim_vouchers,
    fct_orders,
    dim_customers,
    fct_customer_wallet,
    ml_fraud_review_queue,
    ml_next_best_offers,
)


# ---- Misleading cases (tests/test_console_decisions.py) --------------------------------------
# Each builder replaces or extends a table above with a case that once led a reader astray.


def fct_campaign_performance_inconclusive(db: duckdb.DuckDBPyConnection) -> None:
    """Four campaigns with control groups, every 95 % interval across zero (the demo's own
    figures): the point estimates add up to EUR 993.94, which says nothing on its own. The sum's
    standard error is sqrt(184,944.97² + 282,429.00² + 287,217.96² + 287,653.21²) = 528,403
    minor units, so its interval is EUR 993.94 ± 1.96 x 5,284.03 = EUR -9,362.56 to
    EUR 11,350.44. Detectable at 80 % power: 2.8016 x SE, from EUR 5,181.39 (Win-back) to
    EUR 8,058.85 (VIP thank-you #3). Attributed revenue EUR 124,870.90 on EUR 18,977.16 of
    discount: 6.58x, attributed, not caused."""
    db.execute("DROP TABLE IF EXISTS marts.fct_campaign_performance")
    db.execute(
        """
        CREATE TABLE marts.fct_campaign_performance AS
        SELECT
            campaign_id,
            campaign_name,
            'EUR' AS currency,
            true AS has_control_group,
            CAST(100 AS BIGINT) AS attributed_redemptions,
            CAST(100 AS BIGINT) AS attributed_orders,
            CAST(100 AS BIGINT) AS attributed_customers,
            CAST(revenue AS HUGEINT) AS attributed_revenue,
            CAST(discount AS HUGEINT) AS attributed_discount_given,
            CAST(0 AS HUGEINT) AS attributed_discount_rolled_back,
            CAST(discount AS HUGEINT) AS attributed_discount,
            CAST(revenue - discount AS HUGEINT) AS attributed_net_revenue,
            revenue / discount AS attributed_return_on_discount,
            CAST(NULL AS HUGEINT) AS attributed_gift_card_liability,
            14 AS incremental_window_days,
            0.65 AS incremental_gross_margin,
            CAST(400 AS BIGINT) AS incremental_treated_customers,
            CAST(100 AS BIGINT) AS incremental_control_customers,
            CAST(0 AS BIGINT) AS incremental_open_window_customers,
            CAST(NULL AS TIMESTAMP) AS outcome_window_closes_at,
            CAST(NULL AS DOUBLE) AS incremental_treated_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_control_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate_ci_low,
            CAST(NULL AS DOUBLE) AS incremental_visit_rate_ci_high,
            0.30 AS incremental_treated_conversion,
            0.29 AS incremental_control_conversion,
            0.01 AS incremental_conversion,
            -0.09 AS incremental_conversion_ci_low,
            0.11 AS incremental_conversion_ci_high,
            CAST(0 AS BIGINT) AS incremental_revenue,
            CAST(0 AS BIGINT) AS incremental_revenue_ci_low,
            CAST(0 AS BIGINT) AS incremental_revenue_ci_high,
            CAST(0 AS HUGEINT) AS incremental_treated_discount,
            CAST(profit AS BIGINT) AS incremental_profit,
            CAST(low AS BIGINT) AS incremental_profit_ci_low,
            CAST(high AS BIGINT) AS incremental_profit_ci_high,
            se AS incremental_profit_se,
        FROM (VALUES
            ('winback', 'Win-back', 33895, -328597, 396387, 184944.97, 3000000, 450000),
            ('vip2', 'VIP thank-you #2', 151465, -402096, 705026, 282429.00, 3000000, 450000),
            ('vip1', 'VIP thank-you #1', -377945, -940892, 185002, 287217.96, 3000000, 450000),
            ('vip3', 'VIP thank-you #3', 291979, -271821, 855779, 287653.21, 3487090, 547716)
        ) AS rows (campaign_id, campaign_name, profit, low, high, se, revenue, discount)
        """
    )


def fct_system_health_rejections_jump(db: duckdb.DuckDBPyConnection) -> None:
    """The demo's last week: 66.4 % of 1,323 redemption attempts rejected against 58.6 % before;
    the mart's rejection monitor warns (over the 50 % ceiling with 99 % confidence)."""
    db.execute(
        """
        UPDATE marts.fct_system_health SET
            redemption_attempts_7d = 1323,
            redemptions_rejected_7d = 879,
            redemption_rejection_rate_7d = 879 / 1323,
            redemption_attempts_baseline = 11902,
            redemptions_rejected_baseline = 6978,
            redemption_rejection_rate_baseline = 6978 / 11902,
            redemption_rejection_status = 'warning',
            redemption_rejection_rule = 'rejection rate 66.4 % (879 of 1,323 redemption '
                || 'attempts) in 7 days against a 58.6 % baseline (6,978 of 11,902); warning: '
                || 'at least 63.4 % with 99 % confidence, at or above the 50 % ceiling',
            health_status = 'warning'
        """
    )


def fct_campaign_health_failure_jump(db: duckdb.DuckDBPyConnection) -> None:
    """Win-back's delivery failure rate jumps to 4.0 % of 1,000 deliveries against its own
    1.0 % baseline: failing, with the rule that says so (fct_campaign_health's unit test
    derives the same status and words from the deliveries)."""
    db.execute(
        """
        UPDATE marts.fct_campaign_health SET
            delivery_outcomes_7d = 1000,
            delivery_failures_7d = 40,
            failure_rate_7d = 0.04,
            delivery_outcomes_baseline = 1381,
            delivery_failures_baseline = 14,
            failure_rate_baseline = 14 / 1381,
            health_status = 'failing',
            failure_rate_rule = $rule,
            status_reason = $rule
        WHERE campaign_id = 'winback'
        """,
        {
            "rule": "delivery failure rate 4.0 % (40 of 1,000 deliveries) in 7 days against a "
            "1.0 % baseline (14 of 1,381); failing: 3.9x the baseline (the rule: 3.0x) and at "
            "least 2.5 % with 99.9 % confidence, above the baseline"
        },
    )


def orphan_redemption_and_old_orders(db: duckdb.DuckDBPyConnection) -> None:
    """r6: a standing redemption (discount EUR 1.50) on order o99, which the ledger never
    recorded; o0: an order from 2024, long before the first campaign."""
    db.execute(
        """
        INSERT INTO marts.fct_redemptions
        SELECT * REPLACE (
            'r6' AS redemption_id, 'o99' AS order_id, false AS is_order_recorded,
            CAST(150 AS BIGINT) AS discount, CAST(150 AS BIGINT) AS net_discount,
            TIMESTAMP '2026-01-14 12:00:00' AS redeemed_at, DATE '2026-01-14' AS redeemed_date
        )
        FROM marts.fct_redemptions WHERE redemption_id = 'r1'
        """
    )
    db.execute(
        """
        INSERT INTO marts.fct_orders
        SELECT * REPLACE (
            'o0' AS order_id, TIMESTAMP '2024-11-30 19:00:00' AS ordered_at,
            DATE '2024-11-30' AS ordered_date
        )
        FROM marts.fct_orders WHERE order_id = 'o7'
        """
    )
