"""Ledger → lake → warehouse raw layer, as a daily-partitioned asset.

Every run merges all events past the watermark into their own days (late events included);
the partitions a run is for are re-read from the ledger, which is what a backfill does.
"""

import time
import warnings
from datetime import UTC, datetime

import dagster as dg

from pipelines.ledger_extract import Lake, ledger_high_water, load_raw, sync_lake
from pipelines.partitions import EARLIEST_DAY
from pipelines.resources import PromoHomeResource

RAW_EVENTS = dg.AssetKey(["raw", "ledger_events"])

# From the earliest day any ledger may hold (an imported history can start in 1990);
# end_offset=1 includes today, so the growth sensor can run for the day in progress.
daily = dg.DailyPartitionsDefinition(start_date=EARLIEST_DAY.isoformat(), end_offset=1)

# A backfill is one run over its whole range (backfill_policy, still "beta" in this Dagster):
# chosen on purpose, so its warning on every load of the code location would only alarm the
# people running `make demo` or `make pipeline`.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)


@dg.asset(
    key=RAW_EVENTS,
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    kinds={"sqlite", "parquet", "duckdb"},
    description="Ledger events in the lake (Parquet by event date) and the warehouse's raw layer.",
)
def raw_ledger_events(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    paths = promo.paths
    if not paths.ledger.exists():
        raise dg.Failure(
            f"no ledger at {paths.ledger}: run `promo simulate` or `promo import` first"
        )
    lake = Lake(paths.lake)
    high_water = ledger_high_water(paths.ledger)
    result = sync_lake(paths.ledger, lake, rebuild_days=context.partition_keys)
    rows = load_raw(promo.build_warehouse, lake, result, high_water, datetime.now(UTC))
    return dg.MaterializeResult(
        metadata={
            "new_events": result.new_events,
            "late_events": result.late_events,
            "watermark_before": result.watermark_before,
            "watermark_after": result.watermark_after,
            "days_written": len(result.days_written),
            "raw_rows": rows,
            "lake_events": result.lake_events,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


defs = dg.Definitions(assets=[raw_ledger_events])
