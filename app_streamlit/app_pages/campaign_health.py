"""Campaign health: which campaigns are running and delivering normally, and why the others are
not (silence while customers wait, a failure rate above its baseline, stuck triggers)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q

STATUS_COLOURS = {"failing": "#c62828", "warning": "#ef6c00", "ok": "#2e7d32"}
STATUS_BADGES = {"failing": "🔴 failing", "warning": "🟠 warning", "ok": "🟢 ok"}


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(dates=False, channels=False)}, as of the latest ledger event (the "
        "date range does not apply). Recent = the last 7 days; baseline = every day before."
    )
    health = q.campaign_health(chosen)
    if health.empty:
        st.info("No campaigns for these filters.")
        return

    counts = health["health_status"].value_counts()
    ui.metrics(
        [
            ("Failing", ui.count(counts.get("failing", 0))),
            ("Warning", ui.count(counts.get("warning", 0))),
            ("OK", ui.count(counts.get("ok", 0))),
            ("Active", ui.count(health["is_active"].fillna(False).astype(bool).sum())),
        ]
    )
    troubled = health[health["health_status"] != "ok"]
    for row in troubled.itertuples():
        message = f"**{row.campaign}**: {row.status_reason}"
        if row.health_status == "failing":
            st.error(message, icon=":material/error:")
        else:
            st.warning(message, icon=":material/warning:")
    if troubled.empty:
        st.success("Every campaign is running normally.", icon=":material/check_circle:")

    st.subheader("All campaigns")
    shown = health.assign(health_status=health["health_status"].map(STATUS_BADGES))
    ui.table(
        shown,
        key="campaign_health",
        percent=("failure_rate_7d", "failure_rate_baseline"),
        labels={
            "health_status": "Health",
            "status_reason": "Why",
            "failure_rate_7d": "Failure rate, 7 d",
            "failure_rate_baseline": "Failure rate, baseline",
            "delivery_outcomes_7d": "Deliveries, 7 d",
            "delivery_failures_7d": "Failures, 7 d",
            "stale_pending_triggers": "Triggers pending > 24 h",
        },
    )

    rated = health[health["failure_rate_7d"].notna()]
    if not rated.empty:
        st.subheader("Delivery failure rate: last 7 days against the baseline")
        st.altair_chart(_failure_rates(rated), width="stretch")


def _failure_rates(rated: pd.DataFrame) -> alt.LayerChart:
    base = alt.Chart(rated).encode(y=alt.Y("campaign:N", title=None))
    recent = base.mark_bar().encode(
        x=alt.X("failure_rate_7d:Q", title="Failure rate", axis=alt.Axis(format="%")),
        color=alt.Color(
            "health_status:N",
            title=None,
            scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
            legend=alt.Legend(orient="bottom"),
        ),
        tooltip=[
            "campaign:N",
            "health_status:N",
            alt.Tooltip("failure_rate_7d:Q", title="Last 7 days", format=".1%"),
            alt.Tooltip("failure_rate_baseline:Q", title="Baseline", format=".1%"),
        ],
    )
    baseline = base.mark_tick(color="black", thickness=2, size=18).encode(
        x="failure_rate_baseline:Q"
    )
    return (recent + baseline).properties(height=max(120, 30 * len(rated)))


st.title("Campaign health")
with ui.error_boundary("campaign health"):
    render()
