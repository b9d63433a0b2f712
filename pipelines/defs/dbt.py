"""The dbt project as Dagster assets: each model an asset, each dbt test an asset check."""

import importlib.metadata
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from pipelines.dbt_code_state import code_fingerprints, full_refresh_reason, record_fingerprints
from pipelines.dbt_manifest import prepare_manifest
from pipelines.paths import DBT_PROJECT_DIR
from pipelines.resources import PromoHomeResource

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
prepare_manifest(dbt_project)


class PromoDbtTranslator(DagsterDbtTranslator):
    """Keys by layer (`marts/fct_campaign_funnel`), groups by layer."""

    def get_asset_key(self, dbt_resource_props: dict[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: dict[str, Any]) -> str | None:
        return dbt_resource_props["config"].get("schema") or "dbt"


class DbtBuildConfig(dg.Config):
    """`full_refresh` rebuilds the incremental models from the whole raw layer (to repair them);
    otherwise they only take in events they have not seen, unless the code they depend on
    changed since the last build (pipelines/dbt_code_state.py), which rebuilds them too."""

    full_refresh: bool = False


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=PromoDbtTranslator(),
)
def warehouse_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    promo: PromoHomeResource,
    config: DbtBuildConfig,
) -> Iterator[Any]:
    # dbt's run artefacts go under PROMO_HOME, beside the warehouse they describe
    target = promo.paths.home / "dbt_target"
    # Unit tests check the models' logic on fixed inputs: they run in `make test` (every
    # `dbt build` there), not each night, where they would only repeat themselves (~3 s).
    args = ["build", "--exclude-resource-type", "unit_test"]
    manifest = json.loads(dbt_project.manifest_path.read_text())
    code = code_fingerprints(manifest, DBT_PROJECT_DIR / "macros")
    reason = (
        "asked for"
        if config.full_refresh
        else full_refresh_reason(promo.build_warehouse, manifest, code)
    )
    if reason:
        context.log.warning(f"full refresh of the incremental models: {reason}")
        args.append("--full-refresh")
    # dbt works in its own process; this one only waits for its output, so it can import the
    # model libraries the steps after dbt need (LightGBM, scikit-learn: ~3 s) meanwhile
    threading.Thread(target=_import_model_libraries, daemon=True).start()
    yield from dbt.cli(args, context=context, target_path=target).stream()
    # Only a build that succeeded (stream raises otherwise) and built every model vouches for
    # the incremental rows: a subset (one model materialized from the UI) leaves the others
    # as they were, so the next full build compares again.
    if context.selected_asset_keys == warehouse_models.keys:
        record_fingerprints(promo.build_warehouse, code)


def _import_model_libraries() -> None:
    # importing is all this does: a step that imports them sooner waits for the same module lock
    for module in ("models_ml.fraud", "models_ml.personalisation"):
        importlib.import_module(module)


class LocalDbtCliResource(DbtCliResource):
    """dagster-dbt's resource for the dbt installed beside this interpreter, without two costs
    each `dbt build` paid before dbt started (~4 s a run): a `dbt --version` child process to
    learn a version this environment's lock file fixes, and an in-process dbt adapter that only
    serves row-count and column metadata this project does not ask for."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


def dbt_resource() -> DbtCliResource:
    # the dbt beside this interpreter: the venv's, whether or not it is on PATH
    return LocalDbtCliResource(
        project_dir=dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt"))
    )


defs = dg.Definitions(assets=[warehouse_models])
