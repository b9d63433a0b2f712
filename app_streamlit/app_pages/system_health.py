"""System health: is the warehouse on screen fresh and whole, and are error rates normal?"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app_streamlit import pipeline_status, ui
from app_streamlit import queries_reports as q


def render() -> None:
    st.caption(
        "The pipeline's own figures for the build this warehouse came from: how far behind the "
        "ledger it is, whether any event is missing, and error rates up to the latest event. "
        "The sidebar filters do not apply."
    )
    builds = q.system_health()
    published = q.publications()
    if builds.empty:
        ui.empty_state("The warehouse holds no build record yet")
        return
    latest = builds.iloc[0]

    lag = latest["lag_events"]
    missing = latest["missing_seqs"]
    if (not pd.isna(lag) and lag > 0) or (not pd.isna(missing) and missing > 0):
        st.warning(
            f"The warehouse is behind the ledger by {ui.count(lag)} events and misses "
            f"{ui.count(missing)} sequence numbers: run `{ui.PIPELINE_COMMAND}` again.",
            icon=":material/warning:",
        )
    else:
        st.success(
            "The warehouse holds every ledger event up to the last extract.",
            icon=":material/check_circle:",
        )

    published_at = published["published_at"].iloc[0] if not published.empty else None
    as_of = latest["as_of"]
    ui.metrics(
        [
            (
                "Published",
                _short_time(published_at),
                f"When this warehouse file was swapped in: {_full_time(published_at)} UTC.",
            ),
            (
                "Latest event",
                _short_time(as_of),
                f"The latest occurred_at in the ledger the warehouse holds, the data's 'as of': "
                f"{_full_time(as_of)} UTC.",
            ),
            ("Ledger events", ui.count(latest["ledger_events"])),
            (
                "Lag (events)",
                ui.count(lag),
                "Events in the ledger at the last extract that the warehouse lacks.",
            ),
            ("Missing sequence numbers", ui.count(missing)),
            (
                "Hours since last extract",
                ui.number(latest["hours_since_last_extract"]),
                "From the last extract run to this build, wall-clock.",
            ),
            (
                "Redemptions rejected (7 d)",
                ui.percent(latest["redemption_rejection_rate_7d"]),
                f"Last day: {ui.percent(latest['redemption_rejection_rate_1d'])} of "
                f"{ui.count(latest['redemption_attempts_1d'])} attempts.",
            ),
            (
                "Deliveries failed (7 d)",
                ui.percent(latest["delivery_failure_rate_7d"]),
                f"Last day: {ui.percent(latest['delivery_failure_rate_1d'])} of "
                f"{ui.count(latest['deliveries_1d'])} deliveries.",
            ),
        ]
    )

    _pipeline_steps()

    st.subheader("Builds")
    ui.table(
        builds,
        key="system_health_builds",
        percent=(
            "redemption_rejection_rate_1d",
            "redemption_rejection_rate_7d",
            "delivery_failure_rate_1d",
            "delivery_failure_rate_7d",
        ),
        missing=(
            "nothing to rate (no redemption attempt or delivery in that window), or not "
            "recorded by that build."
        ),
    )

    st.subheader("Publications")
    ui.table(published, key="system_health_publications")
    if not published.empty:
        with st.expander("What the latest publication recorded"):
            try:
                st.json(json.loads(published["info"].iloc[0]))
            except (TypeError, ValueError):
                st.code(str(published["info"].iloc[0]))


def _pipeline_steps() -> None:
    """The model steps of the run that published this warehouse: a step with nothing to work
    with, or one that failed, leaves its table out without holding back the marts."""
    st.subheader("Pipeline steps")
    steps = pipeline_status.steps()
    if steps.empty:
        st.caption("This warehouse was published before the pipeline recorded its steps.")
        return
    for row in steps[steps["state"] != "succeeded"].itertuples():
        message = (
            f"{row.step} {row.state} in the run that published this warehouse: {row.detail} "
            f"({pipeline_status.last_made(steps.loc[row.Index])})."
        )
        if row.state == "failed":
            st.error(message, icon=":material/error:")
        else:
            st.info(message, icon=":material/info:")
    ui.table(
        steps,
        key="system_health_pipeline_steps",
        missing="never succeeded on this ledger, or nothing to count.",
    )


def _short_time(value: pd.Timestamp | None) -> str:
    """'26 Nov 13:41': short enough for a headline number; the help gives it in full."""
    return "—" if value is None or pd.isna(value) else f"{value:%d %b %H:%M}"


def _full_time(value: pd.Timestamp | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:%Y-%m-%d %H:%M}"


st.title("System health")
with ui.error_boundary("system health"):
    render()
