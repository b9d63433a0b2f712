"""Pending triggers: autopilot triggers that matched a customer but have not completed, been held
out or failed, oldest first."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q

STALE_HOURS = 24  # fct_campaign_health warns about triggers pending longer than this

AGE_BUCKETS = (
    (0, 1, "under 1 h"),
    (1, 6, "1-6 h"),
    (6, 24, "6-24 h"),
    (24, 72, "1-3 days"),
    (72, float("inf"), "over 3 days"),
)


def age_bucket(hours: float) -> str:
    for low, high, label in AGE_BUCKETS:
        if low <= hours < high:
            return label
    return AGE_BUCKETS[0][2]


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(dates=False, channels=False)}, as of the latest ledger event (the "
        "date range does not apply: an old trigger that is still pending matters most). A "
        "trigger pending for hours usually means the campaign cannot deliver: check campaign "
        "health and delivery performance."
    )
    pending = q.pending_triggers(chosen)
    if pending.empty:
        st.success("No triggers are pending.", icon=":material/check_circle:")
        return

    stale = pending[pending["age_hours"] > STALE_HOURS]
    ui.metrics(
        [
            ("Pending triggers", ui.count(len(pending))),
            (f"Pending over {STALE_HOURS} h", ui.count(len(stale))),
            ("Oldest (hours)", ui.number(pending["age_hours"].max())),
            ("Campaigns concerned", ui.count(pending["campaign_id"].nunique())),
        ]
    )

    pending = pending.assign(age=pending["age_hours"].map(age_bucket))
    left, right = st.columns(2)
    with left:
        st.subheader("By age")
        st.altair_chart(_by_age(pending), width="stretch")
    with right:
        st.subheader("By campaign")
        per_campaign = (
            pending.groupby("campaign", as_index=False)
            .agg(pending=("trigger_id", "count"), oldest_hours=("age_hours", "max"))
            .sort_values("pending", ascending=False)
        )
        ui.table(per_campaign, key="pending_by_campaign", labels={"oldest_hours": "Oldest (h)"})

    st.subheader("Every pending trigger")
    ui.table(
        pending[
            [
                "campaign",
                "customer_id",
                "trigger_type",
                "matched_at",
                "age_hours",
                "age",
                "trigger_id",
                "campaign_id",
            ]
        ],
        key="pending_triggers",
        labels={"age_hours": "Age (h)", "customer_id": "Customer", "trigger_id": "Trigger id"},
        column_config={
            "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f"),
        },
    )


def _by_age(pending: pd.DataFrame) -> alt.Chart:
    order = [label for _, _, label in AGE_BUCKETS]
    counts = pending.groupby("age", as_index=False)["trigger_id"].count()
    counts = counts.rename(columns={"trigger_id": "triggers"})
    counts["stale"] = counts["age"].isin(order[3:])
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("age:N", sort=order, title=None),
            y=alt.Y("triggers:Q", title="Triggers"),
            color=alt.Color(
                "stale:N",
                title=None,
                scale=alt.Scale(domain=[False, True], range=["#90a4ae", "#ef6c00"]),
                legend=None,
            ),
            tooltip=["age:N", "triggers:Q"],
        )
    )


st.title("Pending triggers")
with ui.error_boundary("pending triggers"):
    render()
