"""The SQL behind the record browsers: vouchers, orders and redemptions, and each record's
history from the ledger timeline.

Every function returns raw warehouse values (money in integer minor units); the page formats
them. What the analyst types or picks reaches DuckDB as bound parameters only; the shared
filters become clauses through `Filters.where`. Lists are capped (ROWS_LIMIT, newest first) so
that a warehouse of millions of rows still answers at once; totals are computed over all
matching rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from app_streamlit import db
from app_streamlit.filters import Filters

ROWS_LIMIT = 2000
HISTORY_LIMIT = 1000


def _like(text: str) -> str:
    """A case-insensitive substring pattern; the user's own % and _ match literally."""
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# ---- Vouchers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VoucherSearch:
    code: str = ""
    holder: str = ""
    statuses: tuple[str, ...] = ()
    expires_from: date | None = None
    expires_to: date | None = None


def _voucher_where(filters: Filters, search: VoucherSearch) -> tuple[str, dict[str, object]]:
    where, params = filters.where(campaign_column="campaign_id", channel_column="channel")
    clauses = [where]
    if search.code.strip():
        clauses.append("voucher_code ILIKE $code ESCAPE '\\'")
        params["code"] = _like(search.code)
    if search.holder.strip():
        clauses.append("customer_id ILIKE $holder ESCAPE '\\'")
        params["holder"] = _like(search.holder)
    if search.statuses:
        clauses.append("list_contains($statuses::VARCHAR[], status)")
        params["statuses"] = list(search.statuses)
    if search.expires_from is not None:
        clauses.append("CAST(expires_at AS DATE) >= $expires_from")
        params["expires_from"] = search.expires_from
    if search.expires_to is not None:
        clauses.append("CAST(expires_at AS DATE) <= $expires_to")
        params["expires_to"] = search.expires_to
    return " AND ".join(clauses), params


def voucher_statuses(filters: Filters, search: VoucherSearch) -> pd.DataFrame:
    where, params = _voucher_where(filters, search)
    return db.query(
        f"""
        SELECT status, count(*) AS vouchers
        FROM marts.dim_vouchers
        WHERE {where}
        GROUP BY status
        ORDER BY status
        """,
        params,
    )


def vouchers(filters: Filters, search: VoucherSearch) -> pd.DataFrame:
    where, params = _voucher_where(filters, search)
    return db.query(
        f"""
        SELECT voucher_code, coalesce(campaign_name, campaign_id) AS campaign, status,
            voucher_kind, customer_id, channel, published_at, delivery_status, accepted_at,
            first_redeemed_at, expires_at, redemptions, redemptions_rejected, discount_net,
            gift_balance, currency, campaign_id, voucher_id,
        FROM marts.dim_vouchers
        WHERE {where}
        ORDER BY coalesce(published_at, created_at) DESC, voucher_id
        LIMIT {ROWS_LIMIT}
        """,
        params,
    )


def voucher(voucher_id: str) -> pd.DataFrame:
    return db.query("SELECT * FROM marts.dim_vouchers WHERE voucher_id = $id", {"id": voucher_id})


def voucher_ids_by_code(code: str) -> pd.DataFrame:
    return db.query(
        "SELECT voucher_id FROM marts.dim_vouchers WHERE upper(voucher_code) = upper($code)",
        {"code": code.strip()},
    )


# ---- Orders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSearch:
    customer: str = ""
    voucher_code: str = ""
    min_amount: int | None = None  # minor units
    max_amount: int | None = None
    with_voucher_only: bool = False


def _order_where(filters: Filters, search: OrderSearch) -> tuple[str, dict[str, object]]:
    where, params = filters.where(date_column="ordered_date")
    clauses = [where]
    if filters.campaigns:
        clauses.append("list_has_any(campaign_ids, $order_campaigns::VARCHAR[])")
        params["order_campaigns"] = list(filters.campaigns)
    if search.customer.strip():
        clauses.append("customer_id ILIKE $customer ESCAPE '\\'")
        params["customer"] = _like(search.customer)
    if search.voucher_code.strip():
        clauses.append("array_to_string(voucher_codes, ' ') ILIKE $code ESCAPE '\\'")
        params["code"] = _like(search.voucher_code)
    if search.min_amount is not None:
        clauses.append("amount >= $min_amount")
        params["min_amount"] = search.min_amount
    if search.max_amount is not None:
        clauses.append("amount <= $max_amount")
        params["max_amount"] = search.max_amount
    if search.with_voucher_only:
        clauses.append("has_voucher")
    return " AND ".join(clauses), params


def order_totals(filters: Filters, search: OrderSearch) -> pd.DataFrame:
    """Per currency: orders, with a standing voucher (a redemption not rolled back), with
    redemptions all rolled back, cancelled, amount, refunds, standing redemptions, discount."""
    where, params = _order_where(filters, search)
    return db.query(
        f"""
        SELECT currency, count(*) AS orders,
            count(*) FILTER (WHERE redemptions > redemptions_rolled_back) AS with_voucher,
            count(*) FILTER (WHERE has_voucher AND redemptions = redemptions_rolled_back)
                AS all_rolled_back,
            coalesce(sum(redemptions - redemptions_rolled_back), 0) AS standing_redemptions,
            coalesce(sum(redemptions_rolled_back), 0) AS rolled_back_redemptions,
            count(*) FILTER (WHERE is_cancelled) AS cancelled,
            coalesce(sum(amount), 0) AS amount,
            coalesce(sum(refunded_amount), 0) AS refunded_amount,
            coalesce(sum(net_amount), 0) AS net_amount,
            coalesce(sum(discount_net), 0) AS discount_net,
        FROM marts.fct_orders
        WHERE {where}
        GROUP BY currency
        ORDER BY currency
        """,
        params,
    )


def orders_by_day(filters: Filters, search: OrderSearch) -> pd.DataFrame:
    where, params = _order_where(filters, search)
    return db.query(
        f"""
        SELECT ordered_date AS day, currency, count(*) AS orders,
            count(*) FILTER (WHERE redemptions > redemptions_rolled_back) AS with_voucher,
            coalesce(sum(amount), 0) AS amount,
        FROM marts.fct_orders
        WHERE {where}
        GROUP BY day, currency
        ORDER BY day, currency
        """,
        params,
    )


def orders(filters: Filters, search: OrderSearch) -> pd.DataFrame:
    where, params = _order_where(filters, search)
    return db.query(
        f"""
        SELECT order_id, ordered_at, customer_id, amount, refunded_amount, is_cancelled,
            net_amount, voucher_codes, discount_net, store_id, sales_channel, lines, currency,
        FROM marts.fct_orders
        WHERE {where}
        ORDER BY ordered_at DESC, order_id
        LIMIT {ROWS_LIMIT}
        """,
        params,
    )


def orders_outside_range(filters: Filters) -> pd.DataFrame:
    """Orders the date range leaves out, before and after it, and the first order's day."""
    return db.query(
        """
        SELECT
            count(*) FILTER (WHERE ordered_date < $start) AS before,
            count(*) FILTER (WHERE ordered_date > $end) AS after,
            min(ordered_date) AS first_day,
        FROM marts.fct_orders
        """,
        {"start": filters.start, "end": filters.end},
    )


def redemptions_by_order_state(filters: Filters) -> pd.DataFrame:
    """Per currency, the Redemptions page's successful redemptions in the range split by what
    the Orders page can show of them: standing on a recorded order, standing on an order the
    ledger never recorded (an orphan reference), and rolled back."""
    where, params = filters.where(date_column="redeemed_date", campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT currency,
            count(*) FILTER (WHERE NOT is_rolled_back AND is_order_recorded) AS on_orders,
            coalesce(sum(net_discount) FILTER (WHERE NOT is_rolled_back AND is_order_recorded), 0)
                AS discount_on_orders,
            count(*) FILTER (WHERE NOT is_rolled_back AND NOT is_order_recorded) AS orphans,
            coalesce(
                sum(net_discount) FILTER (WHERE NOT is_rolled_back AND NOT is_order_recorded), 0
            ) AS discount_orphans,
            count(*) FILTER (WHERE is_rolled_back) AS rolled_back,
            coalesce(sum(rolled_back_discount) FILTER (WHERE is_rolled_back), 0)
                AS discount_rolled_back,
        FROM marts.fct_redemptions
        WHERE {where}
        GROUP BY currency
        ORDER BY currency
        """,
        params,
    )


def orphan_redemptions(filters: Filters) -> pd.DataFrame:
    """Redemptions in the range naming an order the ledger never recorded, newest first."""
    where, params = filters.where(date_column="redeemed_date", campaign_column="campaign_id")
    return db.query(
        f"""
        SELECT redeemed_at, order_id, voucher_code, customer_id, order_amount, net_discount,
            is_rolled_back, currency, campaign_id, redemption_id,
        FROM marts.fct_redemptions
        WHERE {where} AND NOT is_order_recorded
        ORDER BY redeemed_at DESC, redemption_id
        LIMIT {ROWS_LIMIT}
        """,
        params,
    )


def order(order_id: str) -> pd.DataFrame:
    return db.query("SELECT * FROM marts.fct_orders WHERE order_id = $id", {"id": order_id})


# ---- Redemptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class RedemptionSearch:
    customer: str = ""
    voucher_code: str = ""
    store: str = ""
    outcome: str = "all"  # all, standing, rolled_back
    reasons: tuple[str, ...] = ()


def _redemption_where(
    filters: Filters, search: RedemptionSearch, date_column: str
) -> tuple[str, dict[str, object]]:
    where, params = filters.where(date_column=date_column, campaign_column="campaign_id")
    clauses = [where]
    for column, text in (
        ("customer_id", search.customer),
        ("voucher_code", search.voucher_code),
        ("store_id", search.store),
    ):
        if text.strip():
            clauses.append(f"{column} ILIKE ${column} ESCAPE '\\'")
            params[column] = _like(text)
    return " AND ".join(clauses), params


def redemption_totals(filters: Filters, search: RedemptionSearch) -> pd.DataFrame:
    """Per currency: successful redemptions (standing and rolled back), standing ones whose
    order the ledger never recorded, and discount."""
    where, params = _redemption_where(filters, search, "redeemed_date")
    return db.query(
        f"""
        SELECT currency,
            count(*) FILTER (WHERE NOT is_rolled_back) AS standing,
            count(*) FILTER (WHERE NOT is_rolled_back AND NOT is_order_recorded) AS orphans,
            count(*) FILTER (WHERE is_rolled_back) AS rolled_back,
            coalesce(sum(net_discount), 0) AS net_discount,
            coalesce(sum(order_amount) FILTER (WHERE NOT is_rolled_back), 0) AS order_amount,
        FROM marts.fct_redemptions
        WHERE {where}
        GROUP BY currency
        ORDER BY currency
        """,
        params,
    )


def redemptions(filters: Filters, search: RedemptionSearch) -> pd.DataFrame:
    where, params = _redemption_where(filters, search, "redeemed_date")
    if search.outcome == "standing":
        where += " AND NOT is_rolled_back"
    elif search.outcome == "rolled_back":
        where += " AND is_rolled_back"
    return db.query(
        f"""
        SELECT redeemed_at, coalesce(
                (SELECT c.campaign_name FROM marts.dim_campaigns AS c
                 WHERE c.campaign_id = fct_redemptions.campaign_id),
                fct_redemptions.campaign_id
            ) AS campaign,
            voucher_code, customer_id, order_id, is_order_recorded, order_amount, discount,
            gift_amount, net_discount, is_rolled_back, rollback_reason, store_id, staff_id,
            sales_channel, currency, campaign_id, redemption_id,
        FROM marts.fct_redemptions
        WHERE {where}
        ORDER BY redeemed_at DESC, redemption_id
        LIMIT {ROWS_LIMIT}
        """,
        params,
    )


def rejection_reasons(filters: Filters, search: RedemptionSearch) -> pd.DataFrame:
    where, params = _redemption_where(filters, search, "rejected_date")
    return db.query(
        f"""
        SELECT primary_reason_code AS reason, count(*) AS rejections
        FROM marts.fct_redemption_rejections
        WHERE {where}
        GROUP BY reason
        ORDER BY rejections DESC, reason
        """,
        params,
    )


def rejections(filters: Filters, search: RedemptionSearch) -> pd.DataFrame:
    where, params = _redemption_where(filters, search, "rejected_date")
    if search.reasons:
        where += " AND list_contains($reasons::VARCHAR[], primary_reason_code)"
        params["reasons"] = list(search.reasons)
    return db.query(
        f"""
        SELECT rejected_at, coalesce(
                (SELECT c.campaign_name FROM marts.dim_campaigns AS c
                 WHERE c.campaign_id = fct_redemption_rejections.campaign_id),
                fct_redemption_rejections.campaign_id
            ) AS campaign,
            voucher_code, customer_id, order_id, order_amount, primary_reason_code,
            array_to_string(reason_codes, ', ') AS reason_codes, store_id, staff_id,
            sales_channel, currency, campaign_id, rejection_id,
        FROM marts.fct_redemption_rejections
        WHERE {where}
        ORDER BY rejected_at DESC, rejection_id
        LIMIT {ROWS_LIMIT}
        """,
        params,
    )


def attempts_by_day(filters: Filters, search: RedemptionSearch) -> pd.DataFrame:
    ok_where, ok_params = _redemption_where(filters, search, "redeemed_date")
    bad_where, bad_params = _redemption_where(filters, search, "rejected_date")
    return db.query(
        f"""
        SELECT redeemed_date AS day, 'redeemed' AS outcome, count(*) AS attempts
        FROM marts.fct_redemptions WHERE {ok_where} GROUP BY day
        UNION ALL
        SELECT rejected_date, 'rejected', count(*)
        FROM marts.fct_redemption_rejections WHERE {bad_where} GROUP BY rejected_date
        ORDER BY day, outcome
        """,
        {**ok_params, **bad_params},
    )


# ---- History -----------------------------------------------------------------------------


def history(*, voucher_id: str | None = None, order_id: str | None = None) -> pd.DataFrame:
    """A voucher's or an order's ledger events, oldest first."""
    column = "voucher_id" if voucher_id is not None else "order_id"
    return db.query(
        f"""
        SELECT occurred_at, event_type, detail, campaign_id, customer_id, order_id,
            voucher_id, channel, redemption_id, store_id, staff_id, event_seq
        FROM marts.fct_ledger_timeline
        WHERE {column} = $id
        ORDER BY event_seq
        LIMIT {HISTORY_LIMIT}
        """,
        {"id": voucher_id if voucher_id is not None else order_id},
    )
