"""`promo ledger verify`: rebuild the projection from the events and report every difference.

The rebuild runs in a private in-memory database, from one consistent read snapshot of the
ledger file (attached read-only), using the same `apply` code the live path uses. Any row
the ledger does not explain, or explains differently, is reported with its key and fields.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    key: tuple[Any, ...]
    problem: str

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
                try:
                    rebuild.apply(event_from_row(row))
                except (LookupError, ValueError, TypeError, sqlite3.Error) as error:
                    # An event the projection cannot take (its campaign is gone, its payload
                    # lacks a field) is itself a finding: report it and keep replaying.
                    problem = f"event {row[1]} ({row[2]}) cannot be applied: {error!r}"
                    differences.append(Difference("events", (row[0],), problem))
            count += len(rows)
        rebuild.flush()
        for table, key_columns in PROJECTION_KEYS.items():
            differences.extend(_table_differences(db, table, key_columns))
    finally:
        db.execute("COMMIT")
        db.close()
    return VerifyReport(events=count, differences=differences)


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
