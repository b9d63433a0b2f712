"""System health: is the warehouse on screen fresh and whole, and are error rates normal for
this ledger? Every status comes with the rule that set it; the statuses are the marts' own
(fct_system_health), the same that Dagster's asset checks report, and the publish's age is
judged by the window the pipeline recorded when it published."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from app_streamlit import pipeline_status, ui
from app_streamlit import queries_reports as q

MONITORS = (
    ("completeness", "Completeness"),
    ("redemption_rejection", "Redemption rejections"),
    ("delivery_failure", "Delivery failures"),
)
SEVERITY = {"ok": 0, "warning": 1, "failing": 2}


def publication_status(
    published_at: pd.Timestamp | None, info: str | None, now: datetime
) -> tuple[str, str]:
    """Whether the warehouse on screen is late, by the window its publish recorded."""
    if published_at is None or pd.isna(published_at):
        return "warning", "no publication recorded"
    try:
        late_after = float(json.loads(info or "{}").get("late_after_hours"))
    except (TypeError, ValueError, AttributeError):
        return "ok", f"published {ui.moment(published_at)} UTC; no schedule recorded to judge by"
    age = (now - published_at.to_pydatetime().replace(tzinfo=UTC)).total_seconds() / 3600
    text = (
        f"published {ui.moment(published_at)} UTC, {age:,.1f} hours ago; late after "
        f"{late_after:g} hours (a nightly run publishes every day)"
    )
    if age > late_after:
        return "failing", f"{text}: late, run `{ui.PIPELINE_COMMAND}` or see the Dagster UI"
    return "ok", text


def render() -> None:
    st.caption(
        "The pipeline's own figures for the build this warehouse came from: how far behind the "
        "ledger it is, whether any event is missing, and error rates over the last 7 days "
        "against every day before (the baseline). The sidebar filters do not apply."
    )
    builds = q.system_health()
    published = q.publications()
    if builds.empty:
        ui.empty_state("The warehouse holds no build record yet")
        return
    latest = builds.iloc[0]
    published_at = published["published_at"].iloc[0] if not published.empty else None
    info = published["info"].iloc[0] if not published.empty else None

    statuses = [("Publication", *publication_status(published_at, info, datetime.now(UTC)))]
    statuses += [
        (label, latest[f"{name}_status"], latest[f"{name}_rule"]) for name, label in MONITORS
    ]
    worst = max((status for _, status, _ in statuses), key=SEVERITY.__getitem__)
    lines = "  \n".join(f"**{label}: {status}.** {rule}" for label, status, rule in statuses)
    if worst == "failing":
        st.error(lines, icon=":material/error:")
    elif worst == "warning":
        st.warning(lines, icon=":material/warning:")
    else:
        st.success(lines, icon=":material/check_circle:")

    as_of = latest["as_of"]
    ui.metrics(
        [
            (
                "Published",
                ui.moment(published_at),
                "When this warehouse file was swapped in (UTC).",
            ),
            (
                "Latest event",
                ui.moment(as_of),
                "The latest occurred_at in the ledger the warehouse holds, the data's 'as of' "
                "(UTC).",
            ),
            ("Ledger events", ui.count(latest["ledger_events"])),
            (
                "Lag (events)",
                ui.count(latest["lag_events"]),
                "Events in the ledger at the last extract that the warehouse lacks.",
            ),
            ("Missing sequence numbers", ui.count(latest["missing_seqs"])),
            (
                "Hours since last extract",
                ui.number(latest["hours_since_last_extract"]),
                "From the last extract run to this build, wall-clock.",
            ),
            (
                "Redemptions rejected (7 d)",
                ui.percent(latest["redemption_rejection_rate_7d"]),
                f"{ui.count(latest['redemptions_rejected_7d'])} of "
                f"{ui.count(latest['redemption_attempts_7d'])} attempts; baseline "
                f"{ui.percent(latest['redemption_rejection_rate_baseline'])}. Status "
                f"{latest['redemption_rejection_status']}: see the rule above.",
            ),
            (
                "Deliveries failed (7 d)",
                ui.percent(latest["delivery_failure_rate_7d"]),
                f"{ui.count(latest['deliveries_failed_7d'])} of "
                f"{ui.count(latest['deliveries_7d'])} deliveries; baseline "
                f"{ui.percent(latest['delivery_failure_rate_baseline'])}. Status "
                f"{latest['delivery_failure_status']}: see the rule above.",
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
            "redemption_rejection_rate_baseline",
            "delivery_failure_rate_1d",
            "delivery_failure_rate_7d",
            "delivery_failure_rate_baseline",
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


st.title("System health")
with ui.error_boundary("system health"):
    render()
