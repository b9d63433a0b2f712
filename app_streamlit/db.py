"""Read-only access to the published warehouse, for every page of the console.

Each query opens its own read-only DuckDB connection and closes it at once: the nightly publish
swaps `published.duckdb` by renaming a new file over it, and a connection held open would pin
the old file (and its memory) for as long as the console runs. Values reach DuckDB as bound
parameters only, so a filter value can never change the SQL. Results are cached for a few
minutes, keyed on which file is at the path as well, so that a new publish shows at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from redemption_core import promo_home

CACHE_TTL_SECONDS = 300

Params = Mapping[str, Any] | Sequence[Any] | None


class WarehouseMissing(Exception):
    """No published warehouse at the expected path (the pipeline has not published yet)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no published warehouse at {path}")
        self.path = path


class TableMissing(Exception):
    """The published warehouse lacks a table a page reads (an older warehouse, or a new mart)."""

    def __init__(self, table: str) -> None:
        super().__init__(f"the published warehouse has no table {table}")
        self.table = table


class WarehouseUnreadable(Exception):
    """The file is there but DuckDB cannot open it (not a DuckDB file, or damaged)."""


def warehouse_path() -> Path:
    """Where the console reads from; PROMO_HOME is read at each call, never at import."""
    return promo_home() / "warehouse" / "published.duckdb"


def query(sql: str, params: Params = None) -> pd.DataFrame:
    """Run one parameterised SELECT on the published warehouse and return its rows."""
    path = warehouse_path()
    version = _version(path)
    return _cached_query(str(path), version, sql, params)


def table_exists(table: str) -> bool:
    """Whether the published warehouse has `schema.table`; False without a warehouse."""
    schema, _, name = table.rpartition(".")
    try:
        found = query(
            "SELECT count(*) AS n FROM duckdb_tables() "
            "WHERE schema_name = $schema AND table_name = $name",
            {"schema": schema or "main", "name": name},
        )
    except WarehouseMissing:
        return False
    return bool(found["n"].iloc[0])


def _version(path: Path) -> str:
    """Which file is at `path`: a publish renames a new file (a new inode) over the old one."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise WarehouseMissing(path) from None
    return f"{stat.st_ino}:{stat.st_mtime_ns}"


_MISSING_TABLE = re.compile(r'Table with name "?([\w.]+)"? does not exist')


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False, max_entries=512)
def _cached_query(path: str, version: str, sql: str, params: Params) -> pd.DataFrame:
    del version  # part of the cache key only: a new publish changes it
    try:
        connection = duckdb.connect(path, read_only=True)
    except duckdb.IOException as error:
        if not Path(path).exists():
            raise WarehouseMissing(Path(path)) from None
        raise WarehouseUnreadable(str(error)) from error
    try:
        result = connection.execute(sql, params)
        return _whole_numbers(result.df(), result.description)
    except duckdb.CatalogException as error:
        found = _MISSING_TABLE.search(str(error))
        if found is None:
            raise
        raise TableMissing(found.group(1)) from error
    finally:
        connection.close()


# What DuckDB's sum() of integers returns; pandas gets them as float64 ("12.0" in a CSV).
_WIDE_INTEGERS = {"HUGEINT", "UHUGEINT"}


def _whole_numbers(
    frame: pd.DataFrame, description: Sequence[Sequence[Any]] | None
) -> pd.DataFrame:
    """Give sums of counts and minor units their integer type back (nullable: a sum over no
    rows is NULL), so that tables and CSV downloads show 12, not 12.0."""
    for name, type_code, *_ in description or ():
        if str(type_code) in _WIDE_INTEGERS and name in frame:
            frame[name] = frame[name].round().astype("Int64")
    return frame
