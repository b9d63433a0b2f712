"""Publish a finished warehouse for the console.

The console only ever opens `published.duckdb`. A publish copies the marts into a new file beside
it, closes that file (DuckDB checkpoints on close, leaving no WAL), fsyncs it and renames it over
the old one. A rename within a directory is atomic, so a reader sees last night's warehouse or
tonight's, never a half-built one; a reader already connected keeps the old file until it closes.

Tables that only ever grow by rows with a larger key (APPEND_ONLY: the ledger timeline, a dbt
incremental model with a row per event, the largest table by far) are not copied again each
night: the new file starts as a copy of the old one and gets only the rows above the key it
already holds. That is exact only while the build's table still holds what was published, so the
publish keeps, per such table, the highest key, the row count and a checksum (the sum of each
column's row hashes, which adds up row by row) and compares them with the build's rows up to
that key: after a `--full-refresh`, a rebuilt warehouse or a changed model the checksum differs
and the table is copied whole.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

# marts from dbt; ml from the model assets (fraud review queue, next best offers); status: what
# each model step did (pipelines/step_status.py)
PUBLISHED_SCHEMAS = ("marts", "ml", "status")
# schema.table → the key its new rows are appended by (always above every key it holds)
APPEND_ONLY = {"marts.fct_ledger_timeline": "event_seq"}


@dataclass(frozen=True)
class PublishResult:
    path: Path
    tables: dict[str, int]  # schema.table → rows
    bytes: int
    appended: dict[str, int] = field(default_factory=dict)  # schema.table → rows appended


@dataclass(frozen=True)
class AppendState:
    """What the published file holds of an append-only table."""

    through: int  # the highest key
    rows: int
    checksum: list[str]  # per column, the sum of its row hashes (as text: HUGEINTs)


def publish_warehouse(build: Path, published: Path, info: dict[str, object]) -> PublishResult:
    """Copy the build warehouse's published schemas into `published`, atomically."""
    if not build.exists():
        raise FileNotFoundError(f"no build warehouse at {build}: run the pipeline's dbt step first")
    tmp = published.with_name(published.name + ".tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    tables: dict[str, int] = {}
    appended: dict[str, int] = {}
    try:
        previous = _append_states(published)
        if previous:
            shutil.copyfile(published, tmp)  # a finished, checkpointed file: a consistent copy
        with duckdb.connect(str(tmp)) as db:
            db.execute("ATTACH ? AS build (READ_ONLY)", [str(build)])
            found = db.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                "WHERE database_name = 'build' AND schema_name IN (SELECT unnest(?)) ORDER BY ALL",
                [list(PUBLISHED_SCHEMAS)],
            ).fetchall()
            if not found:
                raise RuntimeError(
                    f"the build warehouse {build} has no tables in {', '.join(PUBLISHED_SCHEMAS)}"
                )
            names = [name for (name,) in found]
            _drop_all_but(db, names)
            states: dict[str, AppendState] = {}
            for name in names:
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.split(".")[0]}"')
                key = APPEND_ONLY.get(name)
                state = previous.get(name)
                if key and state and _still_holds(db, name, key, state):
                    db.execute(
                        f"INSERT INTO {_q(name)} SELECT * FROM build.{_q(name)} WHERE {key} > ?",
                        [state.through],
                    )
                    appended[name] = _rows(db, name) - state.rows
                else:
                    db.execute(
                        f"CREATE OR REPLACE TABLE {_q(name)} AS SELECT * FROM build.{_q(name)}"
                    )
                tables[name] = _rows(db, name)
                if key:
                    states[name] = _state_of(db, name, key, state if name in appended else None)
            db.execute("CREATE OR REPLACE TABLE main.published (published_at TIMESTAMP, info JSON)")
            db.execute(
                "INSERT INTO main.published VALUES (?, ?)",
                [
                    datetime.now(UTC).replace(tzinfo=None),
                    json.dumps(info, sort_keys=True, default=str),
                ],
            )
            _record_append_states(db, states)
            db.execute("DETACH build")
        _fsync(tmp)
        os.replace(tmp, published)
    except BaseException:
        # a failed publish leaves the previous warehouse as it was, and nothing beside it
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    _fsync(published.parent)
    return PublishResult(
        path=published, tables=tables, bytes=published.stat().st_size, appended=appended
    )


def _q(name: str) -> str:
    schema, table = name.split(".")
    return f'"{schema}"."{table}"'


def _rows(db: duckdb.DuckDBPyConnection, name: str) -> int:
    (rows,) = db.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()
    return int(rows)


def _checksum(db: duckdb.DuckDBPyConnection, source: str, key: str, low: int, high: int) -> list:
    """Per column, the sum of its row hashes over low < key <= high (adds up over key ranges)."""
    row = db.execute(
        f"SELECT sum(hash(COLUMNS(*))) FROM {source} WHERE {key} > ? AND {key} <= ?",
        [low, high],
    ).fetchone()
    return [int(value or 0) for value in row]


def _still_holds(db: duckdb.DuckDBPyConnection, name: str, key: str, state: AppendState) -> bool:
    """The build's rows up to the published key are the published rows: same count, same sums."""
    (rows,) = db.execute(
        f"SELECT count(*) FROM build.{_q(name)} WHERE {key} <= ?", [state.through]
    ).fetchone()
    if rows != state.rows or not _table_exists(db, name):
        return False
    return [str(v) for v in _checksum(db, f"build.{_q(name)}", key, -(2**62), state.through)] == (
        state.checksum
    )


def _state_of(
    db: duckdb.DuckDBPyConnection, name: str, key: str, before: AppendState | None
) -> AppendState:
    (through,) = db.execute(f"SELECT coalesce(max({key}), 0) FROM {_q(name)}").fetchone()
    if before is None:  # copied whole
        sums = _checksum(db, _q(name), key, -(2**62), through)
    else:  # the old sums plus the appended rows'
        added = _checksum(db, _q(name), key, before.through, through)
        sums = [int(old) + new for old, new in zip(before.checksum, added, strict=True)]
    return AppendState(through=int(through), rows=_rows(db, name), checksum=[str(v) for v in sums])


def _table_exists(db: duckdb.DuckDBPyConnection, name: str) -> bool:
    schema, table = name.split(".")
    (found,) = db.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return found > 0


def _drop_all_but(db: duckdb.DuckDBPyConnection, keep: list[str]) -> None:
    """In a copy of the old file: drop the published tables the build no longer has."""
    stale = db.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name IN (SELECT unnest(?))",
        [list(PUBLISHED_SCHEMAS)],
    ).fetchall()
    for (name,) in stale:
        if name not in keep:
            db.execute(f"DROP TABLE {_q(name)}")


def _append_states(published: Path) -> dict[str, AppendState]:
    """The append-only tables the published file holds, as it recorded them (none when there is
    no file, or it predates this record)."""
    if not published.exists():
        return {}
    try:
        with duckdb.connect(str(published), read_only=True) as db:
            rows = db.execute(
                "SELECT table_name, through_key, row_count, checksum FROM main.published_tables"
            ).fetchall()
    except duckdb.Error:
        return {}
    return {
        name: AppendState(through=through, rows=count, checksum=json.loads(checksum))
        for name, through, count, checksum in rows
    }


def _record_append_states(db: duckdb.DuckDBPyConnection, states: dict[str, AppendState]) -> None:
    db.execute(
        "CREATE OR REPLACE TABLE main.published_tables (table_name VARCHAR, through_key BIGINT, "
        "row_count BIGINT, checksum JSON)"
    )
    for name, state in states.items():
        db.execute(
            "INSERT INTO main.published_tables VALUES (?, ?, ?, ?)",
            [name, state.through, state.rows, json.dumps(state.checksum)],
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
