"""Nightly scoring with the promoted models: the fraud review queue and the next best offers,
as frames for the pipeline to store in the warehouse's `ml` schema."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from models_ml.data import lake_days, scan_events
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


def next_best_offer_table(
    home: Path, exclude: Collection[str] = ()
) -> tuple[pl.DataFrame, ModelCard]:
    """Per customer, the NEXT_BEST_OFFERS campaigns offerable at the lake's last event, none of
    those in `exclude` (campaigns found to lose money elsewhere: the marts)."""
    from models_ml.order_cache import cached_orders
    from models_ml.personalisation import check_model, next_best_offers
    from models_ml.personalisation_events import EVENT_TYPES

    model, card = Registry(home).load("personalisation")
    check_model(model)
    lake = home / "lake"
    last_day = lake_days(lake)[1]
    # Lazy: next_best_offers reads only the event types and columns it uses. The moment is the
    # last event personalisation reads, looked for in the last day's partition first.
    events = scan_events(lake).filter(pl.col("event_date") <= last_day.isoformat())
    read = pl.col("event_type").is_in(EVENT_TYPES)
    latest = (
        events.filter(pl.col("event_date") == last_day.isoformat(), read)
        .select(pl.col("occurred_at").max())
        .collect()
        .item()
    )
    if latest is None:
        latest = events.filter(read).select(pl.col("occurred_at").max()).collect().item()
    as_of = datetime.fromisoformat(latest.replace("Z", "+00:00"))
    # The orders come decoded from the cache, which decodes only the days that are new.
    orders = cached_orders(home, last_day)
    table = next_best_offers(
        model, events, as_of, top_k=NEXT_BEST_OFFERS, orders=orders, exclude=exclude
    )
    return _stamped(table, card), card


def _stamped(frame: pl.DataFrame, card: ModelCard) -> pl.DataFrame:
    return frame.with_columns(
        model_version=pl.lit(card.version),
        scored_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )
