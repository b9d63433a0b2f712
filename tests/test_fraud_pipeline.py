"""The nightly pipeline's fraud step on ledgers the simulator did not leave labels for: a ledger
imported from another system (no ground truth, no reviews, no model) gets a queue on its first
night, and the next night scores only the new days and keeps the cases it had; a ledger with no
redemption attempts at all gets an empty queue and a published warehouse, not a failure."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline_helpers import pipeline_env

from pipelines.paths import PipelinePaths
from redemption_core import Order, RedemptionEngine, SettableClock
from redemption_core.imports.ledger_schema import events_to_rows, import_events
from redemption_core.simulate import SimulationConfig, simulate

SMALL = SimulationConfig(customers=300, days=30, seed=21, fraud_scale=3)


@pytest.fixture
def run_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def run(home: Path) -> dg.ExecuteInProcessResult:
        from pipelines.run import run_pipeline

        for key, value in pipeline_env(home).items():
            monkeypatch.setenv(key, value)
        result = run_pipeline(home, quiet=True)
        failures = [
            str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure
        ]
        assert result.success, "\n".join(failures)
        return result

    yield run


def published(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(PipelinePaths(home).published_warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_an_imported_ledger_gets_a_queue_on_its_first_night_and_keeps_it_the_next(
    tmp_path: Path, run_in
) -> None:
    source = tmp_path / "other-system"
    simulate(source, SMALL, progress=None)
    with RedemptionEngine.open(source) as engine:
        rows = events_to_rows(engine.store.events())
    home = tmp_path / "merchant"
    with RedemptionEngine.open(home) as engine:
        import_events(engine, rows)
    assert not (home / "simulation").exists()  # no ground truth: a real merchant's ledger

    run_in(home)
    first = published(home, "SELECT flag_id, entity_type FROM ml.fraud_review_queue")
    windows = published(home, "SELECT scored_from, scored_to FROM ml.fraud_scoring_runs")

    assert first, "no case on an imported ledger with abuse in it"
    assert {kind for _, kind in first} & {"device", "ip", "code", "customer", "staff"}
    last_day = windows[0][1]

    # The next night: one more day of business, scored from the last day scored.
    with RedemptionEngine.open(
        home, clock=SettableClock(SMALL.start + timedelta(days=SMALL.days, hours=12))
    ) as engine:
        engine.record_order(Order(1500, "EUR", id="next-day-order"), customer_id="c0000001")
    run_in(home)
    again = published(home, "SELECT flag_id FROM ml.fraud_review_queue")
    runs = published(home, "SELECT scored_from, scored_to FROM ml.fraud_scoring_runs ORDER BY 2")

    assert {flag for flag, _ in first} <= {flag for (flag,) in again}
    assert runs[-1][0] == last_day and runs[-1][1] > last_day


def test_a_ledger_without_redemption_attempts_publishes_an_empty_queue(
    tmp_path: Path, run_in
) -> None:
    home = tmp_path / "quiet-shop"
    with RedemptionEngine.open(home, clock=SettableClock(SMALL.start)) as engine:
        engine.add_customers([{"id": f"c{i}", "consent": {"email": True}} for i in range(5)])
        for i in range(5):
            engine.record_order(Order(1200 + i, "EUR", id=f"o{i}"), customer_id=f"c{i}")

    run_in(home)

    assert published(home, "SELECT count(*) FROM ml.fraud_review_queue") == [(0,)]
    assert published(home, "SELECT count(*) FROM marts.fct_orders") == [(5,)]
