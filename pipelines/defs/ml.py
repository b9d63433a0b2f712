"""The models as assets.

Nightly (in `nightly_pipeline`): score with the promoted models into the warehouse's `ml`
schema, which is published with the marts. The first night on a new ledger, with nothing
promoted yet, trains and promotes a first version so the console has something to show. A model
step with nothing to work with (no attempts, no model and no labels to train one) or one that
fails leaves its table out and records why in `status.pipeline_steps`; it never holds back the
marts.

Weekly (`retrain_models`): train a candidate of each kind on the lake's recent days, which
decides the promotion gate against the promoted version (models_ml/promotion_gate.py: the
interval of the difference in the primary metric, cases resampled, against a tolerance set in
the candidate's run config); a blocking check reports the decision, and only a candidate the
gate says PROMOTE to is promoted: a refused one fails the check (ERROR), an undecided one warns
(WARN) and the promoted version stays (data scientists can still promote anything with `promo
models promote VERSION --force`).
"""

import time
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from models_ml import fraud_nightly
from models_ml.data import DataError
from models_ml.promotion_gate import (
    DEFAULT_MIN_CASES,
    DEFAULT_TOLERANCE,
    PROMOTE,
    REFUSE,
    GateSettings,
)
from models_ml.registry import ModelCard, Registry
from models_ml.scoring import next_best_offer_table
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


def _read_table(warehouse: Path, name: str) -> pl.DataFrame | None:
    """`ml.<name>` or `features.<name>` of the build warehouse, None when it does not exist."""
    schema, table = name.split(".")
    with duckdb.connect(str(warehouse), read_only=True) as db:
        found = db.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        if not found[0][0]:
            return None
        return pl.from_arrow(db.sql(f"SELECT * FROM {name}").to_arrow_table())  # type: ignore[return-value]


def _last_scored(warehouse: Path) -> date | None:
    """The last day the previous run scored (ml.fraud_scoring_runs), None on a first run or
    when the queue it left is not there to build on."""
    runs = _read_table(warehouse, "ml.fraud_scoring_runs")
    queue = fraud_nightly.previous_queue(_read_table(warehouse, "ml.fraud_review_queue"))
    if runs is None or runs.is_empty() or queue is None:
        return None
    return date.fromisoformat(runs["scored_to"].max())


class FraudWindowConfig(dg.Config):
    """Which days the fraud step scores. Empty (the default): the whole lake on a first run,
    then the days since the last run; a date: from that day to the lake's last (a re-score)."""

    score_from: str = ""


@dg.asset(
    key=FRAUD_FEATURES,
    deps=[RAW_EVENTS, *warehouse_models.keys],
    group_name="ml",
    kinds={"polars", "duckdb"},
    description=(
        "Per attempt of the days to score (the whole lake on a first run, then the days since "
        "the last run) and of the look-back before them: its features (features.fraud_attempts)."
    ),
)
def fraud_attempt_features_asset(
    context: dg.AssetExecutionContext, config: FraudWindowConfig, promo: PromoHomeResource
) -> dg.MaterializeResult:
    try:
        asked = date.fromisoformat(config.score_from) if config.score_from else None
    except ValueError:
        raise dg.Failure(f"score_from: not a date (YYYY-MM-DD): {config.score_from!r}") from None

    def body() -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        window = fraud_nightly.scoring_window(
            promo.paths.home, _last_scored(promo.build_warehouse), asked
        )
        features = fraud_nightly.attempt_frame(promo.paths.home, window)
        with duckdb.connect(str(promo.build_warehouse)) as db:
            db.execute("CREATE SCHEMA IF NOT EXISTS features")
            arrow = features.to_arrow()  # noqa: F841 - read by name in the SQL below
            db.execute(f"CREATE OR REPLACE TABLE {FEATURES_TABLE} AS SELECT * FROM arrow")
            db.execute("CREATE SCHEMA IF NOT EXISTS ml")
            db.execute(
                "CREATE TABLE IF NOT EXISTS ml.fraud_scoring_window "
                "(scored_from VARCHAR, scored_to VARCHAR)"
            )
            db.execute("DELETE FROM ml.fraud_scoring_window")
            if window is not None:
                db.execute(
                    "INSERT INTO ml.fraud_scoring_window VALUES (?, ?)",
                    [window.first.isoformat(), window.last.isoformat()],
                )
        metadata = {
            "attempts": features.height,
            "window": dg.MetadataValue.json(
                None if window is None else {"from": str(window.first), "to": str(window.last)}
            ),
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
    description=(
        "Cases from the label-free layers (rules, anomaly forests, drift tests) and, where labels "
        "allowed one, the promoted supervised model, one per case, with the evidence."
    ),
)
def fraud_review_queue_asset(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    def body() -> tuple[int, str, dict[str, Any]]:
        started = time.perf_counter()
        home, warehouse = promo.paths.home, promo.build_warehouse
        features_status = step_status(warehouse, FRAUD_FEATURES_STEP)
        if features_status is None or features_status.state is not StepState.SUCCEEDED:
            why = features_status.detail if features_status else "the step has not run"
            raise Unavailable(f"no attempt features to score: {why}")
        window_rows = _read_table(warehouse, "ml.fraud_scoring_window")
        window = (
            None
            if window_rows is None or window_rows.is_empty()
            else fraud_nightly.Window(
                date.fromisoformat(window_rows["scored_from"][0]),
                date.fromisoformat(window_rows["scored_to"][0]),
            )
        )
        attempts = _read_table(warehouse, FEATURES_TABLE)
        previous = fraud_nightly.previous_queue(_read_table(warehouse, "ml.fraud_review_queue"))
        model, version = _supervised_model(home, context.log)
        queue, detection = fraud_nightly.review_queue(
            home,
            attempts if attempts is not None else fraud_nightly.empty_attempts(),
            window,
            previous,
            model,
            version,
        )
        write_ml_table(warehouse, "fraud_review_queue", queue)
        with duckdb.connect(str(warehouse)) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ml.fraud_scoring_runs (scored_from VARCHAR, "
                "scored_to VARCHAR, scored_at TIMESTAMP, attempts BIGINT, flags BIGINT, "
                "model_version VARCHAR)"
            )
            if window is not None:
                db.execute(
                    "INSERT INTO ml.fraud_scoring_runs VALUES (?, ?, now(), ?, ?, ?)",
                    [
                        window.first.isoformat(),
                        window.last.isoformat(),
                        0 if attempts is None else attempts.height,
                        queue.height,
                        version or fraud_nightly.LABEL_FREE,
                    ],
                )
        signals = detection.signals if detection is not None else pl.DataFrame()
        waiting = int((~queue["suppressed"]).sum()) if queue.height else 0
        metadata = {
            "rows": queue.height,
            "waiting": waiting,
            "model_version": version or fraud_nightly.LABEL_FREE,
            "window": dg.MetadataValue.json(
                None if window is None else {"from": str(window.first), "to": str(window.last)}
            ),
            "flags_by_entity": dg.MetadataValue.json(
                dict(queue.group_by("entity_type").len().sort("entity_type").iter_rows())
            ),
            "signals_by_layer": dg.MetadataValue.json(
                dict(signals.group_by("layer").len().sort("layer").iter_rows())
                if signals.height
                else {}
            ),
            "seconds": round(time.perf_counter() - started, 3),
        }
        scorer = version or fraud_nightly.LABEL_FREE
        return (
            queue.height,
            f"{queue.height} cases ({waiting} waiting) scored by {scorer}",
            metadata,
        )

    return run_model_step(context, promo, FRAUD_QUEUE_STEP, "ml.fraud_review_queue", body)


def _supervised_model(home: Path, log: dg.DagsterLogManager) -> tuple[object | None, str | None]:
    """The promoted fraud model (trained first when labels allow), if it fits today's features;
    the label-free layers run whatever this returns."""
    try:
        card = promoted_or_first(home, "fraud", log)
    except Unavailable as reason:
        log.info(f"the label-free layers score alone: {reason}")
        return None, None
    model, card = Registry(home).load("fraud")
    if not fraud_nightly.usable_model(model):
        log.warning(
            f"the promoted fraud model {card.version} was trained on other features: "
            "left out of the queue until `promo models train fraud` and a promotion"
        )
        return None, None
    return model, card.version


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


class PromotionGateConfig(dg.Config):
    """The promotion gate's settings for a retrain run (models_ml/promotion_gate.py)."""

    tolerance: float = DEFAULT_TOLERANCE  # promote when the interval's lower end > -tolerance
    min_cases: int = DEFAULT_MIN_CASES  # fewer positive cases held out: undecided


def _candidate_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", f"{kind}_candidate"]),
        deps=[RAW_EVENTS],
        group_name=RETRAIN_GROUP,
        kinds={"lightgbm"},
        description=f"A {kind} model trained on the lake's last 60 days, saved in the registry "
        "with the promotion gate's decision against the promoted version, not promoted.",
    )
    def candidate(
        context: dg.AssetExecutionContext, promo: PromoHomeResource, config: PromotionGateConfig
    ) -> dg.MaterializeResult:
        started = time.perf_counter()
        settings = GateSettings(tolerance=config.tolerance, min_cases=config.min_cases)
        card = train_and_register(promo.paths.home, kind, gate=settings)
        gate = card.promotion_gate or {}
        context.log.info(
            f"{card.version}: promotion gate {gate.get('decision')}: {gate.get('reason')}"
        )
        return dg.MaterializeResult(
            metadata={
                "version": card.version,
                "training_window": dg.MetadataValue.json(card.training_window),
                "metrics_window": dg.MetadataValue.json(card.metrics_window),
                "metrics": dg.MetadataValue.json(card.metrics),
                card.primary_metric: card.metrics[card.primary_metric],
                "promotion_gate": dg.MetadataValue.json(gate),
                "data_fingerprint": card.data_fingerprint,
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return candidate


def _gate_check(kind: str, candidate: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=candidate, blocking=True, name=f"{kind}_candidate_not_worse")
    def not_worse(promo: PromoHomeResource) -> dg.AssetCheckResult:
        """The promotion gate, decided when the candidate was trained, says PROMOTE: with 95 %
        confidence its primary metric is not below the promoted version's by more than the
        tolerance. Refused: ERROR (the promotion is skipped); undecided: WARN (kept as is)."""
        latest = Registry(promo.paths.home).list(kind)[-1]
        gate = latest.promotion_gate or {
            "decision": "undecided",
            "reason": "no gate decision on the card",
            "against": None,
        }
        interval = gate.get("interval")
        return dg.AssetCheckResult(
            passed=gate["decision"] == PROMOTE,
            severity=(
                dg.AssetCheckSeverity.ERROR
                if gate["decision"] == REFUSE
                else dg.AssetCheckSeverity.WARN
            ),
            description=f"{latest.version} {gate['decision']}: {gate['reason']}",
            metadata={
                "candidate": latest.version,
                "promoted": gate.get("against") or "none",
                "decision": gate["decision"],
                "interval": dg.MetadataValue.json(interval) if interval else "none",
                "tolerance": gate.get("tolerance", "none"),
                "cases": gate.get("cases", "none"),
            },
        )

    return not_worse


def _promotion_asset(kind: str, candidate: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["ml", f"{kind}_promoted"]),
        deps=[candidate],
        group_name=RETRAIN_GROUP,
        description=f"The {kind} candidate, promoted when the promotion gate says PROMOTE; "
        "otherwise the promoted version stays.",
    )
    def promoted(
        context: dg.AssetExecutionContext, promo: PromoHomeResource
    ) -> dg.MaterializeResult:
        registry = Registry(promo.paths.home)
        latest = registry.list(kind)[-1]
        gate = latest.promotion_gate or {}
        current = registry.promoted(kind)
        if gate.get("decision") != PROMOTE or gate.get("against") != (current and current.version):
            kept = current.version if current else "none"
            context.log.info(f"{latest.version} not promoted, {kept} stays: {gate.get('reason')}")
            return dg.MaterializeResult(
                metadata={"version": kept, "candidate": latest.version, "promoted": False}
            )
        card = registry.promote(latest.version)
        return dg.MaterializeResult(
            metadata={"version": card.version, "candidate": card.version, "promoted": True}
        )

    return promoted


retrain_assets: list[dg.AssetsDefinition] = []
retrain_checks: list[dg.AssetChecksDefinition] = []
for _kind in ("fraud", "personalisation"):
    _candidate = _candidate_asset(_kind)
    retrain_assets += [_candidate, _promotion_asset(_kind, _candidate)]
    retrain_checks.append(_gate_check(_kind, _candidate))

retrain_models = dg.define_asset_job(
    "retrain_models",
    selection=dg.AssetSelection.groups(RETRAIN_GROUP),
    executor_def=dg.in_process_executor,
    description="Train candidates; promote each one the promotion gate finds not worse than the "
    "promoted model (the interval of the difference in its primary metric, within a tolerance).",
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
