"""The ledger on PostgreSQL, for several machines serving one merchant.

Chosen by PROMO_LEDGER_URL=postgresql://... (store_factory.py). Same events, same projection
(projection/, applied in the same transaction as the event), same guarantees as SQLite; this
module owns connections, transactions and locks only.

Writers. SQLite has one writer at a time; here writes run side by side where that is safe:
- An exclusive write (the default) takes the ledger's advisory lock exclusively, so it runs
  alone among writers, exactly as on SQLite. Every operation that was not designed for
  concurrency stays correct without being audited read by read.
- A concurrent write (redemptions, holds: `write(concurrent=True)`) takes that lock shared,
  and the projection's deciding reads lock what they read: the voucher row (FOR UPDATE), the
  campaign row when campaign-wide limits are checked against its counters, an advisory lock
  per customer whose facts a rule reads and per idempotency key. READ COMMITTED: a statement
  run after a lock was granted sees what the holder committed. Two redemptions of one
  single-use code, one budget, or one customer's limit are serialised; redemptions of
  different vouchers of an unlimited campaign are not (its counters are added to, not
  overwritten). A deadlock between two batches is reported as WriteConflict and the engine
  runs the batch again. (SERIALIZABLE with retries was measured against this; see
  docs/runbook.md and bench/core.py.)

Events are append-only in the database: triggers refuse UPDATE, DELETE and TRUNCATE, and the
application's role is granted only SELECT and INSERT on them (`grant_application_role`).
Idempotency keys are the primary key of `idempotency`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from redemption_core.domain.campaigns import Campaign
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import COLUMNS, Event
from redemption_core.domain.reasons import LedgerCode
from redemption_core.ledger.dialect import POSTGRESQL, to_pyformat
from redemption_core.ledger.postgres_schema import (
    LEDGER_LOCK,
    POSTGRES_SCHEMA_VERSION,
    REQUIRED_TRIGGERS,
    grants,
    migration_ddl,
    projection_ddl,
    schema_ddl,
    schema_version,
)
from redemption_core.ledger.projection import ProjectionTransaction
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row, event_row
from redemption_core.ledger.sqlite_schema import SCHEMA_VERSION
from redemption_core.ledger.store import LedgerStore, RowLocks, WriteConflict
from redemption_core.ledger.verify import (
    APPLY_ERRORS,
    Difference,
    VerifyReport,
    apply_rows,
    rebuild_and_compare,
    trigger_differences,
)

RECONNECT_S = 30.0  # how long a store waits for the server to come back (a restart)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.pop("password", None)
    host = info.get("host", "")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', '')}/{info.get('dbname', '')}"


# A plain insert of bound values: `executemany` sends its rows many to a statement.
_PLAIN_INSERT = re.compile(r"INSERT INTO (\w+(?: \([\w, ]+\))?) VALUES (\([?, ]+\))")
ROWS_PER_INSERT = 500  # one statement's rows (its parameters stay far below PostgreSQL's 65,535)


class _Connection:
    """The DB-API face the projection is written against: `?`/`:name` parameters, `execute`
    returning a cursor, `executemany`."""

    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        cursor = self._connection.cursor()
        cursor.execute(to_pyformat(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        """A plain INSERT goes as multi-row INSERTs (a group commit's thousand event rows in
        two statements, not a thousand: each is a Bind and Execute the server parses and
        plans); anything else row by row, pipelined."""
        plain = _PLAIN_INSERT.fullmatch(sql)
        if plain is None or len(rows) < 2:
            with self._connection.cursor() as cursor:
                cursor.executemany(to_pyformat(sql), rows)
            return
        target, values = plain.groups()
        # A RawCursor takes PostgreSQL's own $n placeholders: psycopg does not parse (and
        # caches no conversion of) a statement of thousands of them.
        with psycopg.RawCursor(self._connection) as cursor:
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                statement = _multi_row_insert(target, values.count("?"), len(chunk))
                cursor.execute(statement, [v for row in chunk for v in row])


@lru_cache(maxsize=256)
def _multi_row_insert(target: str, width: int, rows: int) -> str:
    groups = (
        "(" + ", ".join(f"${row * width + column + 1}" for column in range(width)) + ")"
        for row in range(rows)
    )
    return f"INSERT INTO {target} VALUES {', '.join(groups)}"


class _AdvisoryLocks(RowLocks):
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection
        self._held: set[tuple[str, str]] = set()

    def lock(self, kind: str, key: str) -> None:
        if (kind, key) not in self._held:
            self.lock_many(kind, [key])

    def lock_many(self, kind: str, keys: Sequence[str]) -> None:
        wanted = sorted({key for key in keys if (kind, key) not in self._held})
        if not wanted:
            return
        # In hash order (the subquery sorts before the locks are taken): two writers locking
        # overlapping sets wait for each other instead of deadlocking.
        # Not waited for: in the write's pipeline, the statements after it run once it is
        # granted, and their answer is the wait.
        self._connection.execute(
            "SELECT pg_advisory_xact_lock(h) FROM (SELECT hashtextextended(k, 0) AS h"
            " FROM unnest(%s::text[]) AS k ORDER BY h OFFSET 0) AS ordered",
            ([f"{kind}:{key}" for key in wanted],),
        )
        self._held.update((kind, key) for key in wanted)


@dataclass(slots=True)
class _Batch:
    broken: bool = False

    def check_usable(self) -> None:
        if self.broken:
            raise RuntimeError("a write failed half-way: the whole batch was rolled back")


_CONFLICTS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def _conflict(error: BaseException) -> BaseException | None:
    """The deadlock or serialisation failure behind `error`, if any: in pipeline mode it may
    surface as another error raised while the pipeline was left (its __context__)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, _CONFLICTS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class PostgresLedgerStore(LedgerStore):
    """One connection per store object; one store per process (or per thread)."""

    dialect = POSTGRESQL

    def __init__(
        self,
        url: str,
        *,
        durable: bool = True,
        read_only: bool = False,
        serializable: bool = False,
    ) -> None:
        self.url = url
        self.read_only = read_only
        self._durable = durable
        # SERIALIZABLE instead of row locks for concurrent writes: kept for the benchmark's
        # comparison (bench/core.py); the row locks won (docs/runbook.md).
        self._serializable = serializable
        self._lock = threading.RLock()
        self._campaigns: dict[str, Campaign] = {}
        self._batch: _Batch | None = None
        try:
            self._db: psycopg.Connection = self._connect(retry_s=0)
        except psycopg.OperationalError as error:
            raise InvalidInput(
                "PROMO_LEDGER_URL", f"cannot connect to {self.location}: {error}".strip()
            ) from None
        if not read_only:
            try:
                create_schema(self._db)
            except BaseException:
                self._db.close()
                raise
        elif not self._db.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()[0]:
            self._db.close()
            raise InvalidInput(
                "PROMO_LEDGER_URL", f"no ledger at {self.location} (`promo ledger init` creates it)"
            )

    @property
    def location(self) -> str:
        return redacted(self.url)

    def _connect(self, retry_s: float = RECONNECT_S) -> psycopg.Connection:
        deadline = time.monotonic() + retry_s
        while True:
            try:
                # No server-side prepared statements: psycopg's automatic ones can outlive a
                # transaction the server gave up inside a pipeline, and poolers in
                # transaction mode (PgBouncer) share sessions between clients.
                connection = psycopg.connect(self.url, autocommit=True, prepare_threshold=None)
                break
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline or "password" in str(error):
                    raise
                time.sleep(0.2)
        if not self._durable:
            connection.execute("SET synchronous_commit = off")
        return connection

    def _connection(self) -> psycopg.Connection:
        """The connection, opened again if the server went away (it restarted)."""
        if self._db.closed or self._db.broken:
            self._db = self._connect()
        return self._db

    @contextmanager
    def _transaction(self, begin: str, lock: str | None) -> Iterator[psycopg.Connection]:
        """BEGIN ... COMMIT in pipeline mode: statements whose results nobody reads (the
        projection's inserts and updates, the commit) go out without waiting for each
        other's round trip; a read waits for everything before it."""
        db = self._connection()
        try:
            with db.pipeline():
                db.execute(begin)
                if lock is not None:
                    db.execute(lock)
                yield db
                db.execute("COMMIT")
        except BaseException as error:
            self._rollback(db)
            conflict = _conflict(error)
            if conflict is not None:
                raise WriteConflict(str(conflict)) from error
            raise

    @staticmethod
    def _rollback(db: psycopg.Connection) -> None:
        """Roll back; a connection that cannot (the server went away, a pipeline left busy)
        is closed, and the next transaction opens a new one."""
        if db.broken or db.closed:
            return
        try:
            db.execute("ROLLBACK")
        except psycopg.Error:
            db.close()

    def _begin_write(self, concurrent: bool) -> tuple[str, str]:
        if not concurrent:
            return "BEGIN", f"SELECT pg_advisory_xact_lock({LEDGER_LOCK})"
        level = "SERIALIZABLE" if self._serializable else "READ COMMITTED"
        return (
            f"BEGIN ISOLATION LEVEL {level}",
            f"SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK})",
        )

    def _projection(self, db: psycopg.Connection, *, locks: bool) -> ProjectionTransaction:
        return ProjectionTransaction(
            _Connection(db),
            self._campaigns,
            dialect=POSTGRESQL,
            locks=_AdvisoryLocks(db) if locks else None,
        )

    @contextmanager
    def write(self, *, concurrent: bool = False) -> Iterator[ProjectionTransaction]:
        if self.read_only:
            raise RuntimeError("this ledger store was opened read-only")
        with self._lock:
            if self._batch is not None:
                with self._batch_write() as tx:
                    yield tx
                return
            begin, lock = self._begin_write(concurrent)
            row_locks = concurrent and not self._serializable
            with self._transaction(begin, lock) as db:
                tx = self._projection(db, locks=row_locks)
                yield tx
                tx.flush()

    @contextmanager
    def _batch_write(self) -> Iterator[ProjectionTransaction]:
        """A write inside a batch: it checks before it appends, so a write that fails before
        its first append leaves the batch as it was; one that fails after rolls it all back."""
        batch = self._batch
        assert batch is not None
        batch.check_usable()
        tx = self._projection(self._db, locks=False)
        try:
            yield tx
            tx.flush()
        except BaseException as error:
            # An error in SQL aborts a PostgreSQL transaction: the batch cannot go on either.
            if tx.appended or isinstance(error, psycopg.Error):
                self._rollback(self._db)
                batch.broken = True
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One exclusive transaction around every write inside (see LedgerStore.batch)."""
        with self._lock:
            if self._batch is not None:
                yield
                return
            db = self._connection()
            db.execute("BEGIN")
            db.execute(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK})")
            batch = self._batch = _Batch()
            try:
                yield
            except BaseException:
                if not batch.broken:
                    self._rollback(db)
                raise
            finally:
                self._batch = None
            batch.check_usable()
            try:
                db.execute("COMMIT")
            except BaseException as error:
                self._rollback(db)
                conflict = _conflict(error)
                if conflict is not None:
                    raise WriteConflict(str(conflict)) from error
                raise

    @contextmanager
    def read(self) -> Iterator[ProjectionTransaction]:
        with self._lock:
            if self._batch is not None:
                self._batch.check_usable()
                yield self._projection(self._db, locks=False)
                return
            # One snapshot for the whole read; it never waits for writers, nor they for it.
            with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None) as db:
                yield self._projection(db, locks=False)

    def events(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Event]:
        last = after_seq
        remaining = limit
        while remaining is None or remaining > 0:
            page_size = 10_000 if remaining is None else min(remaining, 10_000)
            with self.read() as tx:
                page = tx.query(
                    f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq LIMIT ?", (last, page_size)
                )
            if not page:
                return
            for row in page:
                yield event_from_row(row)
            last = page[-1][0]
            if remaining is not None:
                remaining -= len(page)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def create_schema(
    db: psycopg.Connection, *, app_role: str | None = None, field: str = "PROMO_LEDGER_URL"
) -> None:
    """Create the ledger's tables if they are missing, or bring a ledger of an older schema up
    to this code's (under the ledger's advisory lock, so processes opening a database at once
    do it once), and grant the application's role what it may do: `app_role`, remembered in
    ledger_meta so that a later migration grants it the tables it adds."""
    db.execute("BEGIN")
    try:
        db.execute(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK})")
        exists = db.execute("SELECT to_regclass('ledger_meta') IS NOT NULL").fetchone()[0]
        meta = dict(db.execute("SELECT key, value FROM ledger_meta").fetchall()) if exists else {}
        stored = meta.get("schema_version")
        steps: range = range(0)
        if stored is not None and stored != POSTGRES_SCHEMA_VERSION:
            version = schema_version(stored)
            if version[0] >= SCHEMA_VERSION:  # newer, or only PostgreSQL's revision differs
                raise InvalidInput(
                    field,
                    f"ledger schema {stored} does not match this code's {POSTGRES_SCHEMA_VERSION}",
                )
            steps = range(version[0], SCHEMA_VERSION)
        if not exists or app_role is not None or steps:
            for step in steps:
                for statement in migration_ddl(step):
                    db.execute(statement)
            for statement in schema_ddl():
                db.execute(statement)
            db.execute(
                "INSERT INTO ledger_meta VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (POSTGRES_SCHEMA_VERSION,),
            )
        if app_role is not None:
            db.execute(
                "INSERT INTO ledger_meta VALUES ('app_role', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (app_role,),
            )
        role = app_role or (meta.get("app_role") if steps else None)
        if role is not None:
            for statement in grants(role):
                db.execute(statement)
        db.execute("COMMIT")
    except pg_errors.InsufficientPrivilege as error:
        db.execute("ROLLBACK")
        raise InvalidInput(
            field,
            f"the ledger's tables are missing or of an older schema ({stored or 'none'}) and this"
            " role may not change them: run `promo ledger init` as the database's owner"
            f" ({error})".replace("\n", " "),
        ) from None
    except BaseException:
        if not db.broken:
            db.execute("ROLLBACK")
        raise


def init_ledger(owner_url: str, app_role: str | None = None) -> None:
    """Create the ledger's tables as their owner, and grant `app_role` its rights."""
    with psycopg.connect(owner_url, autocommit=True) as db:
        create_schema(db, app_role=app_role, field="--url")


def verify_postgres(url: str) -> VerifyReport:
    """`promo ledger verify` on PostgreSQL: the projection rebuilt into temporary tables (they
    shadow the stored ones for this session only) from one REPEATABLE READ snapshot."""
    with psycopg.connect(url, autocommit=True) as db:
        if not db.execute("SELECT to_regclass('events') IS NOT NULL").fetchone()[0]:
            raise InvalidInput("PROMO_LEDGER_URL", f"no ledger at {redacted(url)}")
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            for statement in projection_ddl():
                db.execute(
                    statement.replace("CREATE TABLE IF NOT EXISTS ", "CREATE TEMP TABLE ").replace(
                        "CREATE INDEX IF NOT EXISTS ", "CREATE INDEX "
                    )
                )
            present = {
                row[0]
                for row in db.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.events'::regclass"
                )
            }
            holder: list[ProjectionTransaction] = [_rebuild(db)]

            def apply_page(rows: list[Any]) -> list[Difference]:
                # An error in SQL aborts a PostgreSQL transaction: each page runs in a
                # savepoint, and a page that fails is replayed event by event, so that only
                # the events that cannot be applied are left out (and reported).
                try:
                    with db.transaction():
                        return apply_rows(holder[0], rows, APPLY_ERRORS)
                except psycopg.Error:
                    pass
                found = []
                for row in rows:
                    holder[0] = _rebuild(db)
                    try:
                        with db.transaction():
                            found += apply_rows(holder[0], [row], APPLY_ERRORS)
                    except psycopg.Error as error:
                        problem = f"{row[2]} cannot be applied: {error!r}"
                        key = (row[0], row[1])
                        found.append(Difference("events", key, problem, LedgerCode.CANNOT_APPLY))
                holder[0] = _rebuild(db)
                return found

            cursor = db.cursor(name="verify_events")
            cursor.execute(
                SELECT_EVENT.replace("FROM events", "FROM public.events") + " ORDER BY seq"
            )
            return rebuild_and_compare(
                apply_page,
                iter(lambda: cursor.fetchmany(10_000), []),
                trigger_differences(present, REQUIRED_TRIGGERS),
                lambda table: [
                    row[0]
                    for row in db.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema"
                        " = 'public' AND table_name = %s AND column_name <> 'rowid'"
                        " ORDER BY ordinal_position",
                        (table,),
                    )
                ],
                lambda query: db.execute(query).fetchall(),
                rebuilt="pg_temp",
                stored="public",
            )
        finally:
            db.execute("ROLLBACK")  # the temporary tables go with it


def _rebuild(db: psycopg.Connection) -> ProjectionTransaction:
    return ProjectionTransaction(_Connection(db), {}, dialect=POSTGRESQL)


def copy_ledger(source: LedgerStore, url: str) -> int:
    """Copy every event of `source` (seq kept) into the empty PostgreSQL ledger at `url`,
    applying each to the projection, in one transaction: a copy that fails leaves nothing.
    Returns the number of events copied."""
    target = PostgresLedgerStore(url)
    try:
        db = target._connection()
        db.execute("BEGIN")
        try:
            db.execute(f"SELECT pg_advisory_xact_lock({LEDGER_LOCK})")
            if db.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
                raise InvalidInput(
                    "--to", f"{redacted(url)} already holds events: copy into an empty ledger"
                )
            projection = target._projection(db, locks=False)
            copied = 0
            page: list[Event] = []
            for event in source.events():
                page.append(event)
                if len(page) == 10_000:
                    copied += _copy_page(db, projection, page)
                    page = []
            copied += _copy_page(db, projection, page)
            db.execute(
                "SELECT setval(pg_get_serial_sequence('events', 'seq'),"
                " (SELECT coalesce(max(seq), 0) + 1 FROM events), false)"
            )
            db.execute("COMMIT")
        except BaseException:
            target._rollback(db)
            raise
    finally:
        target.close()
    return copied


def _copy_page(db: psycopg.Connection, projection: ProjectionTransaction, page: list[Event]) -> int:
    if not page:
        return 0
    with db.cursor().copy(f"COPY events (seq, {', '.join(COLUMNS)}) FROM STDIN") as copy:
        for event in page:
            copy.write_row((event.seq, *event_row(event)))
    for event in page:
        projection.apply(event)
    projection.flush()
    return len(page)
