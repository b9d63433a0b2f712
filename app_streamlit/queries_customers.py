"""The SQL behind Customer 360: finding a customer, their profile, wallet, orders, vouchers and
recent ledger activity.

Contact details exist in the warehouse only in the masked form the ledger carries
(`c***@example.com`); nothing here reads or shows more. Values are bound parameters.
"""

from __future__ import annotations

import pandas as pd

from app_streamlit import db

MATCHES_LIMIT = 50
ROWS_LIMIT = 500


def count() -> int:
    return int(db.query("SELECT count(*) AS n FROM marts.dim_customers")["n"].iloc[0])


def matching(text: str) -> pd.DataFrame:
    """Customers whose id contains `text` (case-insensitive), exact match first."""
    pattern = "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return db.query(
        f"""
        SELECT customer_id, rfm_segment, orders, lifetime_value
        FROM marts.dim_customers
        WHERE customer_id ILIKE $pattern ESCAPE '\\'
        ORDER BY lower(customer_id) = lower($text) DESC, customer_id
        LIMIT {MATCHES_LIMIT}
        """,
        {"pattern": pattern, "text": text.strip()},
    )


def customer(customer_id: str) -> pd.DataFrame:
    return db.query(
        """
        SELECT customer_id, signup_at, created_at, home_store, birthday, email_masked,
            phone_masked, has_email_consent, has_sms_consent, has_push_consent,
            consent_updated_at, orders_recorded, orders_cancelled, orders, gross_spend,
            refunded_amount, net_spend, lifetime_value, first_order_at, last_order_at,
            recency_days, recency_score, frequency_score, monetary_score, rfm_cell,
            rfm_segment, favourite_category, top_categories, favourite_channel,
            offers_received, offers_delivered, offers_accepted, offers_redeemed,
            active_vouchers, gift_balance, vouchers_expiring_7d, next_expiry_at, as_of,
        FROM marts.dim_customers
        WHERE customer_id = $id
        """,
        {"id": customer_id},
    )


def wallet(customer_id: str) -> pd.DataFrame:
    return db.query(
        """
        SELECT voucher_code, campaign_name, campaign_id, voucher_kind, channel, published_at,
            accepted_at, expires_at, days_to_expiry, is_expiring_7d, redemptions_left,
            gift_balance, voucher_id,
        FROM marts.fct_customer_wallet
        WHERE customer_id = $id
        ORDER BY expires_at NULLS LAST, published_at
        """,
        {"id": customer_id},
    )


def currency() -> str | None:
    """The currency of customer money figures: dim_customers does not carry one, and the
    core records all of a merchant's orders in one currency."""
    found = db.query(
        "SELECT currency, count(*) AS n FROM marts.fct_orders GROUP BY currency ORDER BY n DESC"
    )
    return None if found.empty else str(found["currency"].iloc[0])


def orders(customer_id: str) -> pd.DataFrame:
    return db.query(
        f"""
        SELECT order_id, ordered_at, amount, discount_net, refunded_amount, is_cancelled,
            net_amount, voucher_codes, store_id, currency,
        FROM marts.fct_orders
        WHERE customer_id = $id
        ORDER BY ordered_at DESC
        LIMIT {ROWS_LIMIT}
        """,
        {"id": customer_id},
    )


def vouchers(customer_id: str) -> pd.DataFrame:
    return db.query(
        f"""
        SELECT voucher_code, campaign_id, status, channel, published_at, delivery_status,
            accepted_at, first_redeemed_at, expires_at, redemptions, discount_net, currency,
            voucher_id,
        FROM marts.dim_vouchers
        WHERE customer_id = $id
        ORDER BY published_at DESC
        LIMIT {ROWS_LIMIT}
        """,
        {"id": customer_id},
    )


def activity(customer_id: str) -> pd.DataFrame:
    return db.query(
        f"""
        SELECT occurred_at, event_type, detail, campaign_id, voucher_id, order_id, channel
        FROM marts.fct_ledger_timeline
        WHERE customer_id = $id
        ORDER BY event_seq DESC
        LIMIT {ROWS_LIMIT}
        """,
        {"id": customer_id},
    )
