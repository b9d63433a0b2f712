"""Diagnostics: one campaign's or one customer's story in the ledger, to answer "why did this
customer not get a voucher?" (consent, frequency cap, hold-out, failed delivery) and "what is
this campaign doing?"."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import db, filters, page_state, ui
from app_streamlit import queries_reports as q
from app_streamlit import record_format as fmt

TIMELINE = "marts.fct_ledger_timeline"

# What each kind of problem means for the customer, in words an analyst can pass on.
EXPLANATIONS = {
    "offer_skipped": "The campaign chose the customer but sent nothing",
    "customer_held_out": "Held out as the control group: nothing is sent, by design",
    "trigger_failed": "An autopilot trigger matched but could not complete",
    "delivery_failed": "A voucher was published but the message never arrived",
    "consent_changed": "The customer changed their channel consent",
    "voucher_disabled": "A voucher was disabled",
    "redemption_rejected": "A redemption attempt was rejected",
}

SKIP_HINTS = {
    "no_consent": "the customer allows none of the campaign's channels",
    "frequency_cap": "the customer had already received the most offers the cap allows",
    "channel_unavailable": "none of the campaign's channels is configured",
    "no_contact": "no address or device for the channels they allow",
    "unknown_customer": "the customer id is not known to the ledger",
    "delivery_failed": "the message could not be delivered",
}

EVENT_LIMIT = 2000

SUBJECT_KEY = "diagnostics_subject"
CUSTOMER_KEY = "diagnostics_customer"
CAMPAIGN_KEY = "diagnostics_campaign"
SUBJECTS = ("A customer", "A campaign")


def render() -> None:
    if not db.table_exists(TIMELINE):
        if not db.warehouse_path().exists():
            raise db.WarehouseMissing(db.warehouse_path())
        ui.empty_state(
            f"The published warehouse has no `{TIMELINE}` yet, which Diagnostics reads: it "
            "comes with a newer pipeline"
        )
        return
    # A link with ?campaign=… (and no ?customer=…) opens the campaign view.
    linked = "campaign" in st.query_params and "customer" not in st.query_params
    page_state.restore(SUBJECT_KEY, SUBJECTS[1] if linked else SUBJECTS[0])
    st.segmented_control("Look into", SUBJECTS, key=SUBJECT_KEY)
    subject = page_state.keep(SUBJECT_KEY)
    if subject == "A campaign":
        campaign()
    else:
        customer()


def customer() -> None:
    page_state.restore(CUSTOMER_KEY, "", query_param="customer")
    st.text_input("Customer id", key=CUSTOMER_KEY, placeholder="e.g. c0001975")
    typed = (page_state.keep(CUSTOMER_KEY) or "").strip()
    if not typed:
        st.caption("Type a customer id to see everything the ledger knows about them.")
        return
    matches = q.customers_like(typed)
    if typed not in set(matches["customer_id"]):
        if matches.empty:
            st.info(f"No customer id starts with `{typed}` in the ledger.")
            return
        typed = st.selectbox(
            "Customers starting with that", matches["customer_id"], key="diagnostics_customer_pick"
        )
    customer_id = typed
    in_range = st.checkbox(
        "Only events in the sidebar's date range", value=False, key="diagnostics_customer_range"
    )
    chosen = filters.current() if in_range else None

    if db.table_exists("marts.dim_customers"):
        _customer_profile(customer_id)

    st.subheader("Why a voucher may not have reached them")
    problems = q.timeline_problems(customer_id=customer_id, filters=chosen)
    counts = q.timeline_counts(customer_id=customer_id, filters=chosen)
    _explain(problems, counts)

    _timeline(customer_id=customer_id, window=chosen, counts=counts, key="customer")


def campaign() -> None:
    choices = q.campaign_choices()
    if choices.empty:
        st.info("The warehouse has no campaigns.")
        return
    labels = dict(zip(choices["campaign_id"], choices["campaign_name"], strict=True))
    picked = [c for c in filters.current().campaigns if c in labels]
    page_state.restore(
        CAMPAIGN_KEY, picked[0] if picked else next(iter(labels)), query_param="campaign"
    )
    if st.session_state.get(CAMPAIGN_KEY) not in labels:
        st.session_state[CAMPAIGN_KEY] = next(iter(labels))
    st.selectbox(
        "Campaign", list(labels), format_func=lambda key: f"{labels[key]} ({key})", key=CAMPAIGN_KEY
    )
    campaign_id = page_state.keep(CAMPAIGN_KEY)
    in_range = st.checkbox(
        "Only events in the sidebar's date range", value=True, key="diagnostics_campaign_range"
    )
    chosen = filters.current() if in_range else None

    profile = q.campaign_profile(campaign_id)
    health = q.campaign_health_of(campaign_id)
    if not profile.empty:
        row = profile.iloc[0]
        ui.metrics(
            [
                ("Status", fmt.text(row["status"])),
                ("Distribution", fmt.text(row["distribution_mode"], "by hand")),
                ("Vouchers published", ui.count(row["vouchers_published"])),
                ("Redemptions", ui.count(row["redemptions"])),
            ]
        )
    if not health.empty:
        status, reason = health.iloc[0]["health_status"], health.iloc[0]["status_reason"]
        message = f"Health: **{fmt.text(status)}**: {fmt.text(reason)}"
        {"failing": st.error, "warning": st.warning}.get(status, st.success)(message)

    st.subheader("What kept its vouchers from customers")
    problems = q.timeline_problems(campaign_id=campaign_id, filters=chosen)
    counts = q.timeline_counts(campaign_id=campaign_id, filters=chosen)
    _explain(problems, counts)

    if not counts.empty:
        st.subheader("Events by type")
        st.altair_chart(
            alt.Chart(counts)
            .mark_bar()
            .encode(
                y=alt.Y("event_type:N", sort="-x", title=None),
                x=alt.X("events:Q", title="Events"),
                tooltip=["event_type:N", "events:Q"],
            ),
            width="stretch",
        )
    _timeline(campaign_id=campaign_id, window=chosen, counts=counts, key="campaign")


def _customer_profile(customer_id: str) -> None:
    profile = q.customer_profile(customer_id)
    if profile.empty:
        return
    row = profile.iloc[0]
    consent = [
        channel
        for channel in ("email", "sms", "push")
        if bool(row.get(f"has_{channel}_consent", False))
    ]
    ui.metrics(
        [
            (
                "Consent",
                ", ".join(consent) if consent else "none",
                "Channels the customer allows today. A campaign only sends through these.",
            ),
            ("Segment", fmt.text(row.get("rfm_segment"))),
            ("Active vouchers", ui.count(row.get("active_vouchers"))),
            ("Orders", ui.count(row.get("orders"))),
        ]
    )
    if not consent:
        st.warning(
            "This customer allows no channel: every campaign skips them by design.",
            icon=":material/block:",
        )


def _explain(problems: pd.DataFrame, counts: pd.DataFrame) -> None:
    if counts.empty:
        st.info("The ledger has no events for this selection.")
        return
    published = int(counts.loc[counts["event_type"] == "voucher_published", "events"].sum())
    delivered = int(counts.loc[counts["event_type"] == "voucher_delivered", "events"].sum())
    if problems.empty:
        st.success(
            f"No skip, hold-out, failed trigger or failed delivery on record: "
            f"{ui.count(published)} vouchers published, {ui.count(delivered)} delivered.",
            icon=":material/check_circle:",
        )
        return
    for event_type, group in problems.groupby("event_type", sort=False):
        details = "; ".join(
            f"{_hint(detail)} x{events:,}" if events > 1 else _hint(detail)
            for detail, events in group.groupby("detail")["events"].sum().items()
        )
        st.markdown(f"- **{EXPLANATIONS.get(event_type, event_type)}**: {details}")
    st.caption(f"{ui.count(published)} vouchers published, {ui.count(delivered)} delivered.")
    ui.table(
        problems,
        key="diagnostics_problems",
        labels={"first_at": "First", "last_at": "Latest"},
    )


def _hint(detail: str) -> str:
    reason = detail.split(": ", 1)[-1] if detail.startswith(("skipped", "trigger failed")) else ""
    return f"{detail} ({SKIP_HINTS[reason]})" if reason in SKIP_HINTS else detail


def _timeline(
    *,
    counts: pd.DataFrame,
    key: str,
    campaign_id: str | None = None,
    customer_id: str | None = None,
    window: filters.Filters | None = None,
) -> None:
    st.subheader("Timeline")
    if counts.empty:
        return
    types = st.multiselect(
        "Event types",
        counts["event_type"].to_list(),
        key=f"diagnostics_{key}_types",
        placeholder="All event types",
    )
    events = q.timeline(
        campaign_id=campaign_id,
        customer_id=customer_id,
        filters=window,
        event_types=tuple(types),
        limit=EVENT_LIMIT,
    )
    shown = counts[counts["event_type"].isin(types)] if types else counts
    total = int(shown["events"].sum())
    if total > len(events):
        st.caption(f"The latest {len(events):,} of {total:,} events.")
    ui.table(
        events,
        key=f"diagnostics_{key}_timeline",
        labels={"event_seq": "Seq", "occurred_at": "When"},
        column_config={
            "occurred_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss")
        },
    )


st.title("Diagnostics")
with ui.error_boundary("diagnostics"):
    render()
