"""The models as assets.

Nightly (in `nightly_pipeline`): score with the promoted models into the warehouse's `ml`
schema, which is published with the marts. The first night on a new ledger, with nothing
promoted yet, trains and promotes a first version so the console has something to show. A model
step with nothing to work with (no attempts, no model and no labels to train one) or one that
fails leaves its table out and records why in `status.pipeline_steps`; it never holds back the
marts.

Weekly (`retrain_models`): train a candidate of each kind on the lake's recent days; a blocking
check compares it with the promoted version, and only a candidate that is not worse is promoted
(data scientists can still promote anything with `promo models promote VERSION --force`).
"""

import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from models_ml.data import DataError
from models_ml.registry import ModelCard, Registry
from models_ml.scoring import fraud_attempt_features, fraud_review_queue, next_best_offer_table
from models_ml.training import BOOTSTRAP_CUSTOMERS, train_and_register
from pipelines.defs.automation import schedule_status
from pipelines.defs.dbt import warehouse_models
from pipelines.defs.ingest import RAW_EVENTS
from pipelines.resources import PromoHomeResource
from pipelines.step_status import StepOutcome, StepState, record_step, step_status

FRAUD_FEATURES = dg.AssetKey(["ml", "fraud_attempt_features"])
FRAUD_QUEUE = dg.AssetKey(["ml", "fraud_review_queue"])
NEXT_BEST_OFFERS = dg.AssetKey(["ml", "next_best_offers"])
RETRAIN_GROUP = "retrain"
FEATURES_TABLE = "features.fraud_attempts"
# the steps' names in the status table (pipelines/step_status.py), as the console shows them
FRAUD_FEATURES_STEP = "fraud_attempt_features"
FRAUD_QUEUE_STEP = "fraud_review_queue"
NEXT_BEST_OFFERS_STEP = "next_best_offers"


class Unavailable(Exception):
    """A model step has nothing to work with (no model, no input): not an error."""


def write_ml_table(warehouse: Path, name: str, frame: pl.DataFrame) -> None:
    """Replace `ml.<name>` in the build warehouse."""
    with duckdb.connect(str(warehouse)) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS ml")
        arrow = frame.to_arrow()  # noqa: F841 - read by name in the SQL below
        db.execute(f"CREATE OR REPLACE TABLE ml.{name} AS SELECT * FROM arrow")


def _drop_table(warehouse: Path, table: str) -> None:
    with duckdb.connect(str(warehouse)) as db:
        db.execute(f"DROP TABLE IF EXISTS {table}")


def promoted_or_first(home: Path, kind: str, log: dg.DagsterLogManager) -> ModelCard:
    """The promoted model of `kind`; on a ledger that has none, train and promote a first one.
    Raises Unavailable when there is none and none can be trained yet."""
    registry = Registry(home)
    card = registry.promoted(kind)
    if card is not None:
        return card
    try:
        # A bounded sample of customers for the first personalisation model: it only has to be
        # good enough until the weekly retrain, and the full history costs minutes at 10M events.
        sample = BOOTSTRAP_CUSTOMERS if kind == "personalisation" else None
        card = train_and_register(home, kind, max_customers=sample)
    except (DataError, ValueError) as error:
        raise Unavailable(
            f"no {kind} model promoted and none can be trained yet: {error}"
        ) from None
    log.info(f"no {kind} model was promoted: trained and promoted a first one, {card.version}")
    return registry.promote(card.version)


def run_model_step(
    context: dg.AssetExecutionContext,
    promo: PromoHomeResource,
    step: str,
    table: str,
    body: Callable[[], tuple[int, str, dict[str, Any]]],
) -> dg.MaterializeResult:
    """Run a model step's `body` (which writes `table` and returns its rows, a sentence on what
    it made and its metadata). A step with nothing to work with, or one that fails, leaves no
    `table` and records why in the status table: the marts are published all the same."""
    warehouse = promo.build_warehouse
    metadata: dict[str, Any] = {}
    try:
        rows, detail, metadata = body()
        outcome = StepOutcome(step, StepState.SUCCEEDED, detail, rows)
    except (Unavailable, DataError) as reason:
        _drop_table(warehouse, table)
        context.log.warning(f"{step}: {reason}")
        outcome = StepOutcome(step, StepState.SKIPPED, str(reason))
    except Exception as error:  # any failure of a model step: the marts still go out
        _drop_table(warehouse, table)
        message = f"{type(error).__name__}: {error}"
        context.log.error(f"{step} failed, the marts are published without it: {message}")
        metadata = {"traceback": dg.MetadataValue.text(traceback.format_exc())}
        outcome = StepOutcome(step, StepState.FAILED, message)
    status = record_step(warehouse, outcome, context.run.run_id, datetime.now(UTC))
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "state": str(status.state),
            "detail": status.detail,
            "last_succeeded_at": str(status.last_succeeded_at or "never"),
        }
    )


def _score_metadata(frame: pl.DataFrame, card: ModelCard, started: float) -> dict:
    return {
        "rows": frame.height,
        "model_version": card.version,
        "model_metrics": dg.MetadataValue.json(card.metrics),
        "seconds": round(time.perf_counter() - started, 3),
    }


@dg.asset(
    key=FRAUD_FEATURES,
    deps=[RAW_EVENTS, *warehouse_models.keys],
    group_name="ml",
    kinds={"polars", "duckdb"},
    description="Per attempt of the last 14 days: its features over sliding windows (features.fraud_attempts).",
)
def fraud_attempt_features_asset(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    def body() -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        features = fraud_attempt_features(promo.paths.home)
        with duckdb.connect(str(promo.build_warehouse)) as db:
            db.execute("CREATE SCHEMA IF NOT EXISTS features")
            arrow = features.to_arrow()  # noqa: F841 - read by name in the SQL below
            db.execute(f"CREATE OR REPLACE TABLE {FEATURES_TABLE} AS SELECT * FROM arrow")
        metadata = {
            "attempts": features.height,
            "features": features.width,
            "attempts_by_kind": dg.MetadataValue.json(
                dict(features.group_by("event_type").len().sort("event_type").iter_rows())
            ),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return features.height, f"features of {features.height} attempts", metadata

    return run_model_step(context, promo, FRAUD_FEATURES_STEP, FEATURES_TABLE, body)


@dg.asset(
    key=FRAUD_QUEUE,
    deps=[FRAUD_FEATURES],
    group_name="ml",
    kinds={"lightgbm", "duckdb"},
    description="Flags of the last 14 days ranked by score, with reasons, from the promoted fraud model.",
)
def fraud_review_queue_asset(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    def body() -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        home = promo.paths.home
        features_status = step_status(promo.build_warehouse, FRAUD_FEATURES_STEP)
        if features_status is None or features_status.state is not StepState.SUCCEEDED:
            why = features_status.detail if features_status else "the step has not run"
            raise Unavailable(f"no attempt features to score: {why}")
        promoted_or_first(home, "fraud", context.log)
        with duckdb.connect(str(promo.build_warehouse), read_only=True) as db:
            features = pl.from_arrow(db.sql(f"SELECT * FROM {FEATURES_TABLE}").to_arrow_table())
        queue, card = fraud_review_queue(home, features)
        write_ml_table(promo.build_warehouse, "fraud_review_queue", queue)
        metadata = _score_metadata(queue, card, started)
        metadata["flags_by_entity"] = dg.MetadataValue.json(
            dict(queue.group_by("entity_type").len().sort("entity_type").iter_rows())
        )
        return queue.height, f"{queue.height} flags scored by {card.version}", metadata

    return run_model_step(context, promo, FRAUD_QUEUE_STEP, "ml.fraud_review_queue", body)


@dg.asset(
    key=NEXT_BEST_OFFERS,
    deps=[RAW_EVENTS, *warehouse_models.keys],
    group_name="ml",
    kinds={"lightgbm", "duckdb"},
    description="Per customer, the three campaigns offerable now ranked by propensity and uplift.",
)
def next_best_offers_asset(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    def body() -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        home = promo.paths.home
        promoted_or_first(home, "personalisation", context.log)
        table, card = next_best_offer_table(home)
        write_ml_table(promo.build_warehouse, "next_best_offers", table)
        with duckdb.connect(str(promo.build_warehouse)) as db:
            # the console lists offers by name; the model knows campaigns by id
            db.execute("ALTER TABLE ml.next_best_offers ADD COLUMN campaign_name VARCHAR")
            db.execute(
                "UPDATE ml.next_best_offers AS n SET campaign_name = c.campaign_name "
                "FROM marts.dim_campaigns AS c WHERE c.campaign_id = n.campaign_id"
            )
        metadata = _score_metadata(table, card, started)
        customers = table["customer_id"].n_unique() if table.height else 0
        metadata["customers"] = customers
        detail = f"{table.height} offers for {customers} customers scored by {card.version}"
        return table.height, detail, metadata

    return run_model_step(context, promo, NEXT_BEST_OFFERS_STEP, "ml.next_best_offers", body)


def _candidate_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", f"{kind}_candidate"]),
        deps=[RAW_EVENTS],
        group_name=RETRAIN_GROUP,
        kinds={"lightgbm"},
        description=f"A {kind} model trained on the lake's last 60 days, saved in the registry, not promoted.",
    )
    def candidate(
        context: dg.AssetExecutionContext, promo: PromoHomeResource
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        card = train_and_register(promo.paths.home, kind)
        return dg.MaterializeResult(
            metadata={
                "version": card.version,
                "training_window": dg.MetadataValue.json(card.training_window),
                "metrics": dg.MetadataValue.json(card.metrics),
                card.primary_metric: card.metrics[card.primary_metric],
                "data_fingerprint": card.data_fingerprint,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return candidate


def _not_worse_check(kind: str, candidate: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=candidate, blocking=True, name=f"{kind}_candidate_not_worse")
    def not_worse(promo: PromoHomeResource) -> dg.AssetCheckResult:
        """The candidate's primary metric is at least the promoted version's."""
        registry = Registry(promo.paths.home)
        latest = registry.list(kind)[-1]
        current = registry.promoted(kind)
        mine = latest.metrics[latest.primary_metric]
        theirs = None if current is None else current.metrics.get(latest.primary_metric)
        passed = theirs is None or mine >= theirs
        return dg.AssetCheckResult(
            passed=passed,
            description=(
                f"{latest.version} {latest.primary_metric} {mine:.4f} against "
                + (
                    f"promoted {current.version} {theirs:.4f}"
                    if current and theirs is not None
                    else "nothing promoted"
                )
            ),
            metadata={
                "candidate": latest.version,
                "promoted": current.version if current else "none",
            },
        )

    return not_worse


def _promotion_asset(kind: str, candidate: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", f"{kind}_promoted"]),
        deps=[candidate],
        group_name=RETRAIN_GROUP,
        description=f"The {kind} candidate, promoted: runs only when its not-worse check passed.",
    )
    def promoted(promo: PromoHomeResource) -> dg.MaterializeResult:
        registry = Registry(promo.paths.home)
        card = registry.promote(registry.list(kind)[-1].version)
        return dg.MaterializeResult(metadata={"version": card.version})

    return promoted


retrain_assets: list[dg.AssetsDefinition] = []
retrain_checks: list[dg.AssetChecksDefinition] = []
for _kind in ("fraud", "personalisation"):
    _candidate = _candidate_asset(_kind)
    retrain_assets += [_candidate, _promotion_asset(_kind, _candidate)]
    retrain_checks.append(_not_worse_check(_kind, _candidate))

retrain_models = dg.define_asset_job(
    "retrain_models",
    selection=dg.AssetSelection.groups(RETRAIN_GROUP),
    executor_def=dg.in_process_executor,
    description="Train candidates; promote each one whose metrics are not worse than the promoted model's.",
)
weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_models,
    cron_schedule="30 3 * * 0",
    default_status=schedule_status(),  # running unless PROMO_AUTOMATION=off
)

defs = dg.Definitions(
    assets=[
        fraud_attempt_features_asset,
        fraud_review_queue_asset,
        next_best_offers_asset,
        *retrain_assets,
    ],
    asset_checks=retrain_checks,
    jobs=[retrain_models],
    schedules=[weekly_retrain],
)
