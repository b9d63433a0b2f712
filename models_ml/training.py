"""Train a model of either kind on the lake under PROMO_HOME and store it in the registry (not
promoted) with the promotion gate's decision against the promoted version on its card: what
`promo models train` and the pipeline's retrain job both call."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models_ml.data import (
    DataError,
    lake_days,
    load_ground_truth,
    load_review_labels,
    scan_events,
)
from models_ml.promotion import gate_against_promoted
from models_ml.promotion_gate import GateSettings
from models_ml.registry import KINDS, ModelCard, Registry, RegistryError

DEFAULT_DAYS = 60  # the training window when none is given: the lake's last 60 days
DEFAULT_SEED = 0  # as `promo models train` without --seed
# The first personalisation model on a new ledger (nightly, nothing promoted yet) learns from
# the events of at most this many customers, drawn with the seed: at 130,000 customers the full
# history takes minutes and GBs, and the weekly retrain replaces it with a full-data candidate.
BOOTSTRAP_CUSTOMERS = 20_000


def training_window(home: Path, first: date | None, last: date | None) -> tuple[date, date]:
    lake_first, lake_last = lake_days(home / "lake")
    last = last or lake_last
    first = first or max(lake_first, last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise ValueError(f"empty window: --from {first} is after --to {last}")
    return first, last


def train(
    home: Path,
    first: date,
    last: date,
    kind: str,
    seed: int,
    max_customers: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A fitted model of `kind` and its registry card fields, trained on [first, last].

    `max_customers` (personalisation only): learn from a sample of that many customers, drawn
    with `seed`, rather than from everyone."""
    lake = home / "lake"
    if kind == "fraud":
        from models_ml.fraud_features import load_fraud_events
        from models_ml.fraud_training import train_fraud

        cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl")
        reviews = load_review_labels(lake)
        if not cases and reviews.is_empty():
            # every attempt would be labelled legitimate: say so before building any features
            # (a ledger without labels paid seconds of features each night to learn this)
            raise DataError(
                "no fraud to learn from: no ground-truth cases "
                "(simulation/ground_truth.jsonl) and no analyst reviews in the ledger"
            )
        events = load_fraud_events(lake, first, last)
        return train_fraud(events, first, last, seed, cases, reviews)
    if kind == "personalisation":
        from models_ml.personalisation import train_personalisation

        # customer history and campaign definitions come from before the window too
        events, sample = personalisation_events(lake, last, seed, max_customers)
        model, card = train_personalisation(events, first, last, seed)
        if sample is not None:
            card["params"]["customer_sample"] = sample
        card.setdefault("metrics_window", _personalisation_metrics_window(card, last))
        return model, card
    raise RegistryError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")


def personalisation_events(
    lake: Path, last: date, seed: int, max_customers: int | None = None
) -> tuple[pl.DataFrame, dict[str, int] | None]:
    """The events personalisation reads up to `last` (only its event types and columns), in seq
    order; with `max_customers`, only those of a seeded sample of customers (and the events of
    no customer: campaigns and their statuses). Returns the events and the sample's description
    (None when everyone is in)."""
    from models_ml.personalisation_features import EVENT_TYPES, REQUIRED_COLUMNS

    scan = scan_events(lake).filter(
        pl.col("event_date") <= last.isoformat(), pl.col("event_type").is_in(EVENT_TYPES)
    )
    sample = None
    if max_customers is not None:
        customers = (
            scan.select(pl.col("customer_id").filter(pl.col("customer_id") != "").unique())
            .collect()["customer_id"]
            .drop_nulls()
            .sort()
        )
        if customers.len() > max_customers:
            # sorted ids and a seeded generator: the same lake and seed give the same sample
            picks = np.random.default_rng(seed).choice(customers.len(), max_customers, False)
            chosen = customers.gather(np.sort(picks))
            scan = scan.filter(
                pl.col("customer_id").is_null()
                | (pl.col("customer_id") == "")
                | pl.col("customer_id").is_in(chosen)
            )
            sample = {"customers": max_customers, "of": customers.len(), "seed": seed}
    events = scan.select("seq", *REQUIRED_COLUMNS).sort("seq").collect()
    return events, sample


def _personalisation_metrics_window(card: dict[str, Any], last: date) -> dict[str, Any]:
    """The held-out offers the personalisation card's metrics were measured on: those published
    from the split time (`split_at`) to the window's end."""
    split_at = card["params"]["split_at"]
    return {
        "from": split_at[:10],
        "to": last.isoformat(),
        "rows": int(card["metrics"]["test_offers"]),
        "held_out_from": split_at,
    }


def train_and_register(
    home: Path,
    kind: str,
    first: date | None = None,
    last: date | None = None,
    seed: int = DEFAULT_SEED,
    max_customers: int | None = None,
    gate: GateSettings | None = None,
) -> ModelCard:
    """Train a version of `kind` on [first, last] (default: `training_window`), decide the
    promotion gate against the promoted version (`gate`: its settings) and save it."""
    first, last = training_window(home, first, last)
    model, card_fields = train(home, first, last, kind, seed, max_customers)
    card_fields["promotion_gate"] = gate_against_promoted(
        home, kind, model, card_fields["metrics_window"], card_fields["primary_metric"], gate
    )
    return Registry(home).save(kind, model, card_fields)
