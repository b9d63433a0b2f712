"""A change to the code incremental models depend on makes the next build a full refresh."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import duckdb
import pytest

from pipelines.dbt_code_state import (
    code_fingerprints,
    full_refresh_reason,
    incremental_relations,
    record_fingerprints,
)
from pipelines.paths import DBT_PROJECT_DIR


def _model(name: str, materialized: str, checksum: str, schema: str = "marts") -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "alias": name,
        "checksum": {"name": "sha256", "checksum": checksum},
        "config": {"materialized": materialized, "schema": schema, "unique_key": None},
    }


@pytest.fixture
def manifest() -> dict:
    """stg (view) -> int_orders (incremental) -> dim (table); other (table) stands alone."""
    return {
        "nodes": {
            "model.p.stg": _model("stg", "view", "a", schema="staging"),
            "model.p.int_orders": _model("int_orders", "incremental", "b", "intermediate"),
            "model.p.dim": _model("dim", "table", "c"),
            "model.p.other": _model("other", "table", "d"),
            "test.p.unique_dim": {"resource_type": "test", "name": "unique_dim", "config": {}},
        },
        "parent_map": {
            "model.p.stg": ["source.p.ledger.events"],
            "model.p.int_orders": ["model.p.stg"],
            "model.p.dim": ["model.p.int_orders"],
            "model.p.other": [],
            "test.p.unique_dim": ["model.p.dim"],
        },
    }


@pytest.fixture
def macros(tmp_path: Path) -> Path:
    folder = tmp_path / "macros"
    folder.mkdir()
    (folder / "helpers.sql").write_text("{% macro one() %}1{% endmacro %}")
    return folder


def test_the_fingerprints_cover_incremental_models_what_they_read_and_the_macros(
    manifest: dict, macros: Path
) -> None:
    prints = code_fingerprints(manifest, macros)
    assert set(prints) == {"model:stg", "model:int_orders", "macro:helpers.sql"}


@pytest.mark.parametrize(
    "change",
    [
        lambda m, _: m["nodes"]["model.p.int_orders"]["checksum"].update(checksum="b2"),
        lambda m, _: m["nodes"]["model.p.stg"]["checksum"].update(checksum="a2"),
        lambda m, _: m["nodes"]["model.p.int_orders"]["config"].update(unique_key="order_id"),
        lambda _, folder: (folder / "helpers.sql").write_text("{% macro one() %}2{% endmacro %}"),
    ],
    ids=["its-sql", "an-upstream-model", "its-config", "a-macro"],
)
def test_a_change_to_what_an_incremental_model_depends_on_changes_its_fingerprints(
    manifest: dict, macros: Path, change
) -> None:
    before = code_fingerprints(manifest, macros)
    changed = copy.deepcopy(manifest)
    change(changed, macros)
    assert code_fingerprints(changed, macros) != before


def test_a_change_downstream_only_leaves_the_fingerprints_alone(
    manifest: dict, macros: Path
) -> None:
    before = code_fingerprints(manifest, macros)
    manifest["nodes"]["model.p.dim"]["checksum"]["checksum"] = "c2"
    manifest["nodes"]["model.p.other"]["checksum"]["checksum"] = "d2"
    assert code_fingerprints(manifest, macros) == before


def _warehouse_with_incremental_table(path: Path) -> Path:
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE SCHEMA intermediate")
        db.execute("CREATE TABLE intermediate.int_orders AS SELECT 1 AS order_id")
    return path


def test_no_full_refresh_when_no_incremental_model_was_built_yet(
    manifest: dict, macros: Path, tmp_path: Path
) -> None:
    prints = code_fingerprints(manifest, macros)
    assert full_refresh_reason(tmp_path / "missing.duckdb", manifest, prints) is None
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as db:
        db.execute("CREATE TABLE other AS SELECT 1 AS x")
    assert full_refresh_reason(tmp_path / "empty.duckdb", manifest, prints) is None


def test_incremental_tables_without_a_record_are_rebuilt(
    manifest: dict, macros: Path, tmp_path: Path
) -> None:
    warehouse = _warehouse_with_incremental_table(tmp_path / "w.duckdb")
    reason = full_refresh_reason(warehouse, manifest, code_fingerprints(manifest, macros))
    assert reason == "the incremental models were built before their code was recorded"


def test_the_same_code_builds_incrementally_and_changed_code_is_named(
    manifest: dict, macros: Path, tmp_path: Path
) -> None:
    warehouse = _warehouse_with_incremental_table(tmp_path / "w.duckdb")
    record_fingerprints(warehouse, code_fingerprints(manifest, macros))
    assert full_refresh_reason(warehouse, manifest, code_fingerprints(manifest, macros)) is None

    manifest["nodes"]["model.p.stg"]["checksum"]["checksum"] = "a2"
    (macros / "new.sql").write_text("{% macro two() %}2{% endmacro %}")
    reason = full_refresh_reason(warehouse, manifest, code_fingerprints(manifest, macros))
    assert reason == (
        "the incremental models' code changed since the last build: macro:new.sql, model:stg"
    )


def test_the_project_manifest_names_every_incremental_model_and_its_upstream() -> None:
    """On the real project: the typed staging tables, the entity tables and the timeline are
    covered, and so is the view every one of them reads."""
    from pipelines.defs.dbt import dbt_project  # parses the project when its manifest is stale

    manifest = json.loads(dbt_project.manifest_path.read_text())
    prints = code_fingerprints(manifest, DBT_PROJECT_DIR / "macros")
    relations = incremental_relations(manifest)
    assert ("marts", "fct_ledger_timeline") in relations
    assert ("intermediate", "int_orders_recorded") in relations
    assert {f"model:{table}" for _, table in relations} <= set(prints)
    assert "macro:incremental_entities.sql" in prints
    assert "model:fct_campaign_funnel" not in prints  # a table nothing incremental reads
