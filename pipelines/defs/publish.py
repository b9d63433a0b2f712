"""The finished warehouse the console reads, swapped in only after every check passed."""

import dagster as dg

from pipelines.defs.dbt import warehouse_models
from pipelines.defs.ingest import RAW_EVENTS
from pipelines.defs.ml import FRAUD_QUEUE, NEXT_BEST_OFFERS
from pipelines.publish import publish_warehouse
from pipelines.resources import PromoHomeResource

PUBLISHED = dg.AssetKey(["published", "warehouse"])


@dg.asset(
    key=PUBLISHED,
    deps=[*warehouse_models.keys, RAW_EVENTS, FRAUD_QUEUE, NEXT_BEST_OFFERS],
    group_name="publish",
    kinds={"duckdb"},
    description="published.duckdb: the marts and model scores, replaced atomically; what the console reads.",
)
def published_warehouse(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    result = publish_warehouse(
        promo.build_warehouse, promo.published_warehouse, {"run_id": context.run.run_id}
    )
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
