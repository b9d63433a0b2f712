"""`promo ledger verify`: replay the events, checking the ledger's invariants on each, and
report every event that breaks one and every projection row that differs from the rebuild.

The rebuild runs in private tables (SQLite: an in-memory database with the ledger file
attached read-only; PostgreSQL: temporary tables of the verifying session), from one
consistent read snapshot of the ledger, using the same `apply` code the live path uses. Before
each event is applied, the invariants (invariant_checks.py) are asked against the state the
events before it left: an event that breaks one is named by its seq and event id, with the
reason code. Any projection row the ledger does not explain, or explains differently, is
reported with its key and fields.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redemption_core.domain.reasons import LedgerCode
from redemption_core.ledger.dialect import SQLITE
from redemption_core.ledger.invariant_checks import breaches_before, counters_after
from redemption_core.ledger.projection import ProjectionTransaction
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.sqlite_schema import PROJECTION_KEYS, PROJECTION_SCHEMA

REQUIRED_TRIGGERS = (
    "events_are_never_updated",
    "events_are_never_deleted",
    "events_are_never_replaced",
)
# Errors an event may raise when the projection cannot take it (a finding, not a crash). An
# adapter whose transaction an SQL error aborts (PostgreSQL) lets its own errors through and
# replays the page event by event (postgres.verify_postgres).
APPLY_ERRORS: tuple[type[BaseException], ...] = (LookupError, ValueError, TypeError, sqlite3.Error)


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
    """Replay SELECT_EVENT rows (replay_row) and flush."""
    differences = []
    for row in rows:
        differences.extend(replay_row(rebuild, row, errors))
    rebuild.flush()
    return differences


def replay_row(
    rebuild: ProjectionTransaction, row: tuple[Any, ...], errors: tuple[type[BaseException], ...]
) -> list[Difference]:
    """Check one event's invariants, apply it, check the counters it lowered."""
    key = (row[0], row[1])
    try:
        event = event_from_row(row)
        breaches = breaches_before(rebuild, event)
    except errors as error:
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
    except errors as error:
        # An event the projection cannot take (its campaign is gone, its payload lacks a
        # field, it rolls back what is not standing) is itself a finding, unless a breach
        # above already says why: report it and keep replaying.
        if not found:
            problem = f"{event.event_type} cannot be applied: {error!r}"
            found.append(Difference("events", key, problem, LedgerCode.CANNOT_APPLY))
    return found


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
