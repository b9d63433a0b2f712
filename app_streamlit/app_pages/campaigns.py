"""Campaigns: the list with status, dates and headline numbers, and a detail view per campaign
like a commercial campaign page: configuration, funnel, redemptions over time, budget against
its cap, its ledger activity, and tabs listing its vouchers, redemptions, publications and
deliveries."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, page_state, ui
from app_streamlit import queries_campaigns as q
from app_streamlit import record_format as fmt

STATUS_KEY = "campaigns_status"
DETAIL_KEY = "campaigns_detail"
OUTCOME_COLOURS = alt.Scale(
    domain=["redeemed", "rejected", "rolled back"], range=["#2e7d32", "#c62828", "#f9a825"]
)


def render() -> None:
    chosen = filters.current()
    listing = q.campaign_list(chosen)
    if listing.empty:
        ui.empty_state("No campaigns in the published warehouse")
        return

    page_state.restore(STATUS_KEY, [])
    statuses = sorted(listing["status"].dropna().unique())
    st.session_state[STATUS_KEY] = [s for s in st.session_state[STATUS_KEY] if s in statuses]
    st.multiselect("Status", statuses, key=STATUS_KEY, placeholder="All statuses")
    picked = page_state.keep(STATUS_KEY)
    if picked:
        listing = listing[listing["status"].isin(picked)]
    st.caption(
        f"{len(listing)} campaign(s) · {chosen.describe(dates=False, channels=False)}. "
        "Headline numbers are all-time, as of the latest ledger event; the detail view below "
        "follows the date range and channels."
    )
    ui.table(
        listing[
            [
                "campaign_name",
                "status",
                "redemptions",
                "discount_net",
                "budget_share_used",
                "vouchers_published",
                "vouchers_redeemed",
                "redemptions_rejected",
                "redemptions_rolled_back",
                "budget_cap",
                "distribution_mode",
                "voucher_kind",
                "discount_type",
                "active_from",
                "active_until",
                "currency",
                "campaign_id",
            ]
        ],
        key="campaigns_list",
        money=("discount_net", "budget_cap"),
        percent=("budget_share_used",),
        labels={
            "campaign_id": "Campaign id",
            "discount_net": "Discount (net)",
            "budget_share_used": "Budget used",
            "redemptions": "Redemptions (standing)",
        },
        column_config={"campaign_name": st.column_config.TextColumn("Campaign", pinned=True)},
        missing="not set: no budget cap (so no share of it used), no distribution mode or no "
        "end date.",
    )

    labels = {
        row.campaign_id: f"{fmt.text(row.campaign_name, row.campaign_id)} ({row.campaign_id})"
        for row in listing.itertuples()
    }
    page_state.restore(DETAIL_KEY, None, query_param="campaign")
    if st.session_state[DETAIL_KEY] not in labels:
        st.session_state[DETAIL_KEY] = None
    st.selectbox(
        "Open a campaign",
        list(labels),
        format_func=labels.get,
        key=DETAIL_KEY,
        index=None,
        placeholder="Choose a campaign to see its detail",
    )
    campaign_id = page_state.keep(DETAIL_KEY)
    if campaign_id:
        detail(campaign_id, chosen)


def detail(campaign_id: str, chosen: filters.Filters) -> None:
    found = q.campaign(campaign_id)
    if found.empty:
        st.warning(f"No campaign {campaign_id} in the published warehouse.")
        return
    c = found.iloc[0]
    currency = c["currency"]
    st.header(fmt.text(c["campaign_name"], campaign_id))
    st.caption(
        f"`{campaign_id}` · **{fmt.text(c['status'])}** since {fmt.when(c['status_since'])} · "
        f"{fmt.text(c['distribution_mode'], 'no distribution')} · as of {fmt.when(c['as_of'])}"
    )
    overview, vouchers, redemptions, publications, deliveries, activity = st.tabs(
        ["Overview", "Vouchers", "Redemptions", "Publications", "Deliveries", "Activity"]
    )
    with overview:
        _overview(c, campaign_id, currency, chosen)
    with vouchers:
        st.caption("Every voucher of the campaign, all-time (newest first, at most 5,000).")
        ui.table(
            q.vouchers(campaign_id),
            key=f"campaign_{campaign_id}_vouchers",
            money=("discount_net", "gift_balance"),
        )
    with redemptions:
        st.caption(f"Successful redemptions · {chosen.describe(campaigns=False, channels=False)}.")
        ui.table(
            q.redemptions(campaign_id, chosen),
            key=f"campaign_{campaign_id}_redemptions",
            money=("order_amount", "discount", "gift_amount", "net_discount"),
        )
    with publications:
        st.caption(
            "Vouchers published, offers skipped (with the reason) and customers held out · "
            f"{chosen.describe(campaigns=False)}."
        )
        ui.table(q.publications(campaign_id, chosen), key=f"campaign_{campaign_id}_publications")
    with deliveries:
        st.caption(f"Final delivery outcomes · {chosen.describe(campaigns=False)}.")
        ui.table(q.deliveries(campaign_id, chosen), key=f"campaign_{campaign_id}_deliveries")
    with activity:
        by_type = q.activity_by_type(campaign_id, chosen)
        st.caption(
            f"Ledger events of the campaign · {chosen.describe(campaigns=False, channels=False)}"
            f" · the latest {q.ACTIVITY_LIMIT} shown."
        )
        ui.table(by_type, key=f"campaign_{campaign_id}_activity_types")
        ui.table(q.activity(campaign_id, chosen), key=f"campaign_{campaign_id}_activity")


def _overview(c: pd.Series, campaign_id: str, currency: str, chosen: filters.Filters) -> None:
    config, limits, timeframe = st.columns(3)
    with config:
        st.markdown("**Offer**")
        st.markdown(
            f"- Voucher: {fmt.text(c['voucher_kind'])}"
            + (f" (code `{c['standalone_code']}`)" if fmt.has(c["standalone_code"]) else "")
            + f"\n- Discount: {describe_discount(c)}"
            + f"\n- Currency: {fmt.text(currency)}"
            + f"\n- Acceptance required: {'yes' if c['is_acceptance_required'] else 'no'}"
        )
    with limits:
        st.markdown("**Rules and limits**")
        st.markdown(
            f"- Minimum order: {_money_or_none(c['min_order_amount'], currency)}"
            f"\n- Per customer: {_count_or_none(c['per_customer_limit'])}"
            f"\n- Per voucher: {_count_or_none(c['per_voucher_limit'])}"
            f"\n- Campaign total: {_count_or_none(c['campaign_total_limit'])}"
            f"\n- Budget: {_money_or_none(c['budget_cap'], currency)}"
        )
    with timeframe:
        st.markdown("**Timeframe and distribution**")
        channels = c["distribution_channels"]
        channel_text = ", ".join(channels) if channels is not None and len(channels) else "—"
        st.markdown(
            f"- Active: {fmt.when(c['active_from'])} → {fmt.when(c['active_until'])}"
            f"\n- Valid after publication: {_days(c['valid_days_after_publication'])}"
            f"\n- Mode: {fmt.text(c['distribution_mode'])}"
            + (f" (trigger {c['trigger_type']})" if fmt.has(c["trigger_type"]) else "")
            + (
                f", segment {c['distribution_segment']}"
                if fmt.has(c["distribution_segment"])
                else ""
            )
            + f"\n- Channels: {channel_text}"
            + f"\n- Control group: {ui.percent(c['control_share']) if c['has_control_group'] else 'none'}"
        )

    created = q.vouchers_created(campaign_id)
    budget = q.budget(campaign_id)
    st.subheader("All-time")
    by_status = dict(zip(created["status"], created["vouchers"], strict=True))
    ui.metrics(
        [
            (
                "Vouchers created",
                ui.count(created["vouchers"].sum()),
                " · ".join(f"{status} {ui.count(n)}" for status, n in by_status.items()) or None,
            ),
            ("Published", ui.count(c["vouchers_published"])),
            ("Redemptions", ui.count(c["redemptions"]), "Standing: not rolled back."),
            ("Discount given", ui.money(c["discount_net"], currency), "Net of rollbacks."),
        ]
    )
    _budget(budget, currency)

    st.subheader("In the date range")
    st.caption(chosen.describe(campaigns=False))
    funnel = q.funnel_totals(campaign_id, chosen).iloc[0]
    moves = q.redemptions_by_day(campaign_id, chosen)
    totals = moves.groupby("outcome")["attempts"].sum() if not moves.empty else pd.Series()
    published = funnel["published"]
    ui.metrics(
        [
            ("Publications", ui.count(published), "Vouchers published to a customer."),
            (
                "Publications skipped",
                ui.count(funnel["skipped"]),
                "Offers not made: no consent, frequency cap, no contact… "
                f"({ui.count(funnel['held_out'])} more held out as the control group).",
            ),
            (
                "Messages delivered",
                ui.count(funnel["delivered"]),
                f"{ui.percent(ui.ratio(funnel['delivered'], published))} of publications.",
            ),
            (
                "Messages failed",
                ui.count(funnel["delivery_failed"]),
                f"{ui.count(funnel['delivery_pending'])} still pending or never sent.",
            ),
            (
                "Redemptions made",
                ui.count(totals.get("redeemed", 0)),
                "Successful redemptions in the range, rolled back since or not.",
            ),
            ("Rejections", ui.count(totals.get("rejected", 0))),
            ("Rollbacks", ui.count(totals.get("rolled back", 0))),
            (
                "Accepted",
                ui.count(funnel["accepted"]),
                "Vouchers published in the range and accepted since.",
            ),
        ]
    )
    st.markdown("**Redemptions, rejections and rollbacks per day**")
    if moves.empty:
        st.caption("No redemption attempts in this range.")
    else:
        st.altair_chart(
            alt.Chart(moves)
            .mark_bar()
            .encode(
                x=alt.X("day:T", axis=ui.day_axis()),
                y=alt.Y("attempts:Q", title="Attempts"),
                color=alt.Color("outcome:N", scale=OUTCOME_COLOURS, legend=ui.legend()),
                xOffset="outcome:N",
                tooltip=[alt.Tooltip("day:T", format="%Y-%m-%d"), "outcome:N", "attempts:Q"],
            ),
            width="stretch",
        )
    reasons = q.rejection_reasons(campaign_id, chosen)
    if not reasons.empty:
        st.markdown("**Why redemptions were rejected**")
        ui.table(reasons, key=f"campaign_{campaign_id}_reasons")


def _budget(budget: pd.DataFrame, currency: str) -> None:
    if budget.empty:
        return
    b = budget.iloc[0]
    if not fmt.has(b["budget_cap"]):
        st.caption(f"Budget: no cap · {ui.money(b['budget_used'], currency)} used.")
        return
    share = float(b["budget_share_used"]) if fmt.has(b["budget_share_used"]) else 0.0
    days = b["projected_days_to_exhaustion"]
    st.progress(
        min(max(share, 0.0), 1.0),
        text=(
            f"Budget: {ui.money(b['budget_used'], currency)} of "
            f"{ui.money(b['budget_cap'], currency)} used ({ui.percent(share)}) · "
            f"{ui.money(b['budget_remaining'], currency)} left"
            + (f" · at the last week's pace, gone in {days:.0f} days" if fmt.has(days) else "")
        ),
    )


def describe_discount(c: pd.Series | dict[str, Any]) -> str:
    """The campaign's discount in words: 'EUR 5.00 off', '15 % off (at most …)', …"""
    kind, value, currency = c["discount_type"], c["discount_value"], c["currency"]
    if c.get("voucher_kind") == "gift":
        return "gift card"
    if kind == "amount":
        return f"{ui.money(value, currency)} off"
    if kind == "percent":
        cap = c.get("discount_max_discount")
        most = f" (at most {ui.money(cap, currency)})" if fmt.has(cap) else ""
        return f"{value:g} % off{most}" if fmt.has(value) else f"a percentage off{most}"
    if kind == "fixed_price":
        return f"fixed price {ui.money(value, currency)}"
    if kind == "free_item":
        return f"free {fmt.text(c.get('discount_free_product'), 'item')}"
    return fmt.text(kind)


def _money_or_none(value: Any, currency: str) -> str:
    return ui.money(value, currency) if fmt.has(value) else "none"


def _count_or_none(value: Any) -> str:
    return ui.count(value) if fmt.has(value) else "no limit"


def _days(value: Any) -> str:
    return f"{int(value)} days" if fmt.has(value) else "until the campaign ends"


st.title("Campaigns")
with ui.error_boundary("the campaigns"):
    render()
