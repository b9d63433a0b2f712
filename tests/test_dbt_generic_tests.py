"""The project's own generic dbt tests catch what they say they catch (no dbt packages here:
they are written in dbt_project/tests/generic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from warehouse_helpers import build_warehouse, run_dbt

from pipelines.paths import PipelinePaths
from redemption_core.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("generic-tests")
    simulate(home, SimulationConfig(customers=60, days=6, seed=5), progress=None)
    build_warehouse(home)
    return home


def dbt_test(home: Path, select: str) -> subprocess.CompletedProcess:
    return run_dbt(home, PipelinePaths(home).build_warehouse, "test", "--select", select)


def test_not_null_columns_passes_on_a_clean_build_and_names_each_column_with_nulls(
    home: Path,
) -> None:
    select = "test_name:not_null_columns,fct_redemptions"
    assert dbt_test(home, select).returncode == 0

    with duckdb.connect(str(PipelinePaths(home).build_warehouse)) as db:
        db.execute(
            "update marts.fct_redemptions set voucher_id = null, campaign_id = null "
            "where redemption_id = (select min(redemption_id) from marts.fct_redemptions)"
        )
    failed = dbt_test(home, select)

    assert failed.returncode != 0
    # one failing row per column that holds nulls
    assert "Got 2 results" in failed.stdout, failed.stdout[-3000:]


def test_unique_combination_fails_on_a_duplicated_key(home: Path) -> None:
    select = "test_name:unique_combination,fct_campaign_funnel"
    assert dbt_test(home, select).returncode == 0

    with duckdb.connect(str(PipelinePaths(home).build_warehouse)) as db:
        db.execute(
            "insert into marts.fct_campaign_funnel select * from marts.fct_campaign_funnel limit 1"
        )

    assert dbt_test(home, select).returncode != 0
