"""Ledger → lake → warehouse raw layer, incrementally by sequence number.

The lake holds one Parquet file per event date (`lake/events/event_date=YYYY-MM-DD/events.parquet`,
Hive-style), each sorted by `seq`. A run reads every event past the watermark (the highest `seq`
already in the lake) and merges it into the file of its own day, so a late-arriving event lands
in its own day's partition. Rebuilding a day re-reads that day from the ledger, using the seq
range the state file remembers for it, and writes the same bytes for the same events.

The new events are read in seq ranges (CHUNK_EVENTS at a time, READ_WORKERS ranges in parallel)
and a day is written once a chunk comes without events for it, so memory stays bounded however
large the ledger or the batch; a day that gets more events after it was written is merged again,
and the bytes do not depend on the chunking.

The state file (`lake/_state.json`) is written last: a crash between the Parquet files and the
state only means the next run re-reads events it already has, and merging de-duplicates by seq.

On PostgreSQL (PROMO_LEDGER_URL) writers run side by side, so seqs are handed out in one order
and committed in another: an event with seq 7 can become visible after one with seq 9 was
read, and a watermark on seq would skip it forever. There a run takes the events of the
transactions that finished before its horizon: `pg_snapshot_xmin` of a snapshot, below which
every transaction id has committed or rolled back. The state remembers the horizon
(`position`); the next run takes the transactions from there to its own horizon, so each
event is taken exactly once, whatever the commit order. (SQLite has one writer: seq order is
commit order.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc_postgresql
import adbc_driver_sqlite.dbapi as adbc
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Every column of the ledger's events table, in its order (docs/ledger.md).
TEXT_COLUMNS = (
    "event_id",
    "event_type",
    "occurred_at",
    "recorded_at",
    "campaign_id",
    "voucher_id",
    "customer_id",
    "order_id",
    "channel",
    "redemption_id",
    "idempotency_key",
    "device_hash",
    "ip_hash",
    "payment_hash",
    "store_id",
    "staff_id",
    "sales_channel",
    "payload",
)
NULLABLE_COLUMNS = frozenset(TEXT_COLUMNS) - {
    "event_id",
    "event_type",
    "occurred_at",
    "recorded_at",
    "payload",
}
LAKE_SCHEMA = pa.schema(
    [("seq", pa.int64())]
    + [(name, pa.string()) for name in TEXT_COLUMNS]
    + [("event_date", pa.string())]
)
# ADBC infers a column's type from its first rows; a column that starts out all NULL would be
# taken for an integer. Reading NULL as '' and turning it back keeps every column text.
_SELECT = ", ".join(
    ["seq"]
    + [
        f"coalesce({name}, '') AS {name}" if name in NULLABLE_COLUMNS else name
        for name in TEXT_COLUMNS
    ]
)


@dataclass(frozen=True)
class PostgresLedger:
    """A ledger on PostgreSQL (PROMO_LEDGER_URL), where the SQLite ledger's path would be."""

    url: str

    def exists(self) -> bool:
        return True  # configured is there; a server that is down fails the read, loudly

    def __str__(self) -> str:
        """The URL without its password, for messages."""
        import psycopg

        info = psycopg.conninfo.conninfo_to_dict(self.url)
        where = f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
        return f"postgresql://{info.get('user', '')}@{where}"


LedgerSource = Path | PostgresLedger


@dataclass
class LakeState:
    watermark: int = 0
    # event date → [lowest seq, highest seq, events] seen for that day
    days: dict[str, list[int]] = field(default_factory=dict)
    # PostgreSQL: every transaction id below this had finished when the lake last took events
    position: int = 0

    @classmethod
    def load(cls, path: Path) -> LakeState:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(
            watermark=int(raw["watermark"]),
            days={k: list(v) for k, v in raw["days"].items()},
            position=int(raw.get("position", 0)),
        )

    def save(self, path: Path) -> None:
        document: dict = {"watermark": self.watermark, "days": self.days}
        if self.position:
            document["position"] = self.position
        _write_atomically(path, json.dumps(document, sort_keys=True).encode())


@dataclass(frozen=True)
class ExtractResult:
    watermark_before: int
    watermark_after: int
    new_events: int
    late_events: int  # new events whose day was already in the lake before this run
    days_written: tuple[str, ...]
    lake_events: int


class Lake:
    """Paths of the lake under PROMO_HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events_dir = root / "events"
        self.state_path = root / "_state.json"

    def day_file(self, day: str) -> Path:
        return self.events_dir / f"event_date={day}" / "events.parquet"

    def day_files(self, days: Iterable[str] | None = None) -> list[Path]:
        if days is None:
            return sorted(self.events_dir.glob("event_date=*/events.parquet"))
        return [path for path in (self.day_file(day) for day in sorted(days)) if path.exists()]


# The extract reads the ledger in seq ranges of CHUNK_EVENTS, READ_WORKERS at a time (the SQLite
# read is most of the extract's time, and the ADBC reader runs without the GIL, so two ranges read
# on two cores), and holds at most BUFFER_EVENTS events of days not yet written: memory stays
# bounded by (READ_WORKERS + 1) chunks plus the buffer plus the largest day, whatever the ledger's
# size. The files do not depend on these numbers (write_day writes a day's events the same way
# however they were chunked).
CHUNK_EVENTS = 250_000
READ_WORKERS = 2
BUFFER_EVENTS = 1_000_000
# Rows per Arrow batch from the ADBC reader (its default, 1024, makes tables of thousands of
# chunks that every later step pays for).
_BATCH_ROWS = 65_536
_BUSY_TIMEOUT_MS = 30_000


def read_ledger(ledger: LedgerSource, where: str = "", params: tuple = ()) -> pa.Table:
    """Events of the ledger as Arrow, in seq order, read without blocking the ledger's writer.

    Without `where`, the whole ledger is read in seq ranges on READ_WORKERS threads."""
    if where:
        return _read(ledger, where, params)
    ranges = _seq_ranges(0, ledger_high_water(ledger))
    if len(ranges) <= 1:
        return _read(ledger, "WHERE seq > ? AND seq <= ?", ranges[0] if ranges else (0, 0))
    with ThreadPoolExecutor(READ_WORKERS) as pool:
        parts = list(pool.map(lambda r: _read(ledger, "WHERE seq > ? AND seq <= ?", r), ranges))
    return pa.concat_tables(parts)


def _read(ledger: LedgerSource, where: str, params: tuple) -> pa.Table:
    if isinstance(ledger, PostgresLedger):
        table = _fetch_postgres(
            ledger, f"SELECT {_SELECT} FROM events {where} ORDER BY seq", params
        )
    else:
        uri = f"file:{ledger}?mode=ro"
        with adbc.connect(uri) as connection:
            cursor = connection.cursor()
            # Readers on two threads open connections at the same moment; one may find the
            # other setting up the WAL index and get SQLITE_BUSY ("database is locked"): wait.
            cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            cursor.fetchall()
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(_BATCH_ROWS)})
            cursor.execute(f"SELECT {_SELECT} FROM events {where} ORDER BY seq", params)
            table = cursor.fetch_arrow_table()
            cursor.close()
    if table.num_rows == 0:
        return LAKE_SCHEMA.empty_table()
    columns = []
    for name in table.column_names:
        column = table[name]
        if name in NULLABLE_COLUMNS:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        columns.append(column.cast(LAKE_SCHEMA.field(name).type))
    columns.append(pc.utf8_slice_codeunits(table["occurred_at"], 0, 10))
    return pa.Table.from_arrays(columns, schema=LAKE_SCHEMA)


def _fetch_postgres(ledger: PostgresLedger, sql: str, params: tuple) -> pa.Table:
    """One query through ADBC's PostgreSQL driver (COPY in binary underneath), `?` → `$n`."""
    parts = sql.split("?")
    sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
    with adbc_postgresql.connect(ledger.url) as connection:
        cursor = connection.cursor()
        cursor.execute(sql, params or None)
        table = cursor.fetch_arrow_table()
        cursor.close()
    return table


def _scalar(ledger: LedgerSource, sql: str) -> object:
    if isinstance(ledger, PostgresLedger):
        table = _fetch_postgres(ledger, sql, ())
        return table.column(0)[0].as_py() if table.num_rows else None
    with adbc.connect(f"file:{ledger}?mode=ro") as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        row = cursor.fetchone()
        cursor.close()
    return None if row is None else row[0]


def _seq_ranges(after: int, high: int, size: int | None = None) -> list[tuple[int, int]]:
    """(low, high] seq ranges of at most `size` covering (after, high]."""
    size = size or CHUNK_EVENTS
    return [(low, min(low + size, high)) for low in range(after, high, size)]


def read_chunks(
    ledger: LedgerSource, after: int, high: int, txids: tuple[int, int] | None = None
) -> Iterator[pa.Table]:
    """The events with after < seq <= high, in seq order, one table per CHUNK_EVENTS seq range;
    READ_WORKERS ranges are read ahead at a time (no more, so memory stays bounded). With
    `txids` (PostgreSQL), only those of the transactions with low <= txid < high."""
    ranges = _seq_ranges(after, high)
    with ThreadPoolExecutor(READ_WORKERS) as pool:
        pending = [pool.submit(_read_range, ledger, r, txids) for r in ranges[:READ_WORKERS]]
        for i in range(len(ranges)):
            chunk = pending.pop(0).result()
            if i + READ_WORKERS < len(ranges):
                pending.append(pool.submit(_read_range, ledger, ranges[i + READ_WORKERS], txids))
            yield chunk


def _read_range(
    ledger: LedgerSource, seq_range: tuple[int, int], txids: tuple[int, int] | None = None
) -> pa.Table:
    # through the module's read_ledger, so the benchmark's profile still times the reads
    if txids is None:
        return read_ledger(ledger, "WHERE seq > ? AND seq <= ?", seq_range)
    return read_ledger(
        ledger, "WHERE seq > ? AND seq <= ? AND txid >= ? AND txid < ?", (*seq_range, *txids)
    )


def ledger_high_water(ledger: LedgerSource) -> int:
    """The highest seq in the ledger (0 when empty): what the growth sensor compares against."""
    return int(_scalar(ledger, "SELECT coalesce(max(seq), 0) FROM events") or 0)


def latest_event_day(ledger: LedgerSource) -> date | None:
    """The day of the newest event by seq (None for an empty ledger): the partition a plain run is for."""
    value = _scalar(ledger, "SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1")
    return None if value is None else date.fromisoformat(str(value)[:10])


def _new_events(ledger: LedgerSource, state: LakeState) -> tuple[int, int, tuple[int, int] | None]:
    """What a run takes: (after, high] in seq, and on PostgreSQL the transactions between the
    last run's horizon and this one's (see the module docstring)."""
    if not isinstance(ledger, PostgresLedger):
        return state.watermark, ledger_high_water(ledger), None
    horizon = int(
        _scalar(
            ledger, "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)"
        )  # type: ignore[arg-type]
    )
    txids = (state.position, horizon)
    bounds = _fetch_postgres(
        ledger,
        "SELECT coalesce(min(seq) - 1, 0), coalesce(max(seq), 0) FROM events"
        " WHERE txid >= ? AND txid < ?",
        txids,
    )
    after, high = (int(bounds.column(i)[0].as_py()) for i in range(2))
    return after, high, txids


def sync_lake(ledger: LedgerSource, lake: Lake, rebuild_days: Iterable[str] = ()) -> ExtractResult:
    """Bring the lake up to the ledger: merge every event past the watermark into its day, and
    re-read the `rebuild_days` from the ledger (a partition re-run or a backfill).

    New events are read chunk by chunk in seq order. A day's events wait in memory until a chunk
    arrives without any for it (a day's events are mostly contiguous in seq), or until more than
    BUFFER_EVENTS wait; the day is then merged into its file. A day that gets more events after
    that is merged again, like any late event: the files come out the same either way."""
    state = LakeState.load(lake.state_path)
    before = state.watermark
    known_days = set(state.days)
    rebuild = set(rebuild_days)
    # late: it happened on a day before the newest one the lake had already seen
    newest = max(known_days, default=None)
    new_events = late = 0
    watermark = before
    written: set[str] = set()
    waiting: dict[str, list[pa.Table]] = {}
    waiting_events = 0

    def write_waiting(days: Iterable[str]) -> None:
        nonlocal waiting_events
        for day in sorted(days):
            parts = waiting.pop(day)
            new = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
            waiting_events -= new.num_rows
            table = _merge(lake.day_file(day), new)
            state.days[day][2] = table.num_rows
            write_day(lake.day_file(day), table)
            written.add(day)

    after, high, txids = _new_events(ledger, state)
    for chunk in read_chunks(ledger, after, high, txids):
        if chunk.num_rows == 0:
            continue
        new_events += chunk.num_rows
        watermark = max(watermark, pc.max(chunk["seq"]).as_py())
        by_day = split_by_day(chunk)
        for day, part in by_day.items():
            if newest is not None and day < newest:
                late += part.num_rows
            seqs = part["seq"]
            low, high = pc.min(seqs).as_py(), pc.max(seqs).as_py()
            if day in state.days:
                old = state.days[day]
                state.days[day] = [min(old[0], low), max(old[1], high), old[2] + part.num_rows]
            else:
                state.days[day] = [low, high, part.num_rows]
            if day in rebuild and day in known_days:
                continue  # re-read whole from the ledger below
            waiting.setdefault(day, []).append(part)
            waiting_events += part.num_rows
        if waiting_events > BUFFER_EVENTS:
            write_waiting(list(waiting))
        else:
            write_waiting([day for day in waiting if day not in by_day])
    write_waiting(list(waiting))

    for day in sorted(rebuild & known_days):
        low, high, _ = state.days[day]
        where = "WHERE seq BETWEEN ? AND ? AND occurred_at >= ? AND occurred_at < ?"
        params: tuple = (low, high, day, _next_day(day))
        if txids is not None:  # only what this run's horizon vouches for
            where += " AND txid < ?"
            params += (txids[1],)
        table = read_ledger(ledger, where, params)
        state.days[day][2] = table.num_rows
        write_day(lake.day_file(day), table)
        written.add(day)

    state.watermark = watermark
    if txids is not None:
        state.position = txids[1]
    state.save(lake.state_path)
    return ExtractResult(
        watermark_before=before,
        watermark_after=state.watermark,
        new_events=new_events,
        late_events=late,
        days_written=tuple(sorted(written)),
        lake_events=sum(v[2] for v in state.days.values()),
    )


def split_by_day(table: pa.Table) -> dict[str, pa.Table]:
    """One table per event date, each in seq order (the input is in seq order)."""
    if table.num_rows == 0:
        return {}
    encoded = pc.dictionary_encode(table["event_date"]).combine_chunks()
    codes = encoded.indices.to_numpy()
    names = encoded.dictionary.to_pylist()
    # Runs of one day: a chunk's events mostly come a day at a time, and slicing runs copies
    # nothing (write_day combines the pieces once). Many short runs (interleaved days) would
    # make many tiny slices: then one stable sort by day and a single take.
    starts = np.flatnonzero(np.diff(codes)) + 1
    if len(starts) + 1 > 2 * len(names) + 64:
        order = np.argsort(codes, kind="stable")
        ordered = table.take(order)
        counts = np.bincount(codes, minlength=len(names))
        offsets = np.concatenate(([0], np.cumsum(counts)))
        return {
            name: ordered.slice(offsets[code], counts[code])
            for code, name in sorted(enumerate(names), key=lambda item: item[1])
        }
    bounds = np.concatenate(([0], starts, [len(codes)]))
    runs: dict[str, list[pa.Table]] = {}
    for begin, end in pairwise(bounds.tolist()):
        runs.setdefault(names[codes[begin]], []).append(table.slice(begin, end - begin))
    return {
        name: parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        for name, parts in sorted(runs.items())
    }


def write_day(path: Path, table: pa.Table) -> None:
    """Write a day's file atomically; identical events give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    # No dictionary pages: most columns are near-unique (ids, timestamps, payloads), where
    # building a dictionary only to abandon it costs a fifth of the write; zstd takes care of the
    # repeated values (the files come out slightly smaller, and read faster with pyarrow).
    pq.write_table(
        table.combine_chunks(),
        tmp,
        compression="zstd",
        use_dictionary=False,
        row_group_size=1_000_000,
    )
    os.replace(tmp, path)


def load_raw(
    warehouse: Path, lake: Lake, result: ExtractResult, ledger_high_water: int, run_at: datetime
) -> int:
    """Bring the warehouse's raw layer (`raw.ledger_events`) in step with the lake: replace the
    days the extract wrote, and any day whose row count differs from the lake's (a load that
    failed after the lake was written, a warehouse deleted or rebuilt). Logs the run in
    `raw.extract_runs` (what system health reads). Returns the raw layer's row count."""
    lake_counts = {day: entry[2] for day, entry in LakeState.load(lake.state_path).days.items()}
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as db:
        # Rows are inserted in parallel without keeping the files' order (nothing reads the raw
        # table by its physical order: every model orders or groups by its own keys), which
        # takes a sixth off the load. Only for this connection.
        db.execute("SET preserve_insertion_order = false")
        db.execute("CREATE SCHEMA IF NOT EXISTS raw")
        columns = ", ".join(
            ["seq BIGINT"] + [f"{name} VARCHAR" for name in TEXT_COLUMNS] + ["event_date VARCHAR"]
        )
        db.execute(f"CREATE TABLE IF NOT EXISTS raw.ledger_events ({columns})")
        raw_counts = dict(
            db.execute("SELECT event_date, count(*) FROM raw.ledger_events GROUP BY ALL").fetchall()
        )
        days = sorted(
            set(result.days_written)
            | {
                day
                for day in lake_counts.keys() | raw_counts.keys()
                if lake_counts.get(day) != raw_counts.get(day)
            }
        )
        if days:
            db.execute("BEGIN")
            db.execute(
                "DELETE FROM raw.ledger_events WHERE event_date IN (SELECT unnest(?))", [days]
            )
            files = [str(path) for path in lake.day_files(days)]
            if files:
                db.execute(
                    "INSERT INTO raw.ledger_events SELECT * FROM read_parquet(?, hive_partitioning = false)",
                    [files],
                )
            db.execute("COMMIT")
        db.execute(
            "CREATE TABLE IF NOT EXISTS raw.extract_runs (run_at TIMESTAMP, watermark_before BIGINT, "
            "watermark_after BIGINT, ledger_high_water BIGINT, new_events BIGINT, late_events BIGINT)"
        )
        db.execute(
            "INSERT INTO raw.extract_runs VALUES (?, ?, ?, ?, ?, ?)",
            [
                run_at.astimezone(UTC).replace(tzinfo=None),
                result.watermark_before,
                result.watermark_after,
                ledger_high_water,
                result.new_events,
                result.late_events,
            ],
        )
        (count,) = db.execute("SELECT count(*) FROM raw.ledger_events").fetchone()
    return int(count)


def _merge(path: Path, new: pa.Table) -> pa.Table:
    if not path.exists():
        return new
    old = pq.read_table(path, schema=LAKE_SCHEMA)
    combined = pa.concat_tables([old, new]).sort_by("seq")
    # a run that died after writing files but before the state re-reads what it had; keep one
    seqs = combined["seq"].to_numpy()
    if len(seqs) > 1 and (seqs[1:] == seqs[:-1]).any():
        keep = [0] + [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1]]
        combined = combined.take(keep)
    return combined


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
