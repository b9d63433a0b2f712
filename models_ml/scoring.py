"""Nightly scoring with the promoted personalisation model: the next best offers, as a frame
for the pipeline to store in the warehouse's `ml` schema (the fraud queue: fraud_nightly.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from models_ml.data import lake_days, scan_events
from models_ml.registry import ModelCard, Registry

NEXT_BEST_OFFERS = 3


def next_best_offer_table(home: Path) -> tuple[pl.DataFrame, ModelCard]:
    """Per customer, the NEXT_BEST_OFFERS campaigns offerable at the lake's last event."""
    from models_ml.order_cache import cached_orders
    from models_ml.personalisation import next_best_offers
    from models_ml.personalisation_features import EVENT_TYPES

    model, card = Registry(home).load("personalisation")
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
    table = next_best_offers(model, events, as_of, top_k=NEXT_BEST_OFFERS, orders=orders)
    return _stamped(table, card), card


def _stamped(frame: pl.DataFrame, card: ModelCard) -> pl.DataFrame:
    return frame.with_columns(
        model_version=pl.lit(card.version),
        scored_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )
