"""The lake's orders with their JSON payloads decoded, kept per lake day under
$PROMO_HOME/ml_cache/orders for next best offers.

Customer features read every order of a customer's history (amount, item categories): at 10M
events that is 4M JSON payloads, seconds of decoding every night for days that never change.
Each lake day is decoded once and kept as Parquet; a day is decoded again when its partition
file changes (size or modification time: the extract rewrites a day it adds events to), and a
day that left the lake is dropped. The cache is derived data only: deleting it is always safe.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl

from models_ml.data import LAKE_SCHEMA, _events_dir
from models_ml.personalisation_events import decode_orders

# Part of every file name: bump it when decode_orders' output changes, so old files are redone.
FORMAT = 2
_PATH = "source_file"


def cache_dir(home: Path) -> Path:
    return home / "ml_cache" / "orders"


def cached_orders(home: Path, last: date) -> pl.LazyFrame:
    """The decoded orders (see `decode_orders`) of every lake day up to `last`, decoding only the
    days that are new or changed since the last call."""
    folder = cache_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path] = {}  # cache file name -> lake file, for the days up to `last`
    for day_dir in sorted(_events_dir(home / "lake").glob("event_date=*")):
        day = day_dir.name.split("=", 1)[1]
        if day > last.isoformat():
            continue
        for source in sorted(day_dir.glob("*.parquet")):
            stat = source.stat()
            name = f"{day}.{source.stem}.{stat.st_size}-{stat.st_mtime_ns}.v{FORMAT}.parquet"
            wanted[name] = source
    stale = {name: source for name, source in wanted.items() if not (folder / name).exists()}
    if stale:
        _decode(folder, stale)
    for old in [*folder.glob("*.parquet"), *folder.glob(".*.tmp")]:  # and a crash's leftovers
        if old.name not in wanted:
            old.unlink(missing_ok=True)
    schema = _schema()
    if not wanted:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet([folder / name for name in sorted(wanted)], schema=schema)


def _decode(folder: Path, stale: dict[str, Path]) -> None:
    """Decode the stale days in one scan (one file per day comes out), each written atomically."""
    by_source = {str(source): name for name, source in stale.items()}
    scan = pl.scan_parquet(
        list(stale.values()),
        schema={k: v for k, v in LAKE_SCHEMA.items() if k != "event_date"},
        hive_partitioning=False,
        extra_columns="ignore",  # the day, when the files hold it too: it is in the path
        include_file_paths=_PATH,
    )
    decoded = decode_orders(scan, keep=(_PATH,)).collect()
    parts = decoded.partition_by(_PATH, as_dict=True, include_key=False)
    empty = decoded.drop(_PATH).clear()
    for source, name in by_source.items():
        part = parts.get((source,), empty)
        staging = folder / f".{name}.tmp"
        part.write_parquet(staging)
        os.replace(staging, folder / name)  # a day appears whole or not at all


def _schema() -> pl.Schema:
    probe = pl.LazyFrame(schema={k: v for k, v in LAKE_SCHEMA.items() if k != "event_date"})
    return decode_orders(probe).collect_schema()
