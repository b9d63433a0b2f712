"""`promo ledger verify`: replay the events, checking the ledger's invariants on each, and
report every event that breaks one and every projection row that differs from the rebuild.

The rebuild runs in a private in-memory database, from one consistent read snapshot of the
ledger file (attached read-only), using the same `apply` code the live path uses. Before each
event is applied, the invariants (invariant_checks.py) are asked against the state the events
before it left: an event that breaks one is named by its seq and event id, with the reason
code. Any projection row the ledger does not explain, or explains differently, is reported
with its key and fields.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redemption_core.domain.reasons import LedgerCode
from redemption_core.ledger.invariant_checks import breaches_before, counters_after
from redemption_core.ledger.projection import ProjectionTransaction
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.sqlite_schema import PROJECTION_KEYS, PROJECTION_SCHEMA

REQUIRED_TRIGGERS = (
    "events_are_never_updated",
    "events_are_never_deleted",
    "events_are_never_replaced",
)


@dataclass(frozen=True)
class Difference:
    table: str
    key: tuple[Any, ...]  # for an event: (seq, event_id)
    problem: str
    code: str | None = None  # the reason code of an event that breaks an invariant

    def __str__(self) -> str:
        key = ", ".join(str(part) for part in self.key)
        return f"{self.table}[{key}]: {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    events: int
    differences: list[Difference]

    @property
    def clean(self) -> bool:
        return not self.differences


def verify_ledger(path: Path) -> VerifyReport:
    if not Path(path).exists():
        raise FileNotFoundError(f"no ledger at {path}")
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.execute("ATTACH DATABASE ? AS src", (f"file:{Path(path).resolve()}?mode=ro",))
    except sqlite3.OperationalError:
        # Older SQLite builds do not take URIs in ATTACH unless the connection was opened
        # with uri=True; reopen that way.
        db.close()
        db = sqlite3.connect("file::memory:", uri=True, isolation_level=None)
        db.execute("ATTACH DATABASE ? AS src", (f"file:{Path(path).resolve()}?mode=ro",))
    for statement in PROJECTION_SCHEMA.split(";\n"):
        if statement.strip():
            db.execute(statement.replace("IF NOT EXISTS ", "IF NOT EXISTS main."))
    db.execute("BEGIN")  # one snapshot of the ledger for the replay and the comparison
    try:
        rebuild = ProjectionTransaction(db, {})
        count = 0
        cursor = db.execute(
            SELECT_EVENT.replace("FROM events", "FROM src.events") + " ORDER BY seq"
        )
        differences = _trigger_differences(db)
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                differences.extend(_replay(rebuild, row))
            count += len(rows)
        rebuild.flush()
        for table, key_columns in PROJECTION_KEYS.items():
            differences.extend(_table_differences(db, table, key_columns))
    finally:
        db.execute("COMMIT")
        db.close()
    return VerifyReport(events=count, differences=differences)


def _replay(rebuild: ProjectionTransaction, row: tuple[Any, ...]) -> list[Difference]:
    """Check one event's invariants, apply it, check the counters it lowered."""
    key = (row[0], row[1])
    try:
        event = event_from_row(row)
        breaches = breaches_before(rebuild, event)
    except (LookupError, ValueError, TypeError, sqlite3.Error) as error:
        return [Difference("events", key, f"{row[2]} cannot be read: {error!r}")]
    found = [
        Difference("events", key, f"{event.event_type} {b.field}: {b.code}: {b.message}", b.code)
        for b in breaches
    ]
    try:
        rebuild.apply(event)
        found += [
            Difference("events", key, f"{event.event_type}: {b.code}: {b.message}", b.code)
            for b in counters_after(rebuild, event)
        ]
    except (LookupError, ValueError, TypeError, sqlite3.Error) as error:
        # An event the projection cannot take (its campaign is gone, its payload lacks a
        # field, it rolls back what is not standing) is itself a finding, unless a breach
        # above already says why: report it and keep replaying.
        if not found:
            problem = f"{event.event_type} cannot be applied: {error!r}"
            found.append(Difference("events", key, problem, LedgerCode.CANNOT_APPLY))
    return found


def _trigger_differences(db: sqlite3.Connection) -> list[Difference]:
    present = {
        row[0] for row in db.execute("SELECT name FROM src.sqlite_master WHERE type = 'trigger'")
    }
    return [
        Difference("events", (name,), "append-only trigger is missing")
        for name in REQUIRED_TRIGGERS
        if name not in present
    ]


def _table_differences(
    db: sqlite3.Connection, table: str, key_columns: tuple[str, ...]
) -> list[Difference]:
    columns = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]
    key_index = [columns.index(name) for name in key_columns]
    listed = ", ".join(columns)

    def rows(query: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        return {tuple(row[i] for i in key_index): row for row in db.execute(query)}

    expected = rows(f"SELECT {listed} FROM main.{table} EXCEPT SELECT {listed} FROM src.{table}")
    stored = rows(f"SELECT {listed} FROM src.{table} EXCEPT SELECT {listed} FROM main.{table}")
    differences = []
    for key in sorted(set(expected) | set(stored), key=repr):
        if key not in stored:
            differences.append(Difference(table, key, "missing from the projection"))
        elif key not in expected:
            differences.append(Difference(table, key, "not explained by any event"))
        else:
            fields = [
                f"{name}: ledger says {want!r}, projection has {have!r}"
                for name, want, have in zip(columns, expected[key], stored[key], strict=True)
                if want != have
            ]
            differences.append(Difference(table, key, "; ".join(fields)))
    return differences
