"""The SQL behind the Campaigns page: the list and one campaign's detail.

Every function returns raw warehouse values (money in integer minor units, shares as
fractions); the page formats them. Values are bound parameters, never pasted into SQL; the
shared filters become clauses through `Filters.where`. Caching (with a TTL, keyed on the
published file) happens in `db.query`.
"""

from __future__ import annotations

import pandas as pd

from app_streamlit import db
from app_streamlit.filters import Filters

# Rows of a campaign's ledger activity shown at once: a busy campaign has thousands a day.
ACTIVITY_LIMIT = 500
DETAIL_ROWS_LIMIT = 5000


def campaign_list(filters: Filters) -> pd.DataFrame:
    """One row per campaign (the shared campaign filter applies) with its headline numbers,
    which are all-time figures as of the latest ledger event."""
    where, params = filters.where(campaign_column="campaigns.campaign_id")
    return db.query(
        f"""
        SELECT
            campaigns.campaign_id,
            campaigns.campaign_name,
            campaigns.status,
            campaigns.distribution_mode,
            campaigns.voucher_kind,
            campaigns.discount_type,
            campaigns.active_from,
            campaigns.active_until,
            campaigns.currency,
            campaigns.vouchers_published,
            campaigns.vouchers_redeemed,
            campaigns.redemptions,
            campaigns.redemptions_rejected,
            campaigns.redemptions_rolled_back,
            campaigns.discount_net,
            campaigns.budget_cap,
            budget.budget_share_used,
        FROM marts.dim_campaigns AS campaigns
        LEFT JOIN marts.fct_campaign_budget AS budget USING (campaign_id)
        WHERE {where}
        ORDER BY campaigns.status = 'active' DESC, campaigns.created_at DESC,
            campaigns.campaign_id
        """,
        params,
    )


def campaign(campaign_id: str) -> pd.DataFrame:
    """The campaign's configuration and all-time counts (one row, or none)."""
    return db.query(
        """
        SELECT
            campaign_id, campaign_name, main_campaign_name, status, status_since, voucher_kind,
            standalone_code, discount_type, discount_value, discount_max_discount,
            discount_free_product, currency, budget_cap, per_customer_limit, per_voucher_limit,
            campaign_total_limit, min_order_amount, is_acceptance_required,
            valid_days_after_publication, distribution_mode, distribution_segment,
            distribution_channels, trigger_type, control_share, has_control_group, active_from,
            active_until, created_at, as_of, vouchers_published, vouchers_delivered,
            vouchers_accepted, vouchers_redeemed, customers_treated, customers_held_out,
            redemptions, redemptions_rolled_back, redemptions_rejected, customers_redeemed,
            discount_net, last_redeemed_at,
        FROM marts.dim_campaigns
        WHERE campaign_id = $campaign_id
        """,
        {"campaign_id": campaign_id},
    )


def budget(campaign_id: str) -> pd.DataFrame:
    return db.query(
        """
        SELECT budget_cap, budget_used, budget_remaining, budget_share_used,
            burn_per_day_last_7_days, projected_days_to_exhaustion, currency,
        FROM marts.fct_campaign_budget
        WHERE campaign_id = $campaign_id
        """,
        {"campaign_id": campaign_id},
    )


def vouchers_created(campaign_id: str) -> pd.DataFrame:
    """Vouchers of the campaign by status (all-time)."""
    return db.query(
        """
        SELECT status, count(*) AS vouchers
        FROM marts.dim_vouchers
        WHERE campaign_id = $campaign_id
        GROUP BY status
        ORDER BY status
        """,
        {"campaign_id": campaign_id},
    )


def funnel_totals(campaign_id: str, filters: Filters) -> pd.DataFrame:
    """Publications, skips and deliveries of the campaign's cohorts in the date range and
    channels (held-out and skipped customers are channel 'none')."""
    where, params = filters.where(date_column="cohort_date", channel_column="channel")
    return db.query(
        f"""
        SELECT
            coalesce(sum(published), 0) AS published,
            coalesce(sum(skipped), 0) AS skipped,
            coalesce(sum(held_out), 0) AS held_out,
            coalesce(sum(delivered), 0) AS delivered,
            coalesce(sum(delivery_failed), 0) AS delivery_failed,
            coalesce(sum(delivery_pending), 0) AS delivery_pending,
            coalesce(sum(accepted), 0) AS accepted,
            coalesce(sum(redeemed), 0) AS redeemed,
        FROM marts.fct_campaign_funnel
        WHERE campaign_id = $campaign_id AND {where}
        """,
        {**params, "campaign_id": campaign_id},
    )


def redemptions_by_day(campaign_id: str, filters: Filters) -> pd.DataFrame:
    """Per day in the range: redemptions, rejections and rollbacks, each counted on the day
    it happened, with the discount given that day (before rollbacks)."""
    params = {"campaign_id": campaign_id, "start": filters.start, "end": filters.end}
    return db.query(
        """
        WITH moves AS (
            SELECT redeemed_date AS day, 'redeemed' AS outcome, discount AS amount
            FROM marts.fct_redemptions
            WHERE campaign_id = $campaign_id
            UNION ALL
            SELECT CAST(rolled_back_at AS DATE), 'rolled back', rolled_back_discount
            FROM marts.fct_redemptions
            WHERE campaign_id = $campaign_id AND is_rolled_back
            UNION ALL
            SELECT rejected_date, 'rejected', 0
            FROM marts.fct_redemption_rejections
            WHERE campaign_id = $campaign_id
        )
        SELECT day, outcome, count(*) AS attempts, sum(amount) AS amount
        FROM moves
        WHERE day BETWEEN $start AND $end
        GROUP BY day, outcome
        ORDER BY day, outcome
        """,
        params,
    )


def rejection_reasons(campaign_id: str, filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="rejected_date")
    return db.query(
        f"""
        SELECT primary_reason_code AS reason, count(*) AS rejections
        FROM marts.fct_redemption_rejections
        WHERE campaign_id = $campaign_id AND {where}
        GROUP BY reason
        ORDER BY rejections DESC, reason
        """,
        {**params, "campaign_id": campaign_id},
    )


def activity(campaign_id: str, filters: Filters) -> pd.DataFrame:
    """The campaign's latest ledger events in the date range, newest first."""
    where, params = filters.where(date_column="occurred_at")
    return db.query(
        f"""
        SELECT occurred_at, event_type, detail, voucher_id, customer_id, order_id, channel,
            redemption_id, event_seq
        FROM marts.fct_ledger_timeline
        WHERE campaign_id = $campaign_id AND {where}
        ORDER BY event_seq DESC
        LIMIT {ACTIVITY_LIMIT}
        """,
        {**params, "campaign_id": campaign_id},
    )


def activity_by_type(campaign_id: str, filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="occurred_at")
    return db.query(
        f"""
        SELECT event_type, count(*) AS events, max(occurred_at) AS last_at
        FROM marts.fct_ledger_timeline
        WHERE campaign_id = $campaign_id AND {where}
        GROUP BY event_type
        ORDER BY events DESC, event_type
        """,
        {**params, "campaign_id": campaign_id},
    )


def vouchers(campaign_id: str) -> pd.DataFrame:
    return db.query(
        f"""
        SELECT voucher_code, status, customer_id, channel, created_at, published_at,
            delivery_status, accepted_at, first_redeemed_at, expires_at, redemptions,
            redemptions_rejected, discount_net, gift_balance, currency, voucher_id,
        FROM marts.dim_vouchers
        WHERE campaign_id = $campaign_id
        ORDER BY coalesce(published_at, created_at) DESC, voucher_id
        LIMIT {DETAIL_ROWS_LIMIT}
        """,
        {"campaign_id": campaign_id},
    )


def redemptions(campaign_id: str, filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="redeemed_date")
    return db.query(
        f"""
        SELECT redeemed_at, voucher_code, customer_id, order_id, order_amount, discount,
            gift_amount, net_discount, is_rolled_back, rollback_reason, store_id, staff_id,
            currency, redemption_id,
        FROM marts.fct_redemptions
        WHERE campaign_id = $campaign_id AND {where}
        ORDER BY redeemed_at DESC, redemption_id
        LIMIT {DETAIL_ROWS_LIMIT}
        """,
        {**params, "campaign_id": campaign_id},
    )


def publications(campaign_id: str, filters: Filters) -> pd.DataFrame:
    """Vouchers published in the range, and the skips and hold-outs there, newest first.
    Skips and hold-outs have no channel: like the marts, the channel filter calls it 'none'."""
    where, params = filters.where(date_column="occurred_at")
    return db.query(
        f"""
        SELECT occurred_at, event_type, customer_id, channel, voucher_id, detail
        FROM marts.fct_ledger_timeline
        WHERE campaign_id = $campaign_id
            AND event_type IN ('voucher_published', 'offer_skipped', 'customer_held_out')
            AND (len($channels::VARCHAR[]) = 0
                OR list_contains($channels::VARCHAR[], coalesce(channel, 'none')))
            AND {where}
        ORDER BY event_seq DESC
        LIMIT {DETAIL_ROWS_LIMIT}
        """,
        {**params, "campaign_id": campaign_id, "channels": list(filters.channels)},
    )


def deliveries(campaign_id: str, filters: Filters) -> pd.DataFrame:
    where, params = filters.where(date_column="occurred_at", channel_column="channel")
    return db.query(
        f"""
        SELECT occurred_at, event_type, channel, customer_id, voucher_id, detail
        FROM marts.fct_ledger_timeline
        WHERE campaign_id = $campaign_id
            AND event_type IN ('voucher_delivered', 'delivery_failed')
            AND {where}
        ORDER BY event_seq DESC
        LIMIT {DETAIL_ROWS_LIMIT}
        """,
        {**params, "campaign_id": campaign_id},
    )
