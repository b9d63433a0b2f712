"""The project's own generic dbt tests catch what they say they catch (no dbt packages here:
they are written in dbt_project/tests/generic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from warehouse_helpers import build_warehouse, run_dbt

from pipelines.paths import PipelinePaths
from redemption_core.simulate import SimulationConfig, simulate


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


def _marks(home: Path) -> dict[str, tuple[int, int]]:
    with duckdb.connect(str(PipelinePaths(home).build_warehouse), read_only=True) as db:
        rows = db.execute(
            "select model, high_water, row_count from incremental_state.unique_marks"
        ).fetchall()
    return {model: (high_water, count) for model, high_water, count in rows}


def _execute(home: Path, sql: str) -> None:
    with duckdb.connect(str(PipelinePaths(home).build_warehouse)) as db:
        db.execute(sql)


ORDER_LINES = "intermediate.int_order_lines_recorded"
ORDER_LINES_TEST = "test_name:unique_appended,int_order_lines_recorded"


def test_a_passing_unique_appended_test_records_how_far_it_has_checked(home: Path) -> None:
    with duckdb.connect(str(PipelinePaths(home).build_warehouse), read_only=True) as db:
        expected = {
            table: db.execute(f"select max(event_seq), count(*) from {schema}.{table}").fetchone()
            for schema, table in [
                ("marts", "fct_ledger_timeline"),
                ("intermediate", "int_order_lines_recorded"),
                ("intermediate", "int_offers_decided"),
                ("intermediate", "int_delivery_outcomes_recorded"),
            ]
        }
    assert _marks(home) == expected


def test_unique_appended_checks_new_rows_against_the_old_ones_and_each_other(home: Path) -> None:
    """A new line (seq above the mark) repeating an old line's key fails, and so do two new
    lines sharing a key; a failing test leaves the mark where it was."""
    assert dbt_test(home, ORDER_LINES_TEST).returncode == 0
    before = _marks(home)
    # the test looked only at lines above the mark
    (compiled,) = (home / "dbt_target" / "compiled").rglob(
        "unique_appended_int_order_lines_recorded_order_line_id.sql"
    )
    assert f"where event_seq > {before['int_order_lines_recorded'][0]}" in compiled.read_text()
    old_line = f"(select * from {ORDER_LINES} order by event_seq limit 1)"
    new_seq = f"(select max(event_seq) + 1 from {ORDER_LINES})"
    _execute(
        home, f"insert into {ORDER_LINES} select * replace ({new_seq} as event_seq) from {old_line}"
    )
    try:
        failed = dbt_test(home, ORDER_LINES_TEST)
        assert failed.returncode != 0
        assert "Got 1 result" in failed.stdout, failed.stdout[-3000:]
        assert _marks(home) == before
    finally:
        _execute(
            home,
            f"delete from {ORDER_LINES} where event_seq > {before['int_order_lines_recorded'][0]}",
        )

    twice = f"select * replace ('new:1' as order_line_id, {new_seq} as event_seq) from {old_line}"
    _execute(home, f"insert into {ORDER_LINES} {twice}")
    _execute(home, f"insert into {ORDER_LINES} {twice}")
    try:
        assert dbt_test(home, ORDER_LINES_TEST).returncode != 0
    finally:
        _execute(
            home,
            f"delete from {ORDER_LINES} where event_seq > {before['int_order_lines_recorded'][0]}",
        )
    assert dbt_test(home, ORDER_LINES_TEST).returncode == 0


def test_a_value_changed_below_the_mark_makes_unique_appended_check_the_whole_table(
    home: Path,
) -> None:
    """Rows below the mark as many as before, but one now repeats another's key: the sum of
    the key's hashes tells that they are not the rows that were found unique."""
    assert dbt_test(home, ORDER_LINES_TEST).returncode == 0
    with duckdb.connect(str(PipelinePaths(home).build_warehouse)) as db:
        (first, _), (second, row) = db.execute(
            f"select order_line_id, rowid from {ORDER_LINES} order by event_seq, order_line_id "
            "limit 2"
        ).fetchall()
        db.execute(f"update {ORDER_LINES} set order_line_id = ? where rowid = ?", [first, row])
    try:
        assert dbt_test(home, ORDER_LINES_TEST).returncode != 0
    finally:
        with duckdb.connect(str(PipelinePaths(home).build_warehouse)) as db:
            db.execute(f"update {ORDER_LINES} set order_line_id = ? where rowid = ?", [second, row])
    assert dbt_test(home, ORDER_LINES_TEST).returncode == 0


def test_a_row_slipped_in_below_the_mark_makes_unique_appended_check_the_whole_table(
    home: Path,
) -> None:
    """The timeline's key is its seq: a second row for an old seq lies below the mark, where
    only the row count tells that the checked rows changed."""
    select = "test_name:unique_appended,fct_ledger_timeline"
    assert dbt_test(home, select).returncode == 0
    _execute(
        home,
        "insert into marts.fct_ledger_timeline "
        "select * from marts.fct_ledger_timeline order by event_seq limit 1",
    )
    try:
        assert dbt_test(home, select).returncode != 0
    finally:
        _execute(
            home,
            "delete from marts.fct_ledger_timeline where rowid = "
            "(select max(rowid) from marts.fct_ledger_timeline)",
        )
