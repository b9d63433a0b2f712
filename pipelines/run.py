"""`make pipeline`: run the nightly job once, in this process, recorded in the Dagster instance
under $PROMO_HOME/dagster so the run shows up in the Dagster UI.

    python -m pipelines.run                      # the ledger's latest day, plus every new event
    python -m pipelines.run --from 2026-01-01 --to 2026-01-31   # backfill: re-read those days
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from contextlib import nullcontext, redirect_stdout
from datetime import date
from pathlib import Path

import dagster as dg

from pipelines.ledger_extract import latest_event_day
from pipelines.partitions import RunRangeError, run_range
from pipelines.paths import PipelinePaths

DAGSTER_YAML_HEADER = "# Written by promoledger"
DAGSTER_YAML = """\
# Written by promoledger: telemetry and the newsletter prompt off; freshness policies shown
# (the published warehouse has one); runs and event logs under this folder, the event log's
# SQLite files in WAL mode (pipelines/dagster_storage.py). Rewritten when this text changes.
telemetry:
  enabled: false
nux:
  enabled: false
freshness:
  enabled: true
event_log_storage:
  module: pipelines.dagster_storage
  class: WalSqliteEventLogStorage
  config:
    base_dir: {storage}
"""


def prepare_environment(home: Path) -> PipelinePaths:
    """Set the variables the code location reads (PROMO_HOME, PROMO_WAREHOUSE, DAGSTER_HOME) and
    write the Dagster instance's settings with telemetry and the newsletter prompt off (a
    dagster.yaml someone else wrote is left alone)."""
    paths = PipelinePaths(home)
    os.environ["PROMO_HOME"] = str(home)
    os.environ.setdefault("PROMO_WAREHOUSE", str(paths.build_warehouse))
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))).resolve()
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings = dagster_home / "dagster.yaml"
    # where Dagster keeps the event log by default, so earlier runs stay listed
    storage = dagster_home / "history" / "runs"
    wanted = DAGSTER_YAML.format(storage=json.dumps(str(storage)))
    if not settings.exists() or (
        settings.read_text().startswith(DAGSTER_YAML_HEADER) and settings.read_text() != wanted
    ):
        settings.write_text(wanted)
    return paths


def run_pipeline(
    home: Path,
    first: date | None = None,
    last: date | None = None,
    instance: dg.DagsterInstance | None = None,
    quiet: bool = False,
    full_refresh: bool = False,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset for the days `first`..`last` (default: the ledger's latest day).
    `quiet` keeps Dagster's and dbt's logs off the terminal (in $PROMO_HOME/pipeline.log and the
    Dagster instance); `full_refresh` rebuilds dbt's incremental models from the whole raw
    layer. Raises RunRangeError, before anything runs, for days the pipeline cannot run for."""
    paths = prepare_environment(home)
    from pipelines.definitions import defs  # after the environment is set
    from pipelines.defs.ingest import daily

    if not paths.ledger.exists():
        raise RunRangeError(f"no ledger at {paths.ledger}: run `promo simulate` or `promo import`")
    days = run_range(
        latest_event_day(paths.ledger) if first is None and last is None else None,
        first,
        last,
        date.fromisoformat(daily.get_last_partition_key()),
    )
    if days.note:
        print(f"pipeline: {days.note}")
    job = defs.resolve_job_def("nightly_pipeline")
    tags = {
        "dagster/asset_partition_range_start": days.first.isoformat(),
        "dagster/asset_partition_range_end": days.last.isoformat(),
    }
    # quiet: dbt's per-model lines go to $PROMO_HOME/pipeline.log rather than the terminal, and
    # Dagster's console log is off (a failed step logs its stack trace there): the run's
    # warnings and failures are told afterwards, in a sentence each (run_warnings,
    # failure_messages)
    log = open(paths.home / "pipeline.log", "w") if quiet else None  # noqa: SIM115
    try:
        with (
            dg.DagsterInstance.get() if instance is None else nullcontext(instance) as active,
            redirect_stdout(log) if log else nullcontext(),
        ):
            return job.execute_in_process(
                instance=active,
                tags=tags,
                raise_on_error=False,
                run_config={
                    "loggers": {
                        "console": {"config": {"log_level": "CRITICAL" if quiet else "INFO"}}
                    },
                    "ops": {"warehouse_models": {"config": {"full_refresh": full_refresh}}},
                },
            )
    finally:
        if log:
            log.close()


def run_warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The warnings and errors the run's steps logged (a full refresh, a model step that had
    nothing to work with or failed), each as `warning: …` or `error: …`."""
    return [
        f"{'error' if entry.level >= logging.ERROR else 'warning'}: {entry.user_message}"
        for entry in instance.all_logs(run_id)
        if entry.level >= logging.WARNING and entry.dagster_event is None
    ]


def failure_messages(events: Iterable[dg.DagsterEvent]) -> list[str]:
    """What stopped a run, from its events (an in-process result's `all_events`, or the
    instance's log of a run): failed checks (with the rows they name) and failed steps."""
    messages = []
    for event in events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                name = evaluation.asset_check_key.name
                messages.append(f"check {name} failed: {evaluation.description}")
        elif event.is_step_failure:
            error = event.event_specific_data.error
            messages.append(
                f"step {event.step_key} failed: {error.message.strip() if error else ''}"
            )
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--from", dest="first", type=date.fromisoformat, help="first day to re-read (backfill)"
    )
    parser.add_argument(
        "--to", dest="last", type=date.fromisoformat, help="last day to re-read (backfill)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="Dagster's and dbt's logs on the terminal"
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild dbt's incremental models from the whole raw layer (a run does it by itself "
        "when their code changed)",
    )
    parser.add_argument(
        "--setup-only", action="store_true", help="write the Dagster instance settings and stop"
    )
    args = parser.parse_args(argv)
    home = Path(os.environ.get("PROMO_HOME") or "data").resolve()
    if args.setup_only:
        prepare_environment(home)
        print(f"Dagster instance at {os.environ['DAGSTER_HOME']} (telemetry off)")
        print(automation_summary())
        return 0
    prepare_environment(home)  # DAGSTER_HOME, for the instance
    try:
        with dg.DagsterInstance.get() as instance:
            result = run_pipeline(
                home,
                args.first,
                args.last,
                instance=instance,
                quiet=not args.verbose,
                full_refresh=args.full_refresh,
            )
            warnings = run_warnings(instance, result.run_id) if not args.verbose else []
    except RunRangeError as error:
        print(f"pipeline: {error}", file=sys.stderr)
        return 2
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            print(f"  {event.step_key:<60} {seconds:7.1f} s")
    for warning in warnings:
        print(warning, file=sys.stderr)
    for message in failure_messages(result.all_events):
        print(message, file=sys.stderr)
    print("pipeline:", "succeeded" if result.success else "FAILED", f"(run {result.run_id})")
    return 0 if result.success else 1


def automation_summary() -> str:
    """What `make dagster` will start, and how to change it."""
    from pipelines.defs.automation import AUTOMATION_SWITCH, automation_running

    if automation_running():
        state = f"running (start them stopped with {AUTOMATION_SWITCH}=off)"
    else:
        state = f"stopped ({AUTOMATION_SWITCH}=off); start them in the UI or unset it"
    return (
        f"nightly_schedule, ledger_growth_sensor and weekly_retrain: {state}. Failure and "
        "lateness notices: see docs/runbook.md (notifications.yaml under PROMO_HOME)."
    )


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown. By the time `main` returns every file, DuckDB
    connection and the Dagster instance are closed; what is left is freeing the run's memory and
    unloading Dagster, dbt, GX, LightGBM and Polars one object at a time, 1.5 s at 10M events
    for nothing the operating system does not do at once."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
