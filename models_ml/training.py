"""Train a model of either kind on the lake under PROMO_HOME and store it in the registry (not
promoted): what `promo models train` and the pipeline's retrain job both call."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from models_ml.data import lake_days, load_events, load_ground_truth, load_review_labels
from models_ml.registry import KINDS, ModelCard, Registry, RegistryError

DEFAULT_DAYS = 60  # the training window when none is given: the lake's last 60 days
DEFAULT_SEED = 0  # as `promo models train` without --seed


def training_window(home: Path, first: date | None, last: date | None) -> tuple[date, date]:
    lake_first, lake_last = lake_days(home / "lake")
    last = last or lake_last
    first = first or max(lake_first, last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise ValueError(f"empty window: --from {first} is after --to {last}")
    return first, last


def train(home: Path, first: date, last: date, kind: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """A fitted model of `kind` and its registry card fields, trained on [first, last]."""
    lake = home / "lake"
    if kind == "fraud":
        from models_ml.fraud import train_fraud
        from models_ml.fraud_features import load_fraud_events

        events = load_fraud_events(lake, first, last)
        cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl")
        return train_fraud(events, first, last, seed, cases, load_review_labels(lake))
    if kind == "personalisation":
        from models_ml.personalisation import train_personalisation
        from models_ml.personalisation_features import EVENT_TYPES

        # customer history and campaign definitions come from before the window too
        events = load_events(lake, None, last, EVENT_TYPES)
        return train_personalisation(events, first, last, seed)
    raise RegistryError(f"unknown model kind {kind!r}: one of {', '.join(KINDS)}")


def train_and_register(
    home: Path,
    kind: str,
    first: date | None = None,
    last: date | None = None,
    seed: int = DEFAULT_SEED,
) -> ModelCard:
    first, last = training_window(home, first, last)
    model, card_fields = train(home, first, last, kind, seed)
    return Registry(home).save(kind, model, card_fields)
