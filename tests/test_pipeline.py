"""The Dagster code location end to end: what it defines, a run over a small simulated ledger,
an identical re-run, a bad batch stopped before publishing, and a console that can always read."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline_helpers import failure_text, pipeline_env

from pipelines.paths import PipelinePaths
from redemption_core.simulate import SimulationConfig, simulate

REPO = Path(__file__).resolve().parents[1]
SMALL = SimulationConfig(customers=300, days=30, seed=21, fraud_scale=2)
# Tables whose rows describe the run itself (when it ran), not the ledger.
RUN_DESCRIBING = {"marts.fct_system_health"}


@pytest.fixture(scope="module")
def env_for() -> Iterator[object]:
    """Point the code location at a PROMO_HOME for the duration of a test module."""
    patcher = pytest.MonkeyPatch()

    def use(home: Path) -> None:
        for key, value in pipeline_env(home).items():
            patcher.setenv(key, value)

    yield use
    patcher.undo()


def run(home: Path) -> dg.ExecuteInProcessResult:
    from pipelines.run import run_pipeline

    return run_pipeline(home, quiet=True)


def mart_digests(warehouse: Path) -> dict[str, str]:
    digests = {}
    with duckdb.connect(str(warehouse), read_only=True) as db:
        tables = db.execute(
            "select schema_name || '.' || table_name from duckdb_tables() where schema_name = 'marts' order by 1"
        ).fetchall()
        for (table,) in tables:
            if table in RUN_DESCRIBING:
                continue
            rows = db.execute(f"select * from {table} order by all").fetchall()
            digests[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, env_for) -> Path:
    home = tmp_path_factory.mktemp("pipeline")
    simulate(home, SMALL, progress=None)
    env_for(home)
    result = run(home)
    assert result.success, failure_text(result)
    return home


def test_the_code_location_defines_the_expected_assets_checks_jobs_and_schedules(
    built: Path,
) -> None:
    from pipelines.definitions import defs

    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    checks = {key.name for key in repository.asset_graph.asset_check_keys}

    assert {
        "raw/ledger_events",
        "staging/stg_ledger__events",
        "marts/fct_campaign_funnel",
        "marts/fct_campaign_performance",
        "marts/fct_delivery_performance",
        "marts/dim_customers",
        "marts/fct_redemptions",
        "marts/fct_redemption_rejections",
        "marts/fct_campaign_budget",
        "marts/fct_campaign_health",
        "marts/fct_pending_triggers",
        "marts/fct_system_health",
        "ml/fraud_review_queue",
        "ml/next_best_offers",
        "ml/fraud_candidate",
        "ml/personalisation_promoted",
        "published/warehouse",
    } <= keys
    assert {
        "great_expectations_raw_events",
        "great_expectations_key_marts",
        "fraud_candidate_not_worse",
        "personalisation_candidate_not_worse",
        "system_health_monitors",
        "campaign_health_monitors",
        "daily_event_volume",
        "fraud_queue_scored",
        "next_best_offers_scored",
    } <= checks
    assert any(name.startswith("unique_") for name in checks), "dbt tests are asset checks"
    assert repository.has_job("nightly_pipeline") and repository.has_job("retrain_models")
    assert {s.name for s in repository.schedule_defs} == {"nightly_schedule", "weekly_retrain"}
    assert {s.name for s in repository.sensor_defs} == {
        "ledger_growth_sensor",
        "run_failure_notice",
        "published_warehouse_lateness",
    }
    published = dg.AssetKey(["published", "warehouse"])
    freshness = defs.resolve_assets_def(published).specs_by_key[published].freshness_policy
    assert freshness.fail_window.to_timedelta() == timedelta(hours=26)


def test_dagster_validates_the_code_location_from_the_command_line(built: Path) -> None:
    env = dict(os.environ, **pipeline_env(built))

    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "definitions",
            "validate",
            "-m",
            "pipelines.definitions",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_a_run_publishes_every_mart_and_the_published_warehouse_matches_the_build(
    built: Path,
) -> None:
    paths = PipelinePaths(built)

    with duckdb.connect(str(paths.published_warehouse), read_only=True) as db:
        published = dict(
            db.execute(
                "select table_name, estimated_size from duckdb_tables() where schema_name = 'marts'"
            ).fetchall()
        )
        redemptions = db.execute("select count(*) from marts.fct_redemptions").fetchone()[0]
    with sqlite3.connect(paths.ledger) as ledger:
        succeeded = ledger.execute(
            "select count(*) from events where event_type = 'redemption_succeeded'"
        ).fetchone()[0]

    assert {"fct_campaign_funnel", "fct_campaign_performance", "dim_customers"} <= set(published)
    assert redemptions == succeeded > 0
    assert mart_digests(paths.published_warehouse) == mart_digests(paths.build_warehouse)


def test_on_a_simulated_ledger_every_model_step_succeeds(built: Path) -> None:
    """Model steps never fail the run (pipelines/step_status.py): here, where they have data
    and labels, each must have made its table."""
    with duckdb.connect(str(PipelinePaths(built).published_warehouse), read_only=True) as db:
        steps = dict(db.execute("select step, state from status.pipeline_steps").fetchall())
        tables = {
            name for (name,) in db.execute("select table_name from duckdb_tables()").fetchall()
        }

    assert steps == {
        "fraud_attempt_features": "succeeded",
        "fraud_review_queue": "succeeded",
        "next_best_offers": "succeeded",
    }
    assert {"fraud_review_queue", "next_best_offers"} <= tables


def test_running_again_on_the_same_ledger_gives_identical_marts(built: Path) -> None:
    paths = PipelinePaths(built)
    before = mart_digests(paths.published_warehouse)

    result = run(built)

    assert result.success, failure_text(result)
    assert mart_digests(paths.published_warehouse) == before


def test_the_growth_sensor_asks_for_a_run_only_when_enough_events_wait(built: Path) -> None:
    from pipelines.defs.automation import LedgerGrowthConfig, ledger_growth_sensor
    from pipelines.resources import promo_home_resource

    def evaluate(threshold: int) -> object:
        context = dg.build_sensor_context(
            resources={
                "promo": promo_home_resource(),
                "growth": LedgerGrowthConfig(min_new_events=threshold),
            }
        )
        return ledger_growth_sensor(context)

    assert isinstance(evaluate(1), dg.SkipReason)  # the lake is up to date after the run
    copy = built.parent / "growth"
    shutil.copytree(built, copy)
    lake_state = copy / "lake" / "_state.json"
    lake_state.unlink()  # as if nothing had been extracted yet
    os.environ["PROMO_HOME"] = str(copy)
    try:
        request = evaluate(1)
        skipped = evaluate(10**9)
    finally:
        os.environ["PROMO_HOME"] = str(built)

    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("ledger-seq-")
    assert isinstance(skipped, dg.SkipReason)


def test_a_bad_batch_is_stopped_before_publishing_and_the_published_warehouse_is_unchanged(
    built: Path, env_for
) -> None:
    home = built.parent / "bad-batch"
    shutil.copytree(built, home)
    env_for(home)
    published = PipelinePaths(home).published_warehouse
    before = published.read_bytes()
    with sqlite3.connect(PipelinePaths(home).ledger) as ledger:
        template = ledger.execute(
            "select * from events where event_type = 'redemption_succeeded' order by seq desc limit 1"
        ).fetchone()
        columns = [c[1] for c in ledger.execute("pragma table_info(events)")][1:]
        row = dict(zip(["seq", *columns], template, strict=True))
        row.update(
            event_id="evt_0000000000000000000000bad001",
            voucher_id="v_never_created",
            idempotency_key=None,
        )
        # straight into the table, as a broken upstream system would: the core would refuse it
        ledger.execute(
            f"insert into events ({', '.join(columns)}) values ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )

    try:
        result = run(home)
    finally:
        env_for(built)

    assert not result.success
    assert "v_never_created" in failure_text(result)
    assert "evt_0000000000000000000000bad001" in failure_text(result)
    assert published.read_bytes() == before


def test_the_published_warehouse_stays_readable_while_a_run_is_in_progress(built: Path) -> None:
    home = built.parent / "readable"
    shutil.copytree(built, home)
    published = PipelinePaths(home).published_warehouse
    errors: list[str] = []
    reads = 0
    env = dict(os.environ, **pipeline_env(home))
    run_process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.run", "--from", "2026-01-05", "--to", "2026-02-03"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def read_while_running() -> None:
        nonlocal reads
        while run_process.poll() is None:
            try:
                with duckdb.connect(str(published), read_only=True) as db:
                    db.execute("select count(*) from marts.fct_campaign_performance").fetchone()
                    db.execute("select count(*) from marts.dim_customers").fetchone()
                reads += 1
            except Exception as error:  # any error a console would show is a failure here
                errors.append(repr(error))
            time.sleep(0.02)

    reader = threading.Thread(target=read_while_running)
    reader.start()
    run_process.wait(timeout=900)
    reader.join()

    assert run_process.returncode == 0
    assert errors == []
    assert reads > 10


def _ledger_until(source: Path, target: Path, last_seq: int | None = None) -> None:
    """`target` gets the source ledger's events table holding the events up to `last_seq` (all
    when None), or, when it exists already, the source's events after its own last one: a ledger
    before and after a day of business."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = not target.exists()
    with sqlite3.connect(target, isolation_level=None) as db:
        if fresh:
            with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
                ddl = src.execute(
                    "select sql from sqlite_master where name = 'events' and type = 'table'"
                ).fetchone()[0]
            db.execute(ddl)
        db.execute("attach ? as src", (f"file:{source}?mode=ro",))
        after = db.execute("select coalesce(max(seq), 0) from events").fetchone()[0]
        db.execute(
            "insert into events select * from src.events where seq > ? and seq <= ? order by seq",
            (after, last_seq if last_seq is not None else 2**62),
        )
        db.execute("detach src")


def test_materializing_one_model_does_not_vouch_for_the_others_code(
    built: Path, env_for, tmp_path: Path
) -> None:
    """After a code change, a run of a single dbt model rebuilds what it selects, but only a
    build of every model may record that the incremental models match the code."""
    from pipelines.definitions import defs

    home = tmp_path / "home"
    shutil.copytree(built, home)
    warehouse = PipelinePaths(home).build_warehouse
    with duckdb.connect(str(warehouse)) as db:
        db.execute(
            "UPDATE incremental_state.code_fingerprints SET fingerprint = 'old code' "
            "WHERE piece = 'model:int_orders_recorded'"
        )
    env_for(home)
    try:
        job = defs.resolve_job_def("nightly_pipeline")
        result = job.execute_in_process(
            asset_selection=[dg.AssetKey(["staging", "stg_ledger__extract_runs"])],
            raise_on_error=False,
        )
    finally:
        env_for(built)

    assert result.success, failure_text(result)
    materialized = {e.asset_key for e in result.all_events if e.is_step_materialization}
    assert materialized == {dg.AssetKey(["staging", "stg_ledger__extract_runs"])}
    with duckdb.connect(str(warehouse), read_only=True) as db:
        (recorded,) = db.execute(
            "SELECT fingerprint FROM incremental_state.code_fingerprints "
            "WHERE piece = 'model:int_orders_recorded'"
        ).fetchone()
    assert recorded == "old code"


def test_an_incremental_day_and_a_full_refresh_give_the_marts_of_a_full_build(
    built: Path, env_for
) -> None:
    """The nightly run only takes in what is new (incremental dbt models, the new batch's
    checks); after a day's events it must publish exactly what a build from scratch publishes,
    and `--full-refresh` must too."""
    from pipelines.run import run_pipeline

    ledger = PipelinePaths(built).ledger
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        (last_day_starts,) = db.execute(
            "select min(seq) from events where substr(occurred_at, 1, 10) = "
            "(select max(substr(occurred_at, 1, 10)) from events)"
        ).fetchone()
    home = built.parent / "day-by-day"
    paths = PipelinePaths(home)
    _ledger_until(ledger, paths.ledger, last_day_starts - 1)
    env_for(home)
    try:
        before_the_day = run_pipeline(home, quiet=True)
        assert before_the_day.success, failure_text(before_the_day)
        _ledger_until(ledger, paths.ledger)
        after_the_day = run_pipeline(home, quiet=True)
        assert after_the_day.success, failure_text(after_the_day)
        incremental = mart_digests(paths.published_warehouse)
        refreshed = run_pipeline(home, quiet=True, full_refresh=True)
        assert refreshed.success, failure_text(refreshed)
        full_refresh = mart_digests(paths.published_warehouse)
        # As if int_orders_recorded's code had changed after it built its rows: the recorded
        # fingerprint differs and the rows are what the old code made (off by one). With no new
        # event an incremental run would keep them; the run must rebuild them by itself.
        with duckdb.connect(str(paths.build_warehouse)) as db:
            db.execute(
                "UPDATE incremental_state.code_fingerprints SET fingerprint = 'old code' "
                "WHERE piece = 'model:int_orders_recorded'"
            )
            db.execute("UPDATE intermediate.int_orders_recorded SET amount = amount + 1")
        code_changed = run_pipeline(home, quiet=True)
        assert code_changed.success, failure_text(code_changed)
        after_code_change = mart_digests(paths.published_warehouse)
    finally:
        env_for(built)

    from_scratch = mart_digests(PipelinePaths(built).published_warehouse)
    assert set(incremental) == set(from_scratch)
    assert [t for t in from_scratch if incremental[t] != from_scratch[t]] == []
    assert [t for t in from_scratch if full_refresh[t] != from_scratch[t]] == []
    assert [t for t in from_scratch if after_code_change[t] != from_scratch[t]] == []


def test_the_demo_summary_reports_the_ledger_and_ranks_campaigns_by_incremental_profit(
    built: Path,
) -> None:
    """`make demo`'s closing lines: the events and campaigns of the ledger, and the best and
    the worst campaign by incremental profit, as the published warehouse has them."""
    from pipelines.demo import summary

    with sqlite3.connect(PipelinePaths(built).ledger) as db:
        (events,) = db.execute("select count(*) from events").fetchone()
        (campaigns,) = db.execute(
            "select count(*) from events where event_type = 'campaign_created'"
        ).fetchone()
    published = PipelinePaths(built).published_warehouse
    with duckdb.connect(str(published), read_only=True) as db:
        profits = db.execute(
            "select campaign_name, incremental_profit, incremental_profit_ci_low, "
            "incremental_profit_ci_high from marts.fct_campaign_performance "
            "where incremental_profit is not null"
        ).fetchall()

    lines = summary(published)

    assert lines[:2] == [f"events in the warehouse: {events:,}", f"campaigns: {campaigns}"]
    assert profits, "the small simulation has campaigns with a control group"
    best = max(profits, key=lambda row: row[1])
    worst = min(profits, key=lambda row: row[1])
    assert lines[2].startswith(
        f"best campaign by incremental profit: {best[0]}: EUR {best[1] / 100:,.2f}"
    )
    assert lines[3].startswith(
        f"worst campaign by incremental profit: {worst[0]}: EUR {worst[1] / 100:,.2f}"
    )
    assert all(
        line.endswith(("includes zero", "above zero", "below zero", "to say"))
        for line in lines[2:4]
    )
    # the verdict over every measured campaign, with what their control groups could detect
    verdict = " ".join(lines[4:])
    assert lines[4].startswith("verdict: ")
    if any(low is not None and low <= 0 <= high for _, _, low, high in profits):
        assert "would be detected with 80 % power" in verdict
