"""Reading what the models learn from: ledger events from the lake, the simulator's ground truth
and analysts' review decisions, as Polars frames. Everything here is read as data: models_ml
imports nothing else of ours.

Paths are derived once from PROMO_HOME by the caller (`LakePaths`), never read at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

# The lake's columns (pipelines/ledger_extract.py LAKE_SCHEMA), all text but seq.
EVENT_COLUMNS = (
    "seq", "event_id", "event_type", "occurred_at", "recorded_at", "campaign_id", "voucher_id",
    "customer_id", "order_id", "channel", "redemption_id", "idempotency_key", "device_hash",
    "ip_hash", "payment_hash", "store_id", "staff_id", "sales_channel", "payload", "event_date",
)  # fmt: skip
LAKE_SCHEMA = {name: (pl.Int64 if name == "seq" else pl.String) for name in EVENT_COLUMNS}
REVIEW_COLUMNS = ("flag_id", "entity_type", "entity_id", "decision", "reviewer", "reviewed_at")


class DataError(ValueError):
    """Input the models cannot work with; the message names what is wrong."""


@dataclass(frozen=True)
class LakePaths:
    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def events(self) -> Path:
        return self.home / "lake" / "events"

    @property
    def ground_truth(self) -> Path:
        return self.home / "simulation" / "ground_truth.jsonl"


def _events_dir(lake_dir: Path) -> Path:
    # Accept the lake root (…/lake) or its events folder (…/lake/events).
    return lake_dir / "events" if (lake_dir / "events").is_dir() else lake_dir


def scan_events(lake_dir: Path) -> pl.LazyFrame:
    """A lazy scan of every day in the lake (Hive layout event_date=YYYY-MM-DD)."""
    folder = _events_dir(lake_dir)
    if not any(folder.glob("event_date=*/*.parquet")):
        raise DataError(f"no events in the lake at {folder}: run the extract first")
    return pl.scan_parquet(
        folder / "event_date=*" / "*.parquet",
        hive_partitioning=True,
        hive_schema={"event_date": pl.String},
        schema={k: v for k, v in LAKE_SCHEMA.items() if k != "event_date"},
    )


def lake_days(lake_dir: Path) -> tuple[date, date]:
    """The first and last event date in the lake."""
    days = sorted(p.name.split("=", 1)[1] for p in _events_dir(lake_dir).glob("event_date=*"))
    if not days:
        raise DataError(f"no events in the lake at {_events_dir(lake_dir)}: run the extract first")
    return date.fromisoformat(days[0]), date.fromisoformat(days[-1])


def load_events(
    lake_dir: Path,
    first: date | None,
    last: date,
    event_types: tuple[str, ...] | None = None,
) -> pl.DataFrame:
    """Events with first <= event_date <= last (first None: from the beginning), in seq order.

    The filter is pushed into the scan, so only the partitions (and, with `event_types`, the
    rows) asked for are read."""
    if first is not None and first > last:
        raise DataError(f"empty window: from {first} is after to {last}")
    frame = scan_events(lake_dir).filter(pl.col("event_date") <= last.isoformat())
    if first is not None:
        frame = frame.filter(pl.col("event_date") >= first.isoformat())
    if event_types is not None:
        frame = frame.filter(pl.col("event_type").is_in(list(event_types)))
    return frame.sort("seq").collect()


def check_columns(frame: pl.DataFrame, needed: tuple[str, ...] | list[str], what: str) -> None:
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise DataError(f"{what} is missing columns: {', '.join(missing)}")


def load_ground_truth(path: Path) -> list[dict]:
    """The simulator's fraud cases (empty when the file does not exist: a real ledger)."""
    if not path.exists():
        return []
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        missing = [k for k in ("case_id", "pattern", "started_at", "ended_at") if k not in case]
        if missing:
            raise DataError(f"{path}:{number}: case lacks {', '.join(missing)}")
        cases.append(case)
    return cases


def review_labels(events: pl.DataFrame) -> pl.DataFrame:
    """The latest `fraud_review_recorded` decision per flag_id (by seq), one row per flag."""
    reviews = events.filter(pl.col("event_type") == "fraud_review_recorded")
    fields = {
        name: pl.col("payload").str.json_path_match(f"$.{name}")
        for name in ("flag_id", "entity_type", "entity_id", "decision", "reviewer")
    }
    return (
        reviews.sort("seq")
        .select(**fields, reviewed_at=pl.col("occurred_at"))
        .filter(pl.col("flag_id").is_not_null())
        .unique("flag_id", keep="last", maintain_order=True)
        .sort("flag_id")
    )


def load_review_labels(lake_dir: Path) -> pl.DataFrame:
    """Review decisions recorded anywhere in the lake (a decision is a label whenever it was made)."""
    reviews = (
        scan_events(lake_dir)
        .filter(pl.col("event_type") == "fraud_review_recorded")
        .sort("seq")
        .collect()
    )
    return review_labels(reviews)
