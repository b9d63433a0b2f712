"""The nightly fraud step, as plain functions the pipeline's assets call: which days to score,
the attempts (with the look-back every layer needs) and the review queue.

The window: on a first run (nothing scored yet) the whole lake; afterwards the days since the
last day scored, that day included (it may have been scored while it was still going on). The
attempts reach back LOOKBACK_DAYS before the window, for the sliding-window features and the
drift layer's history. A lake with no attempts gives an empty frame and an empty queue, never
an error: a merchant that has not redeemed anything yet has nothing to review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from models_ml import fraud_drift, fraud_features
from models_ml.data import DataError, lake_days, load_review_labels
from models_ml.fraud_detect import QUEUE_SCHEMA, Detection, detect, empty_queue
from models_ml.fraud_features import FEATURES, ID_COLUMNS, OUTCOME_COLUMNS
from models_ml.fraud_feedback import apply_reviews

LOOKBACK_DAYS = max(fraud_features.LOOKBACK_DAYS, fraud_drift.LOOKBACK_DAYS)
LABEL_FREE = "label-free"


@dataclass(frozen=True)
class Window:
    first: date
    last: date


def scoring_window(
    home: Path, last_scored: date | None, asked: date | None = None
) -> Window | None:
    """The days to score (`asked`: from that day on, whatever was scored before); None when the
    lake has no events at all."""
    try:
        lake_first, lake_last = lake_days(home / "lake")
    except DataError:
        return None
    first = asked or (lake_first if last_scored is None else last_scored)
    return Window(min(max(lake_first, first), lake_last), lake_last)


def empty_attempts() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {name: pl.String() for name in ID_COLUMNS}
    schema["seq"] = pl.Int64()
    schema["t"] = pl.Int64()
    schema |= {name: pl.Float64() for name in FEATURES}
    schema |= {name: pl.Boolean() for name in OUTCOME_COLUMNS}
    return pl.DataFrame(schema=schema)


def attempt_frame(home: Path, window: Window | None) -> pl.DataFrame:
    """Every attempt from LOOKBACK_DAYS before the window to its end, with its features."""
    if window is None:
        return empty_attempts()
    events = fraud_features.load_fraud_events(
        home / "lake", window.first, window.last, lookback_days=LOOKBACK_DAYS
    )
    try:
        return fraud_features.build_attempt_features(events)
    except DataError:
        # no attempts at all: nothing to score, which is not a failure
        return empty_attempts()


def previous_queue(frame: pl.DataFrame | None) -> pl.DataFrame | None:
    """The last run's queue, if it has today's columns (an older layout is scored afresh)."""
    if frame is None or not set(QUEUE_SCHEMA) <= set(frame.columns):
        return None
    return frame.select(list(QUEUE_SCHEMA)).cast(QUEUE_SCHEMA)  # type: ignore[arg-type]


def review_queue(
    home: Path,
    attempts: pl.DataFrame,
    window: Window | None,
    previous: pl.DataFrame | None,
    model: object | None = None,
    model_version: str | None = None,
) -> tuple[pl.DataFrame, Detection | None]:
    """The queue after this run: every layer over the window, merged with `previous`, with the
    analysts' reviews applied (fraud_feedback), stamped with what scored it."""
    reviews = _reviews(home)
    if window is None or attempts.is_empty():
        queue, detection = previous if previous is not None else empty_queue(), None
    else:
        detection = detect(attempts, window.first.isoformat(), model=model, previous=previous)
        queue = detection.queue
    version = LABEL_FREE if model_version is None else f"{LABEL_FREE}+{model_version}"
    stamped = apply_reviews(queue, reviews).with_columns(
        model_version=pl.lit(version),
        scored_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )
    return stamped, detection


def _reviews(home: Path) -> pl.DataFrame | None:
    try:
        return load_review_labels(home / "lake")
    except DataError:
        return None


def usable_model(model: object) -> bool:
    """A promoted model trained on today's features (an older one is left out until retrained)."""
    from models_ml.fraud import MODEL_FEATURES

    return tuple(getattr(model, "features", ())) == tuple(MODEL_FEATURES)
