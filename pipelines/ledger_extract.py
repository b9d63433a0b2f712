"""Ledger → lake → warehouse raw layer, incrementally by sequence number.

The lake holds one Parquet file per event date (`lake/events/event_date=YYYY-MM-DD/events.parquet`,
Hive-style), each sorted by `seq`. A run reads every event past the watermark (the highest `seq`
already in the lake) and merges it into the file of its own day, so a late-arriving event lands
in its own day's partition. Rebuilding a day re-reads that day from the ledger, using the seq
range the state file remembers for it, and writes the same bytes for the same events.

The state file (`lake/_state.json`) is written last: a crash between the Parquet files and the
state only means the next run re-reads events it already has, and merging de-duplicates by seq.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import duckdb
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


@dataclass
class LakeState:
    watermark: int = 0
    # event date → [lowest seq, highest seq, events] seen for that day
    days: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LakeState:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        return cls(
            watermark=int(raw["watermark"]), days={k: list(v) for k, v in raw["days"].items()}
        )

    def save(self, path: Path) -> None:
        _write_atomically(
            path,
            json.dumps({"watermark": self.watermark, "days": self.days}, sort_keys=True).encode(),
        )


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


def read_ledger(ledger: Path, where: str = "", params: tuple = ()) -> pa.Table:
    """Events of the ledger as Arrow, in seq order, read without blocking the ledger's writer."""
    uri = f"file:{ledger}?mode=ro"
    with adbc.connect(uri) as connection:
        cursor = connection.cursor()
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


def ledger_high_water(ledger: Path) -> int:
    """The highest seq in the ledger (0 when empty): what the growth sensor compares against."""
    with adbc.connect(f"file:{ledger}?mode=ro") as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT coalesce(max(seq), 0) FROM events")
        (value,) = cursor.fetchone()
        cursor.close()
    return int(value)


def latest_event_day(ledger: Path) -> date | None:
    """The day of the newest event by seq (None for an empty ledger): the partition a plain run is for."""
    with adbc.connect(f"file:{ledger}?mode=ro") as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
        cursor.close()
    return None if row is None else date.fromisoformat(row[0][:10])


def sync_lake(ledger: Path, lake: Lake, rebuild_days: Iterable[str] = ()) -> ExtractResult:
    """Bring the lake up to the ledger: merge every event past the watermark into its day, and
    re-read the `rebuild_days` from the ledger (a partition re-run or a backfill)."""
    state = LakeState.load(lake.state_path)
    before = state.watermark
    new = read_ledger(ledger, "WHERE seq > ?", (before,))
    by_day = split_by_day(new)
    known_days = set(state.days)
    # late: it happened on a day before the newest one the lake had already seen
    newest = max(known_days, default=None)
    late = sum(part.num_rows for day, part in by_day.items() if newest is not None and day < newest)
    for day, part in by_day.items():
        seqs = part["seq"]
        low, high = pc.min(seqs).as_py(), pc.max(seqs).as_py()
        if day in state.days:
            old = state.days[day]
            state.days[day] = [min(old[0], low), max(old[1], high), old[2] + part.num_rows]
        else:
            state.days[day] = [low, high, part.num_rows]

    written: list[str] = []
    for day in sorted(set(rebuild_days) | set(by_day)):
        if day in set(rebuild_days) and day in known_days:
            low, high, _ = state.days[day]
            table = read_ledger(
                ledger,
                "WHERE seq BETWEEN ? AND ? AND occurred_at >= ? AND occurred_at < ?",
                (low, high, day, _next_day(day)),
            )
        elif day in by_day:
            table = _merge(lake.day_file(day), by_day[day])
        else:
            continue  # a day with no events: nothing to write
        state.days[day][2] = table.num_rows
        write_day(lake.day_file(day), table)
        written.append(day)

    if new.num_rows:
        state.watermark = pc.max(new["seq"]).as_py()
    state.save(lake.state_path)
    return ExtractResult(
        watermark_before=before,
        watermark_after=state.watermark,
        new_events=new.num_rows,
        late_events=late,
        days_written=tuple(written),
        lake_events=sum(v[2] for v in state.days.values()),
    )


def split_by_day(table: pa.Table) -> dict[str, pa.Table]:
    """One table per event date, each in seq order."""
    if table.num_rows == 0:
        return {}
    ordered = table.sort_by([("event_date", "ascending"), ("seq", "ascending")])
    parts: dict[str, pa.Table] = {}
    offset = 0
    for entry in pc.value_counts(ordered["event_date"]).to_pylist():
        # value_counts keeps the order of first appearance, which is sorted here
        parts[entry["values"]] = ordered.slice(offset, entry["counts"])
        offset += entry["counts"]
    return parts


def write_day(path: Path, table: pa.Table) -> None:
    """Write a day's file atomically; identical events give identical bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table.combine_chunks(), tmp, compression="zstd", row_group_size=1_000_000)
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
