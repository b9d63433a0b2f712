"""Dagster resources: where state lives, read from the environment when a run starts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.paths import PipelinePaths


class PromoHomeResource(dg.ConfigurableResource):
    """PROMO_HOME (ledger, lake, models) and PROMO_WAREHOUSE (the warehouse dbt builds into, the
    one variable Dagster and dbt share)."""

    home: str
    warehouse: str

    @property
    def paths(self) -> PipelinePaths:
        return PipelinePaths(Path(self.home))

    @property
    def build_warehouse(self) -> Path:
        return Path(self.warehouse)

    @property
    def published_warehouse(self) -> Path:
        return self.build_warehouse.with_name("published.duckdb")


def promo_home_resource() -> PromoHomeResource:
    return PromoHomeResource(home=dg.EnvVar("PROMO_HOME"), warehouse=dg.EnvVar("PROMO_WAREHOUSE"))
