"""Dagster's SQLite event log, made cheap to write to.

A run of the nightly job stores some 900 event rows (every asset planned, every dbt model
materialized, every dbt test evaluated, each asset event twice: in the run's shard and in the
index), each in its own transaction. Dagster's SQLite event log opens a new engine and connection
for every one and closes it after, and its databases stay in rollback-journal mode (it issues
`PRAGMA journal_mode=WAL` inside a transaction, where SQLite ignores it), so every event paid a
journal sync, a database sync and a fresh connection: ~15 ms each here, seconds per run.

This subclass keeps one engine (and its pooled connections) per database and switches the files
to WAL with `synchronous=NORMAL`: a commit appends to the log without syncing, the log is synced
at checkpoints, and a crash can lose the last events but never corrupts the database. Readers (the
webserver) don't block the writer. Only the connection handling changes; what is stored is
Dagster's own.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

# A webserver reads many runs' shards: keep the most recently used ones open, not all of them.
OPEN_SHARDS = 8


def _tune_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # busy: the file keeps its mode, and a later connection tries again
    with contextlib.suppress(sqlite3.OperationalError):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class WalSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with pooled connections and its databases in WAL mode."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # before the parent's __init__, which already opens the index
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> WalSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            event.listen(engine, "connect", _tune_connection)
        self._engines[shard] = engine  # most recently used last
        while len(self._engines) > OPEN_SHARDS:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection

    def _close_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_engines()  # the shard files are about to be deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
