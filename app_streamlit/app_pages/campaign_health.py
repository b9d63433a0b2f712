"""Campaign health: which campaigns are running and delivering normally, and why the others are
not (silence while customers wait, a failure rate above the campaign's own baseline with
confidence, stuck triggers). Every status names the rule that set it; the statuses are
fct_campaign_health's, the same Dagster's campaign_health_monitors check reports."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_streamlit import filters, ui
from app_streamlit import queries_reports as q
from app_streamlit import record_format as fmt

STATUS_COLOURS = {"failing": "#c62828", "warning": "#ef6c00", "ok": "#2e7d32"}
# Text, not coloured emoji: Debian's chromium has no emoji font and draws boxes.
STATUS_LABELS = {"failing": "Failing", "warning": "Warning", "ok": "OK"}
LEGEND_LABELS = "{'failing': 'Failing', 'warning': 'Warning', 'ok': 'OK'}[datum.label]"
ROW_HEIGHT = 28  # pixels per campaign in the failure-rate chart


def render() -> None:
    chosen = filters.current()
    st.caption(
        f"{chosen.describe(dates=False, channels=False)}, as of the latest ledger event (the "
        "date range does not apply). Recent = the last 7 days; baseline = every day before. A "
        "failure rate counts against a campaign only with enough deliveries and failures to "
        "tell it from chance (99 % confidence for a warning, 99.9 % for a failure): the "
        "'Failure-rate rule' column says what each campaign's rate showed."
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
            (
                "Distributing",
                ui.count(health["is_active"].fillna(False).astype(bool).sum()),
                "Campaigns with status active, inside their active dates and distributed "
                "through channels. Active campaigns without a distribution mode (a flyer, an "
                "in-store offer) are not counted: nothing is delivered for them.",
            ),
        ]
    )
    troubled = health[health["health_status"] != "ok"]
    for row in troubled.itertuples():
        message = f"**{row.campaign}**: {fmt.text(row.status_reason)}"
        if row.health_status == "failing":
            st.error(message, icon=":material/error:")
        else:
            st.warning(message, icon=":material/warning:")
    # Above their own baseline without the evidence to flag them: said, with the rule's reason,
    # so that a bar four times its tick below does not sit under an all-clear.
    rising = health[
        (health["health_status"] == "ok")
        & (health["failure_rate_7d"] > health["failure_rate_baseline"])
    ]
    for row in rising.itertuples():
        st.info(
            f"**{row.campaign}** is above its own baseline, not yet beyond chance: "
            f"{fmt.text(row.failure_rate_rule)}",
            icon=":material/visibility:",
        )
    if troubled.empty:
        st.success(
            "No campaign breaks a rule"
            + (f"; {len(rising)} to watch above." if len(rising) else "."),
            icon=":material/check_circle:",
        )

    st.subheader("All campaigns")
    shown = health.assign(health_status=health["health_status"].map(STATUS_LABELS))
    ui.table(
        shown,
        key="campaign_health",
        percent=("failure_rate_7d", "failure_rate_baseline"),
        labels={
            "health_status": "Health",
            "status_reason": "Why",
            "failure_rate_rule": "Failure-rate rule",
            "failure_rate_7d": "Failure rate, 7 d",
            "failure_rate_baseline": "Failure rate, baseline",
            "delivery_outcomes_7d": "Deliveries, 7 d",
            "delivery_failures_7d": "Failures, 7 d",
            "delivery_outcomes_baseline": "Deliveries, baseline",
            "delivery_failures_baseline": "Failures, baseline",
            "stale_pending_triggers": "Triggers pending > 24 h",
            "is_active": "Distributing",
        },
        column_config={
            "status_reason": st.column_config.TextColumn("Why", width="medium"),
            "failure_rate_rule": st.column_config.TextColumn("Failure-rate rule", width="large"),
        },
        missing="no delivery to rate in that window (failure rates), or it has not happened "
        "yet (last trigger, publication, delivery).",
    )

    rated = health[health["failure_rate_7d"].notna()]
    if not rated.empty:
        st.subheader("Delivery failure rate: last 7 days against the baseline")
        st.altair_chart(_failure_rates(rated), width="stretch")
        st.caption("Bar: failure rate over the last 7 days. Black tick: the baseline.")


def _failure_rates(rated: pd.DataFrame) -> alt.LayerChart:
    """A bar per campaign for the last 7 days, a black tick at its baseline."""
    base = alt.Chart(rated).encode(y=alt.Y("campaign:N", title=None, axis=alt.Axis(labelLimit=240)))
    recent = base.mark_bar(size=16).encode(
        x=alt.X("failure_rate_7d:Q", title="Failure rate", axis=alt.Axis(format="%")),
        color=alt.Color(
            "health_status:N",
            title=None,
            scale=alt.Scale(domain=list(STATUS_COLOURS), range=list(STATUS_COLOURS.values())),
            legend=ui.legend(labelExpr=LEGEND_LABELS),
        ),
        tooltip=[
            alt.Tooltip("campaign:N", title="Campaign"),
            alt.Tooltip("health_status:N", title="Health"),
            alt.Tooltip("failure_rate_7d:Q", title="Last 7 days", format=".1%"),
            alt.Tooltip("failure_rate_baseline:Q", title="Baseline", format=".1%"),
            alt.Tooltip("failure_rate_rule:N", title="Rule"),
        ],
    )
    baseline = base.mark_tick(color="black", thickness=3, size=24).encode(
        x="failure_rate_baseline:Q"
    )
    # fit-x: `height` is the plot itself, not the plot squeezed in beside axes and legend.
    return (recent + baseline).properties(
        height=ROW_HEIGHT * len(rated), autosize=alt.AutoSizeParams(type="fit-x")
    )


st.title("Campaign health")
with ui.error_boundary("campaign health"):
    render()
