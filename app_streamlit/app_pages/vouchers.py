"""Vouchers: browse and filter every voucher by code, campaign, status, holder and expiry; open
one to see where it stands and its whole history from the ledger."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_records as q
from app_streamlit import record_format as fmt

CODE_KEY = "vouchers_code"
HOLDER_KEY = "vouchers_holder"
STATUS_KEY = "vouchers_status"
EXPIRY_KEY = "vouchers_expiry"
DETAIL_KEY = "vouchers_detail"
STATUSES = ("active", "redeemed", "expired", "disabled")


def render() -> None:
    chosen = filters.current()
    search = _search()
    st.caption(
        f"{chosen.describe(dates=False)} (campaign and channel filters apply; a voucher not "
        "published yet has no channel, so a channel filter hides it). The date range does not "
        "apply here: use the expiry filter."
    )
    statuses = q.voucher_statuses(chosen, search)
    by_status = dict(zip(statuses["status"], statuses["vouchers"], strict=True))
    ui.metrics(
        [("Vouchers", ui.count(sum(by_status.values())))]
        + [(status.capitalize(), ui.count(by_status.get(status, 0))) for status in STATUSES],
    )
    listing = q.vouchers(chosen, search)
    if len(listing) >= q.ROWS_LIMIT:
        st.caption(f"Showing the newest {q.ROWS_LIMIT:,}; narrow the filters to see the rest.")
    ui.table(
        listing,
        key="vouchers",
        hidden=("campaign_id",),
        money=("discount_net", "gift_balance"),
        empty="No voucher matches these filters.",
        missing="not yet, or not applicable: a voucher not published has no holder or "
        "channel, one that is not a gift card no gift balance.",
    )

    page_state.restore(DETAIL_KEY, "", query_param="voucher")
    st.text_input(
        "Open a voucher",
        key=DETAIL_KEY,
        placeholder="voucher code or id (v_…)",
        help="The exact code (any case) or voucher id.",
    )
    wanted = (page_state.keep(DETAIL_KEY) or "").strip()
    if wanted:
        detail(wanted)


def _search() -> q.VoucherSearch:
    for key, default in ((CODE_KEY, ""), (HOLDER_KEY, ""), (STATUS_KEY, []), (EXPIRY_KEY, ())):
        page_state.restore(key, default)
    code, holder, status, expiry = st.columns([2, 2, 2, 2])
    code.text_input("Code contains", key=CODE_KEY)
    holder.text_input("Holder (customer id) contains", key=HOLDER_KEY)
    status.multiselect("Status", STATUSES, key=STATUS_KEY, placeholder="All statuses")
    expiry.date_input("Expires between", key=EXPIRY_KEY, format="YYYY-MM-DD")
    window = tuple(page_state.keep(EXPIRY_KEY) or ())
    return q.VoucherSearch(
        code=page_state.keep(CODE_KEY) or "",
        holder=page_state.keep(HOLDER_KEY) or "",
        statuses=tuple(page_state.keep(STATUS_KEY) or ()),
        expires_from=window[0] if len(window) >= 1 else None,
        expires_to=window[1] if len(window) == 2 else None,
    )


def detail(wanted: str) -> None:
    ids = [wanted] if wanted.startswith("v_") else list(q.voucher_ids_by_code(wanted)["voucher_id"])
    found = q.voucher(ids[0]) if len(ids) == 1 else pd.DataFrame()
    if len(ids) > 1:
        st.warning(f"{len(ids)} vouchers have the code {wanted}: open one by its id.")
        return
    if found.empty:
        st.warning(f"No voucher {wanted} in the published warehouse.")
        return
    v = found.iloc[0]
    currency = v["currency"]
    st.header(f"Voucher {v['voucher_code']}")
    st.caption(
        f"`{v['voucher_id']}` · campaign {fmt.text(v['campaign_name'], v['campaign_id'])} "
        f"(`{v['campaign_id']}`) · {fmt.text(v['voucher_kind'])} · as of {fmt.when(v['as_of'])}"
    )
    ui.metrics(
        [
            ("Status", fmt.text(v["status"])),
            ("Holder", v["customer_id"] if fmt.has(v["customer_id"]) else "— (not published)"),
            (
                "Redemptions",
                ui.count(v["redemptions"]),
                f"Standing; {ui.count(v['redemptions_rolled_back'])} rolled back, "
                f"{ui.count(v['redemptions_rejected'])} rejected attempts.",
            ),
            ("Discount given", ui.money(v["discount_net"], currency), "Net of rollbacks."),
            ("Expires", fmt.when(v["expires_at"])),
            (
                "Redemptions left",
                ui.count(v["redemptions_left"]) if fmt.has(v["redemptions_left"]) else "no limit",
            ),
            (
                "Gift balance",
                ui.money(v["gift_balance"], currency) if v["voucher_kind"] == "gift" else "—",
            ),
            ("Delivery", fmt.text(v["delivery_status"])),
        ]
    )
    st.markdown(
        "**Journey** · "
        + " → ".join(
            f"{label} {fmt.when(v[column])}"
            for label, column in (
                ("created", "created_at"),
                ("published", "published_at"),
                ("delivered", "delivered_at"),
                ("accepted", "accepted_at"),
                ("first redeemed", "first_redeemed_at"),
            )
        )
    )
    st.subheader("History")
    ui.table(
        q.history(voucher_id=str(v["voucher_id"])),
        key=f"voucher_{v['voucher_id']}_history",
        empty="No ledger events for this voucher.",
    )


st.title("Vouchers")
with ui.error_boundary("the vouchers"):
    render()
