"""The Dagster code location: `dagster dev -m pipelines.definitions`."""

from __future__ import annotations

import dagster as dg

from pipelines.defs import alerts, automation, dbt, ingest, ml, monitoring, publish, quality
from pipelines.resources import promo_home_resource

defs = dg.Definitions.merge(
    ingest.defs,
    dbt.defs,
    ml.defs,
    publish.defs,
    quality.defs,
    automation.defs,
    alerts.defs,
    monitoring.defs,
    dg.Definitions(
        resources={
            "promo": promo_home_resource(),
            "dbt": dbt.dbt_resource(),
            "growth": automation.LedgerGrowthConfig(),
        }
    ),
)
