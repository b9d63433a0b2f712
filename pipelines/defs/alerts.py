"""Tell the operators when the pipeline fails or the published warehouse is late.

Notices go where `$PROMO_HOME/notifications.yaml` says (email through the core's SMTP delivery,
a webhook, or both; see redemption_core/distribution/notifications.py); without that file the
sensors skip, saying so. Both sensors run whether or not PROMO_AUTOMATION starts the other
automations: they only ever send notices.

- run_failure_notice: every failed run of this code location, with what stopped it.
- published_warehouse_lateness: the published warehouse has not been replaced for longer than
  PUBLISH_LATE_AFTER (the nightly run publishes every 24 hours; two hours' grace), once per
  late publish; the same window is the published asset's freshness policy in the Dagster UI.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from pipelines.resources import PromoHomeResource
from pipelines.run import failure_messages
from redemption_core import Notice, Notifier, describe_notifier, notifier_from_home

PUBLISH_EVERY = timedelta(hours=24)
PUBLISH_LATE_AFTER = timedelta(hours=26)
PUBLISHED = dg.AssetKey(["published", "warehouse"])


class AlertsConfig(dg.ConfigurableResource):
    """How late the published warehouse may be before someone is told."""

    late_after_hours: float = PUBLISH_LATE_AFTER.total_seconds() / 3600


def _notifier(promo: PromoHomeResource) -> Notifier | None:
    # read when the sensor runs, never at import: the file and the credentials may change
    return notifier_from_home(Path(promo.home), environ=os.environ)


def failure_notice(run: dg.DagsterRun, messages: list[str], error: str | None) -> Notice:
    """The notice for a failed run: which job, which days, what stopped it, where to look."""
    tags = run.tags
    days = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    if days and tags.get("dagster/asset_partition_range_end"):
        days += f" to {tags['dagster/asset_partition_range_end']}"
    lines = [
        f"The {run.job_name} run {run.run_id} failed" + (f" (days {days})" if days else "") + ".",
        "",
        "What stopped it:",
        *(f"- {message}" for message in messages or [error or "no step reported an error"]),
        "",
        "The published warehouse keeps the last good numbers until a run succeeds.",
        f"Details: the Dagster UI (make dagster) under Runs, run {run.run_id}; "
        "docs/runbook.md says what to do for each kind of failure.",
    ]
    return Notice(
        subject=f"promoledger: {run.job_name} failed",
        text="\n".join(lines),
        key=f"run-failed-{run.run_id}",
        kind="run_failed",
    )


@dg.run_failure_sensor(
    name="run_failure_notice",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Sends a notice (notifications.yaml) for every failed run, with what stopped it.",
)
def run_failure_notice(
    context: dg.RunFailureSensorContext, promo: PromoHomeResource
) -> dg.SkipReason | None:
    notifier = _notifier(promo)
    if notifier is None:
        return dg.SkipReason(
            f"run {context.dagster_run.run_id} failed; told {describe_notifier(None)}"
        )
    events = [
        record.dagster_event
        for record in context.instance.all_logs(context.dagster_run.run_id)
        if record.dagster_event is not None
    ]
    notice = failure_notice(
        context.dagster_run, failure_messages(events), context.failure_event.message
    )
    reached = notifier.send(notice)  # raises, failing the tick visibly, if a channel refused
    context.log.info(f"notice for run {context.dagster_run.run_id} sent by {', '.join(reached)}")
    return None


def lateness(
    last_published: datetime | None, now: datetime, late_after: timedelta
) -> timedelta | None:
    """How far past its window the last publish is; None while it is on time (or there never
    was one: a new home is not late, it has not started)."""
    if last_published is None:
        return None
    overdue = now - last_published - late_after
    return overdue if overdue > timedelta(0) else None


@dg.sensor(
    name="published_warehouse_lateness",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=600,
    description="Sends a notice (notifications.yaml) when the published warehouse is late.",
)
def published_warehouse_lateness(
    context: dg.SensorEvaluationContext, promo: PromoHomeResource, alerts: AlertsConfig
) -> dg.SkipReason:
    latest = context.instance.get_latest_materialization_event(PUBLISHED)
    published = None if latest is None else datetime.fromtimestamp(latest.timestamp, tz=UTC)
    late_after = timedelta(hours=alerts.late_after_hours)
    overdue = lateness(published, datetime.now(UTC), late_after)
    if overdue is None:
        return dg.SkipReason(
            "never published yet"
            if published is None
            else f"published {published:%Y-%m-%d %H:%M} UTC: on time"
        )
    key = f"late-{published.isoformat()}"
    if context.cursor == key:
        return dg.SkipReason(f"late since {published:%Y-%m-%d %H:%M} UTC; already told")
    notifier = _notifier(promo)
    if notifier is None:
        return dg.SkipReason(f"late; told {describe_notifier(None)}")
    hours = (late_after + overdue).total_seconds() / 3600
    notifier.send(
        Notice(
            subject="promoledger: the published warehouse is late",
            text=(
                f"The published warehouse was last replaced {published:%Y-%m-%d %H:%M} UTC, "
                f"{hours:.1f} hours ago; a nightly run replaces it every "
                f"{PUBLISH_EVERY.total_seconds() / 3600:.0f} hours, and it counts as late after "
                f"{late_after.total_seconds() / 3600:g}. The console still shows the old "
                "numbers.\n\nLook for a failed or missing nightly_pipeline run in the Dagster "
                "UI (make dagster): is nightly_schedule running, is the daemon up? "
                "docs/runbook.md has the steps."
            ),
            key=key,
            kind="late",
        )
    )
    context.update_cursor(key)
    return dg.SkipReason(f"late by {overdue}; notice sent")


defs = dg.Definitions(
    sensors=[run_failure_notice, published_warehouse_lateness],
    resources={"alerts": AlertsConfig()},
)
