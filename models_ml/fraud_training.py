"""Training a fraud model: fit on the window's earlier days, measure on its later ones, and
the registry card that says how. Apart from fraud.py (the model) and evaluate.py (the
measures), which both need neither this nor each other's callers."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl

from models_ml.data import DataError
from models_ml.evaluate import evaluate_fraud_frame, labels_fingerprint
from models_ml.fraud import (
    ANOMALY_FIRE_PCT,
    FOREST_PARAMS,
    LGB_PARAMS,
    MODEL_FEATURES,
    NUM_BOOST_ROUND,
    OPERATING_THRESHOLD,
    FraudModel,
    fingerprint,
    fit_fraud,
    labelled_frame,
    split_day,
)
from models_ml.fraud_features import FEATURES


def train_fraud(
    events: pl.DataFrame,
    first: date,
    last: date,
    seed: int,
    cases: list[dict],
    reviews: pl.DataFrame | None,
) -> tuple[FraudModel, dict[str, Any]]:
    """Train on [first, holdout start) and measure on the held-out later days; returns the
    model and the registry card fields."""
    labelled = labelled_frame(events, first, last, cases, reviews)
    holdout = split_day(first, last)
    train = labelled.filter(pl.col("event_date") < holdout.isoformat())
    test = labelled.filter(pl.col("event_date") >= holdout.isoformat())
    for part, frame in (("training part", train), ("held-out part", test)):
        if frame.is_empty() or frame["label"].n_unique() < 2:
            raise DataError(
                f"the {part} of {first}..{last} (split at {holdout}) has "
                f"{frame.height} attempts, {int(frame['label'].sum()) if frame.height else 0} fraud: "
                "need both fraud and legitimate attempts; widen the window"
            )
    model = fit_fraud(train, seed)
    metrics = evaluate_fraud_frame(model, test, cases, holdout)
    card = {
        "training_window": {"from": first.isoformat(), "to": last.isoformat()},
        "features": list(MODEL_FEATURES),
        "params": {
            "lightgbm": {**LGB_PARAMS, "num_boost_round": NUM_BOOST_ROUND},
            "isolation_forest": FOREST_PARAMS,
            "operating_threshold": OPERATING_THRESHOLD,
            "anomaly_fire_pct": ANOMALY_FIRE_PCT,
        },
        "seed": seed,
        "metrics": metrics,
        "metrics_window": metrics_window(test, holdout, last, metrics),
        "primary_metric": "pr_auc",
        "data_fingerprint": fingerprint(train.select("event_id", *FEATURES, "label")),
        "extra": {
            "fit_window": {
                "from": first.isoformat(),
                "to": (holdout - timedelta(days=1)).isoformat(),
            },
            "holdout_window": {"from": holdout.isoformat(), "to": last.isoformat()},
            "train_attempts": train.height,
            "train_fraud": int(train["label"].sum()),
            "label_sources": dict(sorted(train.group_by("label_source").len().iter_rows())),
        },
    }
    return model, card


def metrics_window(
    labelled: pl.DataFrame, first: date, last: date, metrics: dict[str, float]
) -> dict[str, Any]:
    """What the card's metrics were measured on: the days, the attempts (rows), the fraud
    attempts and the ground-truth cases among them, and a fingerprint of the labels, by which
    an evaluation of the same window tells whether its labels are still the same."""
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "rows": labelled.height,
        "positives": int(labelled["label"].sum()),
        "cases": int(metrics.get("cases", 0)),
        "labels": labels_fingerprint(labelled),
    }
