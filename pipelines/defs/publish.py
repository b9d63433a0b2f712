"""The finished warehouse the console reads, swapped in only after every check passed."""

import dagster as dg

from pipelines.defs.alerts import PUBLISH_EVERY, PUBLISH_LATE_AFTER, PUBLISHED
from pipelines.defs.dbt import warehouse_models
from pipelines.defs.ingest import RAW_EVENTS
from pipelines.defs.ml import FRAUD_QUEUE, NEXT_BEST_OFFERS
from pipelines.publish import publish_warehouse
from pipelines.resources import PromoHomeResource


@dg.asset(
    key=PUBLISHED,
    deps=[*warehouse_models.keys, RAW_EVENTS, FRAUD_QUEUE, NEXT_BEST_OFFERS],
    group_name="publish",
    kinds={"duckdb"},
    description="published.duckdb: the marts and model scores, replaced atomically; what the console reads.",
    # Shown in the Dagster UI (freshness: enabled in dagster.yaml); the lateness sensor
    # (pipelines/defs/alerts.py) tells the operators over the same window.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=PUBLISH_LATE_AFTER, warn_window=PUBLISH_EVERY
    ),
)
def published_warehouse(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    info = {
        "run_id": context.run.run_id,
        # what the console's System health judges the publish's age by
        "late_after_hours": PUBLISH_LATE_AFTER.total_seconds() / 3600,
    }
    result = publish_warehouse(promo.build_warehouse, promo.published_warehouse, info)
    return dg.MaterializeResult(
        metadata={
            "path": str(result.path),
            "tables": len(result.tables),
            "bytes": result.bytes,
            "rows": dg.MetadataValue.json(result.tables),
            # append-only tables that got only their new rows (the rest were copied whole)
            "appended_rows": dg.MetadataValue.json(result.appended),
        }
    )


defs = dg.Definitions(assets=[published_warehouse])
