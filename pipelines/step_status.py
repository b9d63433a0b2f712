"""What each step of the nightly run that the marts do not need did, published beside them.

The marts are published whenever they are right (dbt's tests and the quality gates passed). The
model steps (fraud features, the fraud review queue, the next best offers) may have nothing to
work with on a given ledger (no attempts in the last two weeks, no model and no labels to train
one) or may fail; neither may hold back the marts. Such a step leaves no table and records here
why, so that the console can say so instead of showing an empty page.

`status.pipeline_steps` in the build warehouse holds one row per step: its state on the latest
run that tried it, what it produced or why it produced nothing, and when it last succeeded (kept
across runs). The publish copies the `status` schema with the marts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import duckdb

STATUS_SCHEMA = "status"
STEPS_TABLE = f"{STATUS_SCHEMA}.pipeline_steps"


class StepState(StrEnum):
    SUCCEEDED = "succeeded"
    # nothing to work with (no data, no model): not an error, and nothing to show
    SKIPPED = "skipped"
    # an error: the step's table is left out, the message says what went wrong
    FAILED = "failed"


@dataclass(frozen=True)
class StepOutcome:
    step: str
    state: StepState
    detail: str  # what the step produced, or why it produced nothing
    rows: int | None = None


@dataclass(frozen=True)
class StepStatus:
    step: str
    state: StepState
    detail: str
    rows: int | None
    run_id: str
    attempted_at: datetime
    last_succeeded_at: datetime | None
    last_succeeded_run_id: str | None


COLUMNS = (
    "step VARCHAR PRIMARY KEY, state VARCHAR NOT NULL, detail VARCHAR NOT NULL, rows BIGINT, "
    "run_id VARCHAR NOT NULL, attempted_at TIMESTAMP NOT NULL, last_succeeded_at TIMESTAMP, "
    "last_succeeded_run_id VARCHAR"
)


def record_step(warehouse: Path, outcome: StepOutcome, run_id: str, at: datetime) -> StepStatus:
    """Record what the step did in this run; a step that did not succeed keeps the time and run
    of its last success."""
    at = _naive(at)
    with duckdb.connect(str(warehouse)) as db:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {STATUS_SCHEMA}")
        db.execute(f"CREATE TABLE IF NOT EXISTS {STEPS_TABLE} ({COLUMNS})")
        previous = db.execute(
            f"SELECT last_succeeded_at, last_succeeded_run_id FROM {STEPS_TABLE} WHERE step = ?",
            [outcome.step],
        ).fetchone()
        if outcome.state is StepState.SUCCEEDED:
            succeeded_at, succeeded_run = at, run_id
        else:
            succeeded_at, succeeded_run = previous if previous else (None, None)
        status = StepStatus(
            step=outcome.step,
            state=outcome.state,
            detail=outcome.detail,
            rows=outcome.rows,
            run_id=run_id,
            attempted_at=at,
            last_succeeded_at=succeeded_at,
            last_succeeded_run_id=succeeded_run,
        )
        db.execute(
            f"INSERT OR REPLACE INTO {STEPS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                status.step,
                str(status.state),
                status.detail,
                status.rows,
                status.run_id,
                status.attempted_at,
                status.last_succeeded_at,
                status.last_succeeded_run_id,
            ],
        )
    return status


def step_status(warehouse: Path, step: str) -> StepStatus | None:
    """The step's row, or None when it never ran against this warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as db:
        exists = db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [STATUS_SCHEMA, STEPS_TABLE.split(".")[1]],
        ).fetchone()[0]
        if not exists:
            return None
        row = db.execute(f"SELECT * FROM {STEPS_TABLE} WHERE step = ?", [step]).fetchone()
    if row is None:
        return None
    name, state, detail, rows, run_id, attempted_at, succeeded_at, succeeded_run = row
    return StepStatus(
        name, StepState(state), detail, rows, run_id, attempted_at, succeeded_at, succeeded_run
    )


def _naive(moment: datetime) -> datetime:
    """UTC without a zone, as DuckDB's TIMESTAMP holds it."""
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
