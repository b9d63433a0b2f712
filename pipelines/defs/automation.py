"""The nightly job, its schedule, and a sensor that starts a run when the ledger has grown.

Every automation (these two and the weekly retrain) is running as soon as `make dagster`
starts; PROMO_AUTOMATION=off starts them stopped instead (docs/runbook.md). Dagster decides an
automation's status when it loads the code location, so the variable is read then, once; a
status an operator toggled in the UI is kept by the instance and wins over it.
"""

import os

import dagster as dg

from pipelines.defs.ingest import daily
from pipelines.ledger_extract import LakeState, ledger_high_water
from pipelines.resources import PromoHomeResource

nightly_pipeline = dg.define_asset_job(
    "nightly_pipeline",
    # everything but the weekly retraining (pipelines/defs/ml.py)
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("retrain"),
    partitions_def=daily,
    executor_def=dg.in_process_executor,  # DuckDB has one writer: steps run one after another
    description="Ledger → lake → raw → dbt marts (with tests) → quality gates → model scores → published warehouse.",
)

AUTOMATION_SWITCH = "PROMO_AUTOMATION"


def automation_running() -> bool:
    """Whether automations start running (the default) or stopped (PROMO_AUTOMATION=off)."""
    value = os.environ.get(AUTOMATION_SWITCH, "on").strip().lower()
    if value in ("", "on", "running"):
        return True
    if value in ("off", "stopped"):
        return False
    raise ValueError(f"{AUTOMATION_SWITCH} must be 'on' or 'off', got {value!r}")


def schedule_status() -> dg.DefaultScheduleStatus:
    return (
        dg.DefaultScheduleStatus.RUNNING
        if automation_running()
        else dg.DefaultScheduleStatus.STOPPED
    )


def sensor_status() -> dg.DefaultSensorStatus:
    return (
        dg.DefaultSensorStatus.RUNNING if automation_running() else dg.DefaultSensorStatus.STOPPED
    )


nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly_pipeline,
    hour_of_day=2,
    minute_of_hour=15,
    name="nightly_schedule",
    default_status=schedule_status(),
)


class LedgerGrowthConfig(dg.ConfigurableResource):
    """How many new ledger events start an extra run between nightly ones."""

    min_new_events: int = 50_000


@dg.sensor(
    job=nightly_pipeline,
    minimum_interval_seconds=300,
    name="ledger_growth_sensor",
    default_status=sensor_status(),
)
def ledger_growth_sensor(
    context: dg.SensorEvaluationContext, promo: PromoHomeResource, growth: LedgerGrowthConfig
) -> dg.RunRequest | dg.SkipReason:
    paths = promo.paths
    if not paths.ledger.exists():
        return dg.SkipReason(f"no ledger at {paths.ledger}")
    high_water = ledger_high_water(paths.ledger)
    watermark = LakeState.load(paths.lake / "_state.json").watermark
    waiting = high_water - watermark
    if waiting < growth.min_new_events:
        return dg.SkipReason(f"{waiting} new events, fewer than {growth.min_new_events}")
    latest = daily.get_last_partition_key()
    return dg.RunRequest(run_key=f"ledger-seq-{high_water}", partition_key=latest)


defs = dg.Definitions(
    jobs=[nightly_pipeline], schedules=[nightly_schedule], sensors=[ledger_growth_sensor]
)
