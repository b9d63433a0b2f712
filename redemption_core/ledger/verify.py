"""`promo ledger verify`: rebuild the projection from the events and report every difference.

The rebuild runs in private tables (SQLite: an in-memory database with the ledger file
attached read-only; PostgreSQL: temporary tables of the verifying session), from one
consistent read snapshot of the ledger, using the same `apply` code the live path uses. Any
row the ledger does not explain, or explains differently, is reported with its key and fields.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redemption_core.ledger.dialect import SQLITE
from redemption_core.ledger.projection import ProjectionTransaction
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.sqlite_schema import PROJECTION_KEYS, PROJECTION_SCHEMA

REQUIRED_TRIGGERS = (
    "events_are_never_updated",
    "events_are_never_deleted",
    "events_are_never_replaced",
)
# Errors an event may raise when the projection cannot take it (a finding, not a crash).
APPLY_ERRORS: tuple[type[BaseException], ...] = (LookupError, ValueError, TypeError, sqlite3.Error)


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


def verify_ledger(location: Path | str | None = None) -> VerifyReport:
    """Verify a ledger: a SQLite file's path, a postgresql:// URL, or (None) the configured
    one (PROMO_LEDGER_URL, else the file under PROMO_HOME)."""
    if location is None:
        from redemption_core.ledger.home import ledger_path, ledger_url

        location = ledger_url() or ledger_path()
    if isinstance(location, str) and location.startswith(("postgresql://", "postgres://")):
        from redemption_core.ledger.postgres import verify_postgres

        return verify_postgres(location)
    return _verify_sqlite(Path(location))


def _verify_sqlite(path: Path) -> VerifyReport:
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
        present = {
            row[0]
            for row in db.execute("SELECT name FROM src.sqlite_master WHERE type = 'trigger'")
        }
        cursor = db.execute(
            SELECT_EVENT.replace("FROM events", "FROM src.events") + " ORDER BY seq"
        )
        rebuild = ProjectionTransaction(db, {}, dialect=SQLITE)
        report = rebuild_and_compare(
            lambda rows: apply_rows(rebuild, rows, APPLY_ERRORS),
            iter(lambda: cursor.fetchmany(10_000), []),
            trigger_differences(present, REQUIRED_TRIGGERS),
            lambda table: [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")],
            lambda query: db.execute(query).fetchall(),
            rebuilt="main",
            stored="src",
        )
    finally:
        db.execute("COMMIT")
        db.close()
    return report


def apply_rows(
    rebuild: ProjectionTransaction, rows: list[Any], errors: tuple[type[BaseException], ...]
) -> list[Difference]:
    """Apply SELECT_EVENT rows and flush; each event the projection cannot take (its
    campaign is gone, its payload lacks a field) is itself a finding, reported, and the
    replay goes on."""
    differences = []
    for row in rows:
        try:
            rebuild.apply(event_from_row(row))
        except errors as error:
            problem = f"event {row[1]} ({row[2]}) cannot be applied: {error!r}"
            differences.append(Difference("events", (row[0],), problem))
    rebuild.flush()
    return differences


def rebuild_and_compare(
    apply_page: Callable[[list[Any]], list[Difference]],
    pages: Iterable[list[Any]],
    differences: list[Difference],
    columns_of: Callable[[str], list[str]],
    fetch: Callable[[str], list[Any]],
    *,
    rebuilt: str,
    stored: str,
) -> VerifyReport:
    """Replay the event rows (pages of SELECT_EVENT rows in seq order) into the empty tables
    of schema `rebuilt` with `apply_page`, then compare every projection table with
    `stored`'s."""
    count = 0
    for rows in pages:
        differences.extend(apply_page(rows))
        count += len(rows)
    for table, key_columns in PROJECTION_KEYS.items():
        differences.extend(
            _table_differences(fetch, columns_of(table), table, key_columns, rebuilt, stored)
        )
    return VerifyReport(events=count, differences=differences)


def trigger_differences(present: set[str], required: Iterable[str]) -> list[Difference]:
    return [
        Difference("events", (name,), "append-only trigger is missing")
        for name in required
        if name not in present
    ]


def _table_differences(
    fetch: Callable[[str], list[Any]],
    columns: list[str],
    table: str,
    key_columns: tuple[str, ...],
    rebuilt: str,
    stored_schema: str,
) -> list[Difference]:
    key_index = [columns.index(name) for name in key_columns]
    listed = ", ".join(columns)

    def rows(query: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        return {tuple(row[i] for i in key_index): tuple(row) for row in fetch(query)}

    mine, theirs = f"{rebuilt}.{table}", f"{stored_schema}.{table}"
    expected = rows(f"SELECT {listed} FROM {mine} EXCEPT SELECT {listed} FROM {theirs}")
    stored = rows(f"SELECT {listed} FROM {theirs} EXCEPT SELECT {listed} FROM {mine}")
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
