"""Build a warehouse from a ledger without Dagster: extract, load raw, `dbt build` in-process.
For tests of the dbt models; the Dagster wiring has tests of its own."""

from __future__ import annotations

import os
from pathlib import Path

from dbt.cli.main import dbtRunner

from pipelines.ledger_extract import Lake, load_raw, sync_lake
from pipelines.paths import DBT_PROJECT_DIR, PipelinePaths


def build_warehouse(home: Path, select: str | None = None) -> Path:
    """Extract `home`'s ledger and run `dbt build` (models and their tests) into
    `home/warehouse/build.duckdb`; raises if any model or test fails."""
    paths = PipelinePaths(home)
    lake = Lake(paths.lake)
    result = sync_lake(paths.ledger, lake)
    load_raw(paths.build_warehouse, lake, result.days_written)
    os.environ["PROMO_WAREHOUSE"] = str(paths.build_warehouse)
    os.environ["DO_NOT_TRACK"] = "1"
    args = [
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(home / "dbt_target"),
        "--log-path",
        str(home / "dbt_logs"),
        "--quiet",
    ]
    if select:
        args += ["--select", select]
    run = dbtRunner().invoke(args)
    if not run.success:
        raise AssertionError(f"dbt build failed: {run.exception or run.result}")
    return paths.build_warehouse
