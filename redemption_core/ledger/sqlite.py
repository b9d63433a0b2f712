"""The embedded ledger: SQLite in WAL mode.

Why SQLite: one file under PROMO_HOME, ACID transactions across processes, readers that
never block the writer (WAL), and durability that is a pragma away (synchronous=FULL fsyncs
the WAL on every commit). Writers serialise on BEGIN IMMEDIATE, which is what makes a
single-use voucher redeemable exactly once under any number of processes.

The events table refuses UPDATE and DELETE through triggers: append-only is enforced by the
database, not only by this code. The projection tables (campaigns, vouchers, ...) are
derived state, written only by the projection (projection/), in the same transaction as
the event. This module owns connections, transactions, batches and checkpoints only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redemption_core.domain.campaigns import Campaign

try:
    import fcntl
except ImportError:  # not on POSIX: first opens are not serialised
    fcntl = None  # type: ignore[assignment]
from redemption_core.domain.events import Event
from redemption_core.ledger.dialect import SQLITE
from redemption_core.ledger.projection import ProjectionTransaction
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.sqlite_schema import (
    EVENTS_SCHEMA,
    MIGRATIONS,
    PROJECTION_SCHEMA,
    SCHEMA_VERSION,
)
from redemption_core.ledger.store import LedgerStore


def connect(
    path: Path | str, *, durable: bool = True, read_only: bool = False
) -> sqlite3.Connection:
    """A connection with the ledger's pragmas. isolation_level=None: we issue BEGIN ourselves."""
    if read_only:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        connection = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=60.0
        )
    connection.execute("PRAGMA busy_timeout = 60000")
    if not read_only:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            # Switching to WAL takes an exclusive lock that SQLite does not wait for (no busy
            # handler): first opens by several processes at once queue on a file lock instead.
            with _first_open_lock(path):
                connection.execute("PRAGMA journal_mode = WAL")
        # FULL: every commit fsyncs the WAL, so an acknowledged redemption survives power loss.
        connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        # The Checkpointer thread below copies the WAL into the database off the commit path;
        # this automatic checkpoint (every ~40 MB, SQLite's default is 4 MB) is only the safety
        # net for when it cannot keep up. Durability is the same either way.
        connection.execute("PRAGMA wal_autocheckpoint = 10000")
        connection.execute(f"PRAGMA journal_size_limit = {128 * 1024 * 1024}")
    connection.execute("PRAGMA cache_size = -65536")
    return connection


@contextmanager
def _first_open_lock(path: Path | str) -> Iterator[None]:
    """An exclusive lock on `<ledger>.open-lock` while a process sets up a new or older ledger
    (WAL mode, schema, migration), so that any number of processes may open it first at once."""
    if str(path) == ":memory:" or fcntl is None:
        yield
        return
    lock = Path(path).with_name(Path(path).name + ".open-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(slots=True)
class _Batch:
    broken: bool = False  # a write failed half-way and the batch was rolled back

    def check_usable(self) -> None:
        if self.broken:
            raise RuntimeError("a write failed half-way: the whole batch was rolled back")


class Checkpointer:
    """Copies committed WAL frames into the database file from a thread of its own.

    A checkpoint run by the committing connection stalls that commit for as long as it takes
    to write and fsync the pages; here a PASSIVE checkpoint (which never blocks writers or
    readers) runs on its own connection whenever the WAL has grown past `threshold_pages`.
    """

    def __init__(self, path: Path, *, threshold_pages: int = 2000, interval_s: float = 0.05):
        self._path = path
        self._threshold = threshold_pages
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpointer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                wal = self._path.with_name(self._path.name + "-wal")
                try:
                    size = wal.stat().st_size
                except FileNotFoundError:
                    continue
                if size > self._threshold * 4096:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the safety-net autocheckpoint of the writers takes over
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _run_script(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


class SqliteLedgerStore(LedgerStore):
    """One connection per store object; one store per process (or per thread)."""

    dialect = SQLITE

    def __init__(self, path: Path | str, *, durable: bool = True, read_only: bool = False) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        if isinstance(self.path, Path) and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path, durable=durable, read_only=read_only)
        self._lock = threading.RLock()
        self._campaigns: dict[str, Campaign] = {}
        self._batch: _Batch | None = None
        self.read_only = read_only
        self._checkpointer: Checkpointer | None = None
        if not read_only:
            self._create_schema()
            if isinstance(self.path, Path):
                self._checkpointer = Checkpointer(self.path)

    def _create_schema(self) -> None:
        """Create the tables of a new ledger, or migrate an older one, once.

        A ledger already at SCHEMA_VERSION is not written to at all: opening it never waits
        for a long write (an import) that holds the write lock.
        """
        with self._lock:
            if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return
            with _first_open_lock(self.path):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    version = self._db.execute("PRAGMA user_version").fetchone()[0]
                    if version > SCHEMA_VERSION:
                        raise RuntimeError(f"ledger schema {version} is newer than this code")
                    if version:  # 0: a new file
                        for step in range(version, SCHEMA_VERSION):
                            _run_script(self._db, MIGRATIONS[step])
                    # Creates a new ledger's tables, and what a migration leaves missing.
                    _run_script(self._db, EVENTS_SCHEMA + PROJECTION_SCHEMA)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    @property
    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def write(self, *, concurrent: bool = False) -> Iterator[ProjectionTransaction]:
        # `concurrent` changes nothing here: SQLite has one writer at a time (BEGIN IMMEDIATE).
        with self._lock:
            if self._batch is not None:
                with self._batch_write() as tx:
                    yield tx
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                tx = ProjectionTransaction(self._db, self._campaigns)
                yield tx
                tx.flush()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _batch_write(self) -> Iterator[ProjectionTransaction]:
        """A write inside a batch, without a SAVEPOINT of its own.

        A savepoint copies every page the write touches to a statement journal (a temporary
        file), which cost more than the commits the batch saves. Instead: a write that fails
        before changing the database (the engine checks before it appends) leaves the batch
        as it was; one that fails after rolls back the whole batch, so nothing partial is
        ever committed.
        """
        batch = self._batch
        assert batch is not None
        batch.check_usable()
        changes = self._db.total_changes
        try:
            tx = ProjectionTransaction(self._db, self._campaigns)
            yield tx
            tx.flush()
        except BaseException:
            if self._db.total_changes != changes:
                self._db.execute("ROLLBACK")
                batch.broken = True
            raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One BEGIN IMMEDIATE ... COMMIT around every write inside (see LedgerStore.batch).

        Every write still reads, checks, appends and applies exactly as alone, and reads see
        the batch so far; only the commit is shared. Nothing of the batch is durable until
        it ends, so this is for work that is rebuilt from its input.
        """
        with self._lock:
            if self._batch is not None:  # nested: part of the outer batch
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            batch = self._batch = _Batch()
            try:
                yield
            except BaseException:
                if not batch.broken:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._batch = None
            batch.check_usable()
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[ProjectionTransaction]:
        with self._lock:
            if self._batch is not None:  # inside the batch's transaction, which it sees
                self._batch.check_usable()
                yield ProjectionTransaction(self._db, self._campaigns)
                return
            self._db.execute("BEGIN")
            try:
                yield ProjectionTransaction(self._db, self._campaigns)
            finally:
                self._db.execute("COMMIT")

    def events(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Event]:
        query = f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (after_seq,)
        if limit is not None:
            query += " LIMIT ?"
            params += (limit,)
        with self._lock:
            rows = self._db.execute(query, params).fetchall() if limit is not None else None
        if rows is not None:
            yield from (event_from_row(row) for row in rows)
            return
        # Unbounded: page through by seq so memory stays flat on a large ledger.
        last = after_seq
        while True:
            with self._lock:
                page = self._db.execute(
                    f"{SELECT_EVENT} WHERE seq > ? ORDER BY seq LIMIT 10000", (last,)
                ).fetchall()
            if not page:
                return
            for row in page:
                yield event_from_row(row)
            last = page[-1][0]

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read-only reporting queries (stats, export, verify)."""
        return self._db

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._db.close()
