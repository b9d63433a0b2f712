"""Nightly scoring with the promoted models: the fraud review queue and the next best offers,
as frames for the pipeline to store in the warehouse's `ml` schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from models_ml.data import lake_days, load_events
from models_ml.registry import ModelCard, Registry

QUEUE_DAYS = 14  # the review queue covers the attempts of the lake's last two weeks
NEXT_BEST_OFFERS = 3


def fraud_attempt_features(home: Path) -> pl.DataFrame:
    """Features of every attempt of the lake's last QUEUE_DAYS days (no model needed)."""
    from models_ml.fraud_features import build_attempt_features, load_fraud_events

    lake = home / "lake"
    lake_first, last = lake_days(lake)
    first = max(lake_first, last - timedelta(days=QUEUE_DAYS - 1))
    return build_attempt_features(load_fraud_events(lake, first, last), first, last)


def fraud_review_queue(home: Path, features: pl.DataFrame) -> tuple[pl.DataFrame, ModelCard]:
    """The attempts' flags, scored by the promoted fraud model and grouped into a queue."""
    from models_ml.fraud import review_queue, score_attempts

    model, card = Registry(home).load("fraud")
    queue = review_queue(model, score_attempts(model, features))
    return _stamped(queue.sort("score", "flag_id", descending=[True, False]), card), card


def next_best_offer_table(home: Path) -> tuple[pl.DataFrame, ModelCard]:
    """Per customer, the NEXT_BEST_OFFERS campaigns offerable at the lake's last event."""
    from models_ml.personalisation import next_best_offers

    model, card = Registry(home).load("personalisation")
    from models_ml.personalisation_features import EVENT_TYPES

    events = load_events(home / "lake", None, lake_days(home / "lake")[1], EVENT_TYPES)
    as_of = datetime.fromisoformat(events["occurred_at"].max().replace("Z", "+00:00"))
    table = next_best_offers(model, events, as_of, top_k=NEXT_BEST_OFFERS)
    return _stamped(table, card), card


def _stamped(frame: pl.DataFrame, card: ModelCard) -> pl.DataFrame:
    return frame.with_columns(
        model_version=pl.lit(card.version),
        scored_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )
