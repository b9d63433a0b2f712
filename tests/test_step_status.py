"""A model step that has nothing to work with, or fails, leaves its table out and records why in
status.pipeline_steps, keeping when it last succeeded; it never fails the run (which would hold
back the marts). Run on the step wrapper itself, without Dagster's executor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from models_ml.data import DataError
from pipelines.defs.ml import Unavailable, run_model_step
from pipelines.resources import PromoHomeResource
from pipelines.step_status import StepOutcome, StepState, record_step, step_status

TABLE = "ml.next_best_offers"


@pytest.fixture
def promo(tmp_path: Path) -> PromoHomeResource:
    warehouse = tmp_path / "warehouse" / "build.duckdb"
    warehouse.parent.mkdir()
    return PromoHomeResource(home=str(tmp_path), warehouse=str(warehouse))


def context(run_id: str) -> SimpleNamespace:
    """What run_model_step reads of Dagster's context: the run's id and a logger."""
    return SimpleNamespace(run=SimpleNamespace(run_id=run_id), log=SimpleNamespace(
        warning=lambda message: None, error=lambda message: None, info=lambda message: None
    ))  # fmt: skip


def writes_the_table(promo: PromoHomeResource) -> tuple[int, str, dict]:
    with duckdb.connect(str(promo.build_warehouse)) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS ml")
        db.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT 1 AS offer")
    return 1, "1 offer", {"rows": 1}


def tables(promo: PromoHomeResource) -> set[str]:
    with duckdb.connect(str(promo.build_warehouse), read_only=True) as db:
        rows = db.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()
    return {name for (name,) in rows}


def test_a_step_that_succeeds_records_what_it_made(promo: PromoHomeResource) -> None:
    result = run_model_step(
        context("run-1"), promo, "next_best_offers", TABLE, lambda: writes_the_table(promo)
    )

    status = step_status(promo.build_warehouse, "next_best_offers")
    assert status is not None
    assert (status.state, status.detail, status.rows) == (StepState.SUCCEEDED, "1 offer", 1)
    assert status.last_succeeded_run_id == "run-1"
    assert isinstance(result, dg.MaterializeResult)
    assert result.metadata["state"] == "succeeded"


@pytest.mark.parametrize(
    ("problem", "state"),
    [
        (Unavailable("no personalisation model promoted and none can be trained yet"), "skipped"),
        (DataError("no events in the lake"), "skipped"),
        (KeyError("campaign_id"), "failed"),
    ],
)
def test_a_step_that_cannot_run_leaves_no_table_and_keeps_its_last_success(
    promo: PromoHomeResource, problem: Exception, state: str
) -> None:
    run_model_step(
        context("run-1"), promo, "next_best_offers", TABLE, lambda: writes_the_table(promo)
    )

    def body() -> tuple[int, str, dict]:
        raise problem

    result = run_model_step(context("run-2"), promo, "next_best_offers", TABLE, body)

    status = step_status(promo.build_warehouse, "next_best_offers")
    assert status is not None
    assert status.state == StepState(state)
    assert str(problem).strip("'") in status.detail
    assert (status.run_id, status.last_succeeded_run_id) == ("run-2", "run-1")
    assert TABLE not in tables(promo)
    assert ("traceback" in result.metadata) == (state == "failed")


def test_a_step_that_never_succeeded_says_so(promo: PromoHomeResource) -> None:
    status = record_step(
        promo.build_warehouse,
        StepOutcome("fraud_review_queue", StepState.SKIPPED, "no attempt features to score"),
        "run-1",
        datetime(2026, 3, 4, 12, tzinfo=UTC),
    )

    assert status.last_succeeded_at is None
    assert step_status(promo.build_warehouse, "fraud_review_queue") == status
    assert status.attempted_at == datetime(2026, 3, 4, 12)
