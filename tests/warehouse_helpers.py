"""Build a warehouse from a ledger without Dagster: extract, load raw, `dbt build`.
For tests of the dbt models; the Dagster wiring has tests of its own. dbt runs in a child
process because dbt-duckdb keeps its connection open for the life of the process, and a test
must be able to open the warehouse afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipelines.ledger_extract import Lake, ledger_high_water, load_raw, sync_lake
from pipelines.paths import DBT_PROJECT_DIR, PipelinePaths


def build_warehouse(home: Path, select: str | None = None) -> Path:
    """Extract `home`'s ledger and run `dbt build` (models and their tests) into
    `home/warehouse/build.duckdb`; raises if any model or test fails."""
    paths = PipelinePaths(home)
    lake = Lake(paths.lake)
    result = sync_lake(paths.ledger, lake)
    load_raw(
        paths.build_warehouse, lake, result, ledger_high_water(paths.ledger), datetime.now(UTC)
    )
    args = ["--select", select] if select else []
    return run_dbt_build(home, paths.build_warehouse, *args)


def run_dbt_build(home: Path, warehouse: Path, *args: str) -> Path:
    """`dbt build` of `warehouse` as it is (no extract), with extra `args` such as
    `--full-refresh`; raises if any model or test fails."""
    run = run_dbt(home, warehouse, "build", *args)
    if run.returncode != 0:
        raise AssertionError(f"dbt build failed:\n{run.stdout[-4000:]}")
    return warehouse


def run_dbt(home: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    """dbt with `args` (e.g. `test --select ...`) on `warehouse`, its artefacts under `home`."""
    env = dict(os.environ, PROMO_WAREHOUSE=str(warehouse), DO_NOT_TRACK="1")
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(home / "dbt_target"),
        "--log-path",
        str(home / "dbt_logs"),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True)
