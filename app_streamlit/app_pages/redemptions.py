"""Redemptions: every successful redemption (standing or rolled back) and every rejected
attempt with its reason codes, filterable by campaign, date, customer, code, store and reason."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_records as q

CUSTOMER_KEY = "redemptions_customer"
CODE_KEY = "redemptions_code"
STORE_KEY = "redemptions_store"
OUTCOME_KEY = "redemptions_outcome"
REASONS_KEY = "redemptions_reasons"
OUTCOMES = {"all": "All", "standing": "Standing", "rolled_back": "Rolled back"}
OUTCOME_COLOURS = alt.Scale(domain=["redeemed", "rejected"], range=["#2e7d32", "#c62828"])


def render() -> None:
    chosen = filters.current()
    for key, default in ((CUSTOMER_KEY, ""), (CODE_KEY, ""), (STORE_KEY, "")):
        page_state.restore(key, default)
    customer, code, store = st.columns(3)
    customer.text_input("Customer id contains", key=CUSTOMER_KEY)
    code.text_input("Voucher code contains", key=CODE_KEY)
    store.text_input("Store contains", key=STORE_KEY)
    search = q.RedemptionSearch(
        customer=page_state.keep(CUSTOMER_KEY) or "",
        voucher_code=page_state.keep(CODE_KEY) or "",
        store=page_state.keep(STORE_KEY) or "",
    )
    st.caption(
        f"{chosen.describe(channels=False)}. A redemption counts on the day it was made, a "
        "rejection on the day it was refused. Channels do not apply: a redemption has none."
    )

    totals = q.redemption_totals(chosen, search)
    reasons = q.rejection_reasons(chosen, search)
    standing = int(totals["standing"].sum()) if not totals.empty else 0
    rejected = int(reasons["rejections"].sum()) if not reasons.empty else 0
    ui.metrics(
        [
            ("Redemptions", ui.count(standing), "Standing: not rolled back."),
            ("Rolled back", ui.count(totals["rolled_back"].sum() if not totals.empty else 0)),
            ("Rejected attempts", ui.count(rejected)),
            (
                "Rejection rate",
                ui.percent(ui.ratio(rejected, rejected + standing)),
                "Rejected attempts / (rejected + standing redemptions).",
            ),
            ("Discount given", ui.money_totals(totals, "net_discount"), "Net of rollbacks."),
            ("Order amount", ui.money_totals(totals, "order_amount"), "Of standing redemptions."),
            (
                "Order never recorded",
                ui.count(totals["orphans"].sum() if not totals.empty else 0),
                "Standing redemptions naming an order the ledger never recorded (orphan "
                "references): counted here, not on the Orders page (column 'Is order recorded' "
                "below).",
            ),
        ],
    )
    by_day = q.attempts_by_day(chosen, search)
    if not by_day.empty:
        st.altair_chart(
            alt.Chart(ui.consecutive_runs(by_day, "day", by=["outcome"]))
            .mark_line(point=True)
            .encode(
                x=alt.X("day:T", axis=ui.day_axis()),
                y=alt.Y("attempts:Q", title="Attempts"),
                color=alt.Color("outcome:N", scale=OUTCOME_COLOURS, legend=ui.legend()),
                detail="run:N",
                tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "outcome:N", "attempts:Q"],
            ),
            width="stretch",
        )

    succeeded, refused = st.tabs(["Redemptions", "Rejected redemptions"])
    with succeeded:
        page_state.restore(OUTCOME_KEY, "all")
        st.radio("Show", list(OUTCOMES), format_func=OUTCOMES.get, key=OUTCOME_KEY, horizontal=True)
        shown = q.redemptions(
            chosen,
            q.RedemptionSearch(**{**search.__dict__, "outcome": page_state.keep(OUTCOME_KEY)}),
        )
        _cap_note(len(shown))
        ui.table(
            shown,
            key="redemptions",
            hidden=("campaign_id",),
            money=("order_amount", "discount", "gift_amount", "net_discount"),
            empty="No redemption matches these filters.",
        )
    with refused:
        if not reasons.empty:
            st.altair_chart(
                alt.Chart(reasons)
                .mark_bar()
                .encode(
                    x=alt.X("rejections:Q", title="Rejections"),
                    y=alt.Y("reason:N", sort="-x", title=None),
                    tooltip=["reason:N", "rejections:Q"],
                ),
                width="stretch",
            )
        page_state.restore(REASONS_KEY, [])
        options = list(reasons["reason"]) if not reasons.empty else []
        st.session_state[REASONS_KEY] = [r for r in st.session_state[REASONS_KEY] if r in options]
        st.multiselect("Reason", options, key=REASONS_KEY, placeholder="All reasons")
        shown = q.rejections(
            chosen,
            q.RedemptionSearch(
                **{**search.__dict__, "reasons": tuple(page_state.keep(REASONS_KEY) or ())}
            ),
        )
        _cap_note(len(shown))
        ui.table(
            shown,
            key="rejections",
            hidden=("campaign_id",),
            money=("order_amount",),
            empty="No rejected redemption matches these filters.",
        )
        st.caption("Reason codes are explained in docs/reason-codes.md.")


def _cap_note(rows: int) -> None:
    if rows >= q.ROWS_LIMIT:
        st.caption(f"Showing the newest {q.ROWS_LIMIT:,}; narrow the filters to see the rest.")


st.title("Redemptions")
with ui.error_boundary("the redemptions"):
    render()
