"""The models as assets.

Nightly (in `nightly_pipeline`): score with the promoted models into the warehouse's `ml`
schema, which is published with the marts. The first night on a new ledger, with nothing
promoted yet, trains and promotes a first version so the console has something to show.

Weekly (`retrain_models`): train a candidate of each kind on the lake's recent days; a blocking
check compares it with the promoted version, and only a candidate that is not worse is promoted
(data scientists can still promote anything with `promo models promote VERSION --force`).
"""

import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from models_ml import fraud_nightly
from models_ml.data import DataError
from models_ml.registry import ModelCard, Registry
from models_ml.scoring import next_best_offer_table
from models_ml.training import BOOTSTRAP_CUSTOMERS, train_and_register
from pipelines.defs.dbt import warehouse_models
from pipelines.defs.ingest import RAW_EVENTS
from pipelines.resources import PromoHomeResource

FRAUD_FEATURES = dg.AssetKey(["ml", "fraud_attempt_features"])
FRAUD_QUEUE = dg.AssetKey(["ml", "fraud_review_queue"])
NEXT_BEST_OFFERS = dg.AssetKey(["ml", "next_best_offers"])
RETRAIN_GROUP = "retrain"


def write_ml_table(warehouse: Path, name: str, frame: pl.DataFrame | None) -> None:
    """Replace `ml.<name>` in the build warehouse (drop it when there is nothing to score with,
    so the console says so rather than showing a stale table)."""
    with duckdb.connect(str(warehouse)) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS ml")
        if frame is None:
            db.execute(f"DROP TABLE IF EXISTS ml.{name}")
            return
        arrow = frame.to_arrow()  # noqa: F841 - read by name in the SQL below
        db.execute(f"CREATE OR REPLACE TABLE ml.{name} AS SELECT * FROM arrow")


def promoted_or_first(home: Path, kind: str, log: dg.DagsterLogManager) -> ModelCard | None:
    """The promoted model of `kind`; on a ledger that has none, train and promote a first one."""
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
        log.warning(f"no {kind} model promoted and none can be trained yet: {error}")
        return None
    log.info(f"no {kind} model was promoted: trained and promoted a first one, {card.version}")
    return registry.promote(card.version)


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
    config: FraudWindowConfig, promo: PromoHomeResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    try:
        asked = date.fromisoformat(config.score_from) if config.score_from else None
    except ValueError:
        raise dg.Failure(f"score_from: not a date (YYYY-MM-DD): {config.score_from!r}") from None
    window = fraud_nightly.scoring_window(
        promo.paths.home, _last_scored(promo.build_warehouse), asked
    )
    features = fraud_nightly.attempt_frame(promo.paths.home, window)
    with duckdb.connect(str(promo.build_warehouse)) as db:
        db.execute("CREATE SCHEMA IF NOT EXISTS features")
        arrow = features.to_arrow()  # noqa: F841 - read by name in the SQL below
        db.execute("CREATE OR REPLACE TABLE features.fraud_attempts AS SELECT * FROM arrow")
        db.execute("CREATE SCHEMA IF NOT EXISTS ml")
        db.execute(
            "CREATE TABLE IF NOT EXISTS ml.fraud_scoring_window (scored_from VARCHAR, scored_to VARCHAR)"
        )
        db.execute("DELETE FROM ml.fraud_scoring_window")
        if window is not None:
            db.execute(
                "INSERT INTO ml.fraud_scoring_window VALUES (?, ?)",
                [window.first.isoformat(), window.last.isoformat()],
            )
    return dg.MaterializeResult(
        metadata={
            "attempts": features.height,
            "window": dg.MetadataValue.json(
                None if window is None else {"from": str(window.first), "to": str(window.last)}
            ),
            "attempts_by_kind": dg.MetadataValue.json(
                dict(features.group_by("event_type").len().sort("event_type").iter_rows())
            ),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


@dg.asset(
    key=FRAUD_QUEUE,
    deps=[FRAUD_FEATURES],
    group_name="ml",
    kinds={"lightgbm", "duckdb"},
    description=(
        "Cases to review, one per burst or drift, from the label-free layers (rules, anomaly "
        "forests, drift tests) and the promoted fraud model when there is one."
    ),
)
def fraud_review_queue_asset(
    context: dg.AssetExecutionContext, promo: PromoHomeResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    home, warehouse = promo.paths.home, promo.build_warehouse
    window_rows = _read_table(warehouse, "ml.fraud_scoring_window")
    window = (
        None
        if window_rows is None or window_rows.is_empty()
        else fraud_nightly.Window(
            date.fromisoformat(window_rows["scored_from"][0]),
            date.fromisoformat(window_rows["scored_to"][0]),
        )
    )
    attempts = _read_table(warehouse, "features.fraud_attempts")
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
    return dg.MaterializeResult(
        metadata={
            "rows": queue.height,
            "waiting": int((~queue["suppressed"]).sum()) if queue.height else 0,
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
    )


def _supervised_model(home: Path, log: dg.DagsterLogManager) -> tuple[object | None, str | None]:
    """The promoted fraud model (trained first when labels allow), if it fits today's features;
    the label-free layers run whatever this returns."""
    card = promoted_or_first(home, "fraud", log)
    if card is None:
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
    started = time.perf_counter()
    home = promo.paths.home
    card = promoted_or_first(home, "personalisation", context.log)
    if card is None:
        write_ml_table(promo.build_warehouse, "next_best_offers", None)
        return dg.MaterializeResult(metadata={"rows": 0, "model_version": "none"})
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
    metadata["customers"] = table["customer_id"].n_unique() if table.height else 0
    return dg.MaterializeResult(metadata=metadata)


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
    name="weekly_retrain", job=retrain_models, cron_schedule="30 3 * * 0"
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
