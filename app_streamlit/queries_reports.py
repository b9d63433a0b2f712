"""The SQL behind the Reports, Monitoring and calendar pages.

Every function returns a DataFrame of raw warehouse values (money in integer minor units,
shares as fractions) and leaves presentation to the page. Filters arrive as a `Filters` and
become bound parameters through `Filters.where`; nothing a user picks is pasted into SQL.
Rates are recomputed from summed counts, never averaged, so that they stay true for any
combination of days, campaigns and channels.
"""

from __future__ import annotations

import pandas as pd

from app_streamlit import db
from app_streamlit.filters import Filters

FUNNEL_STEPS = ("published", "delivered", "accepted", "redeemed")

# ---- Overview ----------------------------------------------------------------------------


def redemption_totals(filters: Filters) -> pd.DataFrame:
    """Per currency: standing redemptions, rolled-back ones, discount net of rollbacks, and the
    revenue of the orders that carried a standing redemption (order amounts before refunds)."""
    where, params = filters.where(date_column="redeemed_date", campaign_column="campaign_id")
    return db.query(
        f"""
        WITH redemptions AS (
            SELECT * FROM marts.fct_redemptions WHERE {where}
        ),
        orders AS (
            SELECT order_id, any_value(currency) AS currency, max(order_amount) AS order_amount
            FROM redemptions
            WHERE NOT is_rolled_back AND order_id IS NOT NULL
            GROUP BY order_id
        ),
        by_currency AS (
            SELECT
                currency,
                count(*) FILTER (WHERE NOT is_rolled_back) AS redemptions,
                count(*) FILTER (WHERE is_rolled_back) AS rolled_back,
                coalesce(sum(net_discount), 0) AS discount,
                count(DISTINCT customer_id) FILTER (WHERE NOT is_rolled_back) AS customers,
            FROM redemptions
            GROUP BY currency
        ),
        revenue AS (
            SELECT currency, count(*) AS orders, coalesce(sum(order_amount), 0) AS revenue
            FROM orders
            GROUP BY currency
        )
        SELECT
            by_currency.*,
            coalesce(revenue.orders, 0) AS orders,
            coalesce(revenue.revenue, 0) AS revenue,
        FROM by_currency
        LEFT JOIN revenue USING (currency)
        ORDER BY currency
        """,
        params,
    )


def redemptions_by_day(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="redeemed_date", campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT
            redeemed_date AS day,
            currency,
            count(*) FILTER (WHERE NOT is_rolled_back) AS redemptions,
            coalesce(sum(net_discount), 0) AS discount,
            coalesce(sum(order_amount) FILTER (WHERE NOT is_rolled_back), 0) AS revenue,
        FROM marts.fct_redemptions
        WHERE {where}
        GROUP BY ALL
        ORDER BY day, currency
        """,
        params,
    )


def funnel_by_day(filters: Filters, sent_through_a_channel: bool = False) -> pd.DataFrame:
    """The funnel per publication day; `sent_through_a_channel` leaves out channel 'none' (held
    out, skipped, and vouchers published without a channel), as conversion rates need."""
    where, params = filters.where(
        date_column="cohort_date", campaign_column="campaign_id", channel_column="channel"
    )
    only_sent = " AND channel != 'none'" if sent_through_a_channel else ""
    return db.query(
        f"""
        SELECT
            cohort_date AS day,
            sum(published) AS published,
            sum(delivered) AS delivered,
            sum(accepted) AS accepted,
            sum(redeemed) AS redeemed,
            sum(held_out) AS held_out,
            sum(skipped) AS skipped,
        FROM marts.fct_campaign_funnel
        WHERE {where}{only_sent}
        GROUP BY ALL
        ORDER BY day
        """,
        params,
    )


def campaigns_in_range(filters: Filters) -> pd.DataFrame:
    """Per campaign, over the range: vouchers through the funnel and what redemptions brought."""
    funnel_where, funnel_params = filters.where(
        date_column="cohort_date", campaign_column="campaign_id", channel_column="channel"
    )
    redemption_where, redemption_params = filters.where(
        date_column="redeemed_date", campaign_column="campaign_id"
    )
    return db.query(
        f"""
        WITH funnel AS (
            SELECT
                campaign_id,
                sum(published) AS published,
                sum(delivered) AS delivered,
                sum(accepted) AS accepted,
            FROM marts.fct_campaign_funnel
            WHERE {funnel_where}
            GROUP BY campaign_id
        ),
        redemptions AS (
            SELECT
                campaign_id,
                count(*) FILTER (WHERE NOT is_rolled_back) AS redemptions,
                coalesce(sum(net_discount), 0) AS discount,
                coalesce(sum(order_amount) FILTER (WHERE NOT is_rolled_back), 0) AS revenue,
            FROM marts.fct_redemptions
            WHERE {redemption_where}
            GROUP BY campaign_id
        )
        SELECT
            campaigns.campaign_name AS campaign,
            campaigns.status,
            coalesce(funnel.published, 0) AS published,
            coalesce(funnel.delivered, 0) AS delivered,
            coalesce(funnel.accepted, 0) AS accepted,
            coalesce(redemptions.redemptions, 0) AS redemptions,
            coalesce(redemptions.discount, 0) AS discount,
            coalesce(redemptions.revenue, 0) AS revenue,
            campaigns.currency,
            campaigns.campaign_id,
        FROM marts.dim_campaigns AS campaigns
        LEFT JOIN funnel USING (campaign_id)
        LEFT JOIN redemptions USING (campaign_id)
        WHERE funnel.campaign_id IS NOT NULL OR redemptions.campaign_id IS NOT NULL
        ORDER BY revenue DESC, redemptions DESC, campaign
        """,
        {**funnel_params, **redemption_params},
    )


# ---- Customer engagement -------------------------------------------------------------------


def funnel_by_campaign_channel(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(
        date_column="funnel.cohort_date",
        campaign_column="funnel.campaign_id",
        channel_column="funnel.channel",
    )
    return db.query(
        f"""
        SELECT
            coalesce(campaigns.campaign_name, funnel.campaign_id) AS campaign,
            funnel.channel,
            sum(funnel.held_out) AS held_out,
            sum(funnel.skipped) AS skipped,
            sum(funnel.published) AS published,
            sum(funnel.delivered) AS delivered,
            sum(funnel.delivery_failed) AS delivery_failed,
            sum(funnel.delivery_pending) AS delivery_pending,
            -- null where the ledger records no engagement of that kind (the sum of nulls)
            sum(funnel.opened) AS opened,
            sum(funnel.clicked) AS clicked,
            sum(funnel.visited) AS visited,
            sum(funnel.accepted) AS accepted,
            sum(funnel.redeemed) AS redeemed,
            sum(funnel.rejected) AS rejected,
            sum(funnel.rolled_back) AS rolled_back,
            any_value(campaigns.is_acceptance_required) AS acceptance_required,
            funnel.campaign_id,
        FROM marts.fct_campaign_funnel AS funnel
        LEFT JOIN marts.dim_campaigns AS campaigns USING (campaign_id)
        WHERE {where}
        GROUP BY funnel.campaign_id, campaigns.campaign_name, funnel.channel
        ORDER BY campaign, funnel.channel
        """,
        params,
    )


def skip_reasons_by_campaign(filters: Filters) -> pd.DataFrame:
    """Customers a campaign chose but never sent anything to, and why."""
    where, params = filters.where(
        date_column="funnel.cohort_date",
        campaign_column="funnel.campaign_id",
        channel_column="funnel.channel",
    )
    return db.query(
        f"""
        SELECT
            coalesce(campaigns.campaign_name, funnel.campaign_id) AS campaign,
            sum(held_out) AS held_out,
            sum(skipped_no_consent) AS no_consent,
            sum(skipped_frequency_cap) AS frequency_cap,
            sum(skipped_channel_unavailable) AS channel_unavailable,
            sum(skipped_no_contact) AS no_contact,
            sum(skipped_unknown_customer) AS unknown_customer,
            sum(skipped_other) AS other,
            funnel.campaign_id,
        FROM marts.fct_campaign_funnel AS funnel
        LEFT JOIN marts.dim_campaigns AS campaigns USING (campaign_id)
        WHERE {where}
        GROUP BY funnel.campaign_id, campaigns.campaign_name
        HAVING sum(held_out) + sum(skipped) > 0
        ORDER BY campaign
        """,
        params,
    )


# ---- Campaign performance ------------------------------------------------------------------


def campaign_performance(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT
            coalesce(campaign_name, campaign_id) AS campaign,
            currency,
            has_control_group,
            attributed_redemptions,
            attributed_orders,
            attributed_customers,
            attributed_revenue,
            attributed_discount,
            attributed_net_revenue,
            attributed_return_on_discount,
            attributed_gift_card_liability,
            incremental_treated_customers,
            incremental_control_customers,
            incremental_treated_conversion,
            incremental_control_conversion,
            incremental_conversion,
            incremental_conversion_ci_low,
            incremental_conversion_ci_high,
            incremental_revenue,
            incremental_revenue_ci_low,
            incremental_revenue_ci_high,
            incremental_treated_discount,
            incremental_profit,
            incremental_profit_ci_low,
            incremental_profit_ci_high,
            incremental_profit_se,
            incremental_window_days,
            incremental_open_window_customers,
            outcome_window_closes_at,
            incremental_treated_visit_rate,
            incremental_control_visit_rate,
            incremental_visit_rate,
            incremental_visit_rate_ci_low,
            incremental_visit_rate_ci_high,
            campaign_id,
        FROM marts.fct_campaign_performance
        WHERE {where}
        ORDER BY campaign
        """,
        params,
    )


# ---- Delivery performance ------------------------------------------------------------------


def delivery_by_day(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="delivery_date", channel_column="channel")
    return db.query(
        f"""
        SELECT *
        FROM marts.fct_delivery_performance
        WHERE {where}
        ORDER BY delivery_date, channel, provider
        """,
        params,
    )


def delivery_failures(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="delivery_date", channel_column="channel")
    return db.query(
        f"""
        SELECT *
        FROM marts.fct_delivery_failures
        WHERE {where}
        ORDER BY delivery_date, channel, provider, error_reason
        """,
        params,
    )


# ---- System health -------------------------------------------------------------------------


def system_health() -> pd.DataFrame:
    return db.query("SELECT * FROM marts.fct_system_health ORDER BY built_at DESC")


def publications() -> pd.DataFrame:
    return db.query(
        "SELECT published_at, CAST(info AS VARCHAR) AS info FROM main.published "
        "ORDER BY published_at DESC"
    )


# ---- Monitoring ----------------------------------------------------------------------------


def campaign_health(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT
            coalesce(campaign_name, campaign_id) AS campaign,
            health_status,
            status_reason,
            failure_rate_rule,
            campaign_status,
            distribution_mode,
            is_active,
            pending_triggers,
            stale_pending_triggers,
            delivery_outcomes_7d,
            delivery_failures_7d,
            failure_rate_7d,
            delivery_outcomes_baseline,
            delivery_failures_baseline,
            failure_rate_baseline,
            last_trigger_at,
            last_published_at,
            last_delivered_at,
            campaign_id,
            as_of,
        FROM marts.fct_campaign_health
        WHERE {where}
        ORDER BY
            CASE health_status WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
            campaign
        """,
        params,
    )


def pending_triggers(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT
            coalesce(campaign_name, campaign_id) AS campaign,
            customer_id,
            trigger_type,
            matched_at,
            age_hours,
            trigger_id,
            campaign_id,
            as_of,
        FROM marts.fct_pending_triggers
        WHERE {where}
        ORDER BY age_hours DESC, trigger_id
        """,
        params,
    )


# ---- Diagnostics ---------------------------------------------------------------------------


def campaign_choices() -> pd.DataFrame:
    return db.query(
        "SELECT campaign_id, coalesce(campaign_name, campaign_id) AS campaign_name, status "
        "FROM marts.dim_campaigns ORDER BY campaign_name, campaign_id"
    )


def campaign_profile(campaign_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT * FROM marts.dim_campaigns WHERE campaign_id = $campaign_id",
        {"campaign_id": campaign_id},
    )


def customer_profile(customer_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT * FROM marts.dim_customers WHERE customer_id = $customer_id",
        {"customer_id": customer_id},
    )


def customers_like(fragment: str, limit: int = 50) -> pd.DataFrame:
    """Customer ids starting with what the analyst typed, from the timeline."""
    return db.query(
        "SELECT DISTINCT customer_id FROM marts.fct_ledger_timeline "
        "WHERE customer_id IS NOT NULL AND starts_with(customer_id, $fragment) "
        "ORDER BY customer_id LIMIT $limit",
        {"fragment": fragment, "limit": limit},
    )


TIMELINE_COLUMNS = (
    "event_seq, occurred_at, event_type, detail, campaign_id, voucher_id, customer_id, "
    "order_id, channel, redemption_id, store_id, staff_id"
)

# Events that explain why an offer did not reach a customer, or reached them late.
PROBLEM_EVENTS = (
    "offer_skipped",
    "customer_held_out",
    "trigger_failed",
    "delivery_failed",
    "consent_changed",
    "voucher_disabled",
    "redemption_rejected",
)


def _timeline_where(
    campaign_id: str | None, customer_id: str | None, filters: Filters | None
) -> tuple[str, dict[str, object]]:
    clauses = []
    params: dict[str, object] = {}
    if campaign_id is not None:
        clauses.append("timeline.campaign_id = $campaign_id")
        params["campaign_id"] = campaign_id
    if customer_id is not None:
        clauses.append("timeline.customer_id = $customer_id")
        params["customer_id"] = customer_id
    if filters is not None:
        where, date_params = filters.where(date_column="timeline.occurred_at")
        clauses.append(where)
        params |= date_params
    return " AND ".join(clauses) or "TRUE", params


def timeline(
    *,
    campaign_id: str | None = None,
    customer_id: str | None = None,
    filters: Filters | None = None,
    event_types: tuple[str, ...] = (),
    limit: int = 2000,
) -> pd.DataFrame:
    """Ledger events of one campaign and/or one customer, oldest first (the latest `limit`)."""
    where, params = _timeline_where(campaign_id, customer_id, filters)
    if event_types:
        where += " AND list_contains($event_types::VARCHAR[], timeline.event_type)"
        params["event_types"] = list(event_types)
    params["limit"] = limit
    return db.query(
        f"""
        SELECT * FROM (
            SELECT
                timeline.event_seq,
                timeline.occurred_at,
                timeline.event_type,
                timeline.detail,
                coalesce(campaigns.campaign_name, timeline.campaign_id) AS campaign,
                timeline.customer_id,
                timeline.voucher_id,
                timeline.order_id,
                timeline.channel,
                timeline.redemption_id,
                timeline.store_id,
                timeline.staff_id,
                timeline.campaign_id,
            FROM marts.fct_ledger_timeline AS timeline
            LEFT JOIN marts.dim_campaigns AS campaigns USING (campaign_id)
            WHERE {where}
            ORDER BY timeline.event_seq DESC
            LIMIT $limit
        )
        ORDER BY event_seq
        """,
        params,
    )


def timeline_counts(
    *,
    campaign_id: str | None = None,
    customer_id: str | None = None,
    filters: Filters | None = None,
) -> pd.DataFrame:
    where, params = _timeline_where(campaign_id, customer_id, filters)
    return db.query(
        f"""
        SELECT event_type, count(*) AS events, max(occurred_at) AS latest
        FROM marts.fct_ledger_timeline AS timeline
        WHERE {where}
        GROUP BY event_type
        ORDER BY events DESC, event_type
        """,
        params,
    )


def timeline_problems(
    *,
    campaign_id: str | None = None,
    customer_id: str | None = None,
    filters: Filters | None = None,
) -> pd.DataFrame:
    """Skips, hold-outs, failed triggers and deliveries, consent changes and rejections,
    grouped by what the ledger says happened."""
    where, params = _timeline_where(campaign_id, customer_id, filters)
    params["problems"] = list(PROBLEM_EVENTS)
    return db.query(
        f"""
        SELECT
            timeline.event_type,
            timeline.detail,
            coalesce(campaigns.campaign_name, timeline.campaign_id) AS campaign,
            timeline.channel,
            count(*) AS events,
            count(DISTINCT timeline.customer_id) AS customers,
            min(timeline.occurred_at) AS first_at,
            max(timeline.occurred_at) AS last_at,
        FROM marts.fct_ledger_timeline AS timeline
        LEFT JOIN marts.dim_campaigns AS campaigns USING (campaign_id)
        WHERE {where} AND list_contains($problems::VARCHAR[], timeline.event_type)
        GROUP BY ALL
        ORDER BY events DESC, last_at DESC
        """,
        params,
    )


def campaign_health_of(campaign_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT health_status, status_reason FROM marts.fct_campaign_health "
        "WHERE campaign_id = $campaign_id",
        {"campaign_id": campaign_id},
    )


# ---- Campaign calendar ---------------------------------------------------------------------


def campaign_calendar(filters: Filters) -> pd.DataFrame:
    where, params = filters.where(campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT
            coalesce(campaign_name, campaign_id) AS campaign,
            main_campaign_name AS main_campaign,
            status,
            distribution_mode,
            voucher_kind,
            coalesce(active_from, created_at) AS starts_at,
            active_until AS ends_at,
            active_from IS NULL AS starts_at_creation,
            active_until IS NULL AS open_ended,
            vouchers_published,
            redemptions,
            discount_net,
            currency,
            campaign_id,
            as_of,
        FROM marts.dim_campaigns
        WHERE {where}
        ORDER BY starts_at, campaign
        """,
        params,
    )
