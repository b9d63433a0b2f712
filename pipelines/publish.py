"""Publish a finished warehouse for the console.

The console only ever opens `published.duckdb`. A publish copies the marts into a new file beside
it, closes that file (DuckDB checkpoints on close, leaving no WAL), fsyncs it and renames it over
the old one. A rename within a directory is atomic, so a reader sees last night's warehouse or
tonight's, never a half-built one; a reader already connected keeps the old file until it closes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

# marts from dbt; ml from the model assets (fraud review queue, next best offers)
PUBLISHED_SCHEMAS = ("marts", "ml")


@dataclass(frozen=True)
class PublishResult:
    path: Path
    tables: dict[str, int]  # schema.table → rows
    bytes: int


def publish_warehouse(build: Path, published: Path, info: dict[str, object]) -> PublishResult:
    """Copy the build warehouse's published schemas into `published`, atomically."""
    if not build.exists():
        raise FileNotFoundError(f"no build warehouse at {build}: run the pipeline's dbt step first")
    tmp = published.with_name(published.name + ".tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    tables: dict[str, int] = {}
    try:
        with duckdb.connect(str(tmp)) as db:
            db.execute("ATTACH ? AS build (READ_ONLY)", [str(build)])
            found = db.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'build' "
                "AND schema_name IN (SELECT unnest(?)) ORDER BY ALL",
                [list(PUBLISHED_SCHEMAS)],
            ).fetchall()
            if not found:
                raise RuntimeError(
                    f"the build warehouse {build} has no tables in {', '.join(PUBLISHED_SCHEMAS)}"
                )
            for schema in sorted({schema for schema, _ in found}):
                db.execute(f'CREATE SCHEMA "{schema}"')
            for schema, table in found:
                db.execute(
                    f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM build."{schema}"."{table}"'
                )
                (rows,) = db.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
                tables[f"{schema}.{table}"] = int(rows)
            db.execute("CREATE TABLE main.published (published_at TIMESTAMP, info JSON)")
            db.execute(
                "INSERT INTO main.published VALUES (?, ?)",
                [
                    datetime.now(UTC).replace(tzinfo=None),
                    json.dumps(info, sort_keys=True, default=str),
                ],
            )
            db.execute("DETACH build")
        _fsync(tmp)
        os.replace(tmp, published)
    except BaseException:
        # a failed publish leaves the previous warehouse as it was, and nothing beside it
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    _fsync(published.parent)
    return PublishResult(path=published, tables=tables, bytes=published.stat().st_size)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
