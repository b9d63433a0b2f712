"""Customer 360: find a customer by id and see their profile, value, RFM segment, consent,
wallet, orders, vouchers and recent ledger activity. Contact details are shown masked only."""

from __future__ import annotations

import streamlit as st

from app_streamlit import page_state, ui
from app_streamlit import queries_customers as q
from app_streamlit import record_format as fmt

SEARCH_KEY = "customers_search"
DETAIL_KEY = "customers_detail"


def render() -> None:
    customers = q.count()
    page_state.restore(SEARCH_KEY, "", query_param="customer")
    st.text_input("Customer id", key=SEARCH_KEY, placeholder="e.g. c0000123 or part of it")
    text = (page_state.keep(SEARCH_KEY) or "").strip()
    if not text:
        st.caption(
            f"{ui.count(customers)} customers. Type a customer id, or part of one, to open "
            "their profile."
        )
        return
    matches = q.matching(text)
    if matches.empty:
        st.info(f"No customer id contains “{text}”.")
        return
    ids = list(matches["customer_id"])
    if len(ids) > 1:
        page_state.restore(DETAIL_KEY, ids[0])
        if st.session_state[DETAIL_KEY] not in ids:
            st.session_state[DETAIL_KEY] = ids[0]
        st.selectbox(
            f"{len(ids)}{'+' if len(ids) >= q.MATCHES_LIMIT else ''} customers match",
            ids,
            key=DETAIL_KEY,
        )
        customer_id = page_state.keep(DETAIL_KEY)
    else:
        customer_id = ids[0]
    detail(customer_id)


def detail(customer_id: str) -> None:
    found = q.customer(customer_id)
    if found.empty:
        st.warning(f"No customer {customer_id} in the published warehouse.")
        return
    c = found.iloc[0]
    currency = q.currency()
    st.header(customer_id)
    st.caption(
        f"Signed up {fmt.day(c['signup_at'])} · home store {fmt.text(c['home_store'])} · "
        f"birthday {fmt.text(c['birthday'])} · as of {fmt.day(c['as_of'])}"
    )
    ui.metrics(
        [
            ("Lifetime value", ui.money(c["lifetime_value"], currency), "Net spend to date."),
            ("Orders", ui.count(c["orders"]), f"{ui.count(c['orders_cancelled'])} cancelled."),
            (
                "Last order",
                fmt.day(c["last_order_at"]),
                f"{ui.count(c['recency_days'])} days before the as-of date."
                if fmt.has(c["recency_days"])
                else None,
            ),
            (
                "RFM segment",
                fmt.text(c["rfm_segment"]).replace("_", " "),
                f"Recency {fmt.text(c['recency_score'])}, frequency {fmt.text(c['frequency_score'])}, "
                f"monetary {fmt.text(c['monetary_score'])} (quintiles, 5 best).",
            ),
            (
                "Active vouchers",
                ui.count(c["active_vouchers"]),
                f"{ui.count(c['vouchers_expiring_7d'])} expire within 7 days.",
            ),
            ("Gift balance", ui.money(c["gift_balance"], currency)),
            (
                "Offers redeemed",
                f"{ui.count(c['offers_redeemed'])} of {ui.count(c['offers_received'])}",
                f"Delivered {ui.count(c['offers_delivered'])}, accepted "
                f"{ui.count(c['offers_accepted'])}.",
            ),
            (
                "Favourite",
                fmt.text(c["favourite_category"]),
                f"Channel: {fmt.text(c['favourite_channel'])}.",
            ),
        ]
    )
    contact, consent = st.columns(2)
    with contact:
        st.markdown("**Contact (masked)**")
        st.markdown(
            f"- Email: {fmt.text(c['email_masked'])}\n- Phone: {fmt.text(c['phone_masked'])}"
        )
    with consent:
        st.markdown("**Consent**")
        st.markdown(
            "\n".join(
                f"- {channel}: {'granted' if c[column] else 'not granted'}"
                for channel, column in (
                    ("Email", "has_email_consent"),
                    ("SMS", "has_sms_consent"),
                    ("Push", "has_push_consent"),
                )
            )
            + f"\n\nLast changed {fmt.day(c['consent_updated_at'])}."
        )

    wallet, orders, vouchers, activity = st.tabs(["Wallet", "Orders", "Vouchers", "Activity"])
    with wallet:
        frame = q.wallet(customer_id)
        ui.table(
            frame.assign(currency=currency) if not frame.empty else frame,
            key=f"customer_{customer_id}_wallet",
            money=("gift_balance",),
            empty="No active voucher in the wallet.",
        )
    with orders:
        frame = q.orders(customer_id)
        if not frame.empty:
            frame = frame.assign(voucher_codes=frame["voucher_codes"].map(fmt.joined))
        ui.table(
            frame,
            key=f"customer_{customer_id}_orders",
            money=("amount", "discount_net", "refunded_amount", "net_amount"),
            empty="No orders.",
        )
    with vouchers:
        ui.table(
            q.vouchers(customer_id),
            key=f"customer_{customer_id}_vouchers",
            money=("discount_net",),
            empty="No voucher was ever published to this customer.",
        )
    with activity:
        st.caption(f"The customer's latest {q.ROWS_LIMIT} ledger events, newest first.")
        ui.table(q.activity(customer_id), key=f"customer_{customer_id}_activity")


st.title("Customer 360")
with ui.error_boundary("the customer profile"):
    render()
