"""Personalisation benchmark (run by bench/ml.py, `make bench-ml`): training on 1,000,000
customer x voucher rows and next-best-offer scoring of 1,000,000 candidate rows.

`personalisation_train_s_1m`: the propensity and uplift fits as `train_personalisation` makes
them (negative sampling included), on 1,000,000 offer rows with features; target <= 60 s on 2
cores. `nbo_score_rows_per_s`: propensity, uplift, expected incremental value and the
per-customer ranking of 1,000,000 candidate rows with their features; target >= 500,000 rows/s. Building the features of
every offerable (customer, campaign) pair at an instant is measured on the real candidates and
reported beside it (`nbo_features_rows_per_s`), not replicated.

The rows come from the simulated ledger bench/ml.py makes (features and labels built as in
training). It has thousands of offers, so they are replicated with multiplicative noise on the
non-binary features up to 1,000,000 rows, each copy belonging to a new customer; the output says
how many real rows there were.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from models_ml.personalisation import fit_personalisation as personalisation_fit
from models_ml.personalisation import money_facts, rank_scored
from models_ml.personalisation_candidates import offer_candidates
from models_ml.personalisation_events import (
    CATEGORICAL_VOCAB,
    build_tables,
    labelled_offers,
    uplift_assignments,
    vocabulary,
)
from models_ml.personalisation_features import feature_names, offer_features
from models_ml.training import personalisation_events

ROWS = 1_000_000
TRAIN_TARGET_S = 60
SCORE_TARGET_ROWS_PER_S = 500_000


def load() -> dict:
    return {"load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def say(document: dict) -> None:
    print(json.dumps(document), flush=True)


def replicate(
    real: pl.DataFrame, rows: int, rng: np.random.Generator, features: list[str], per_customer: int
) -> pl.DataFrame:
    """`rows` rows drawn from `real`, non-binary features scaled by noise around 1 (sd 5%),
    every `per_customer` rows a new customer."""
    picks = rng.integers(0, real.height, rows)
    frame = real[picks]
    fixed = [
        name
        for name in features
        if name in CATEGORICAL_VOCAB
        or name.startswith("attr_")
        or set(real[name].drop_nulls().unique().to_list()) <= {0.0, 1.0}
    ]
    noisy = [name for name in features if name not in fixed]
    noise = rng.normal(1.0, 0.05, (rows, len(noisy)))
    return frame.with_columns(
        *[
            pl.Series(name, frame[name].cast(pl.Float64).to_numpy() * noise[:, i])
            for i, name in enumerate(noisy)
        ],
        customer_id=pl.concat_str(
            pl.lit("b"), (pl.int_range(pl.len()) // per_customer).cast(pl.String)
        ),
    )


def personalisation_bench(home: Path, first: date, last: date, seed: int) -> dict[str, Any]:
    """Stages printed as they finish; returns the figures for the final line."""
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    events, _ = personalisation_events(home / "lake", last, seed)
    tables = build_tables(events)
    vocab = vocabulary(tables)
    offers = labelled_offers(tables).filter(pl.col("horizon_end") <= tables.end)
    shapes = dict(tables.campaigns.select("campaign_id", "shape").iter_rows())
    offers = offers.with_columns(shape=pl.col("campaign_id").replace_strict(shapes, default="-"))
    assignments = uplift_assignments(tables).filter(pl.col("horizon_end") <= tables.end)
    frame = offer_features(tables, offers, vocab)
    arms = offer_features(
        tables, assignments.with_columns(voucher_id=pl.lit(None, pl.String)), vocab
    )
    features = feature_names(vocab)
    say(
        {
            "stage": "personalisation_data",
            "real_offers": frame.height,
            "real_redemption_rate": round(float(frame["label"].mean()), 4),  # type: ignore[arg-type]
            "real_assignments": arms.height,
            "features": len(features),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    rows = replicate(frame, ROWS, rng, features, per_customer=3)
    started, cpu = time.perf_counter(), time.process_time()
    model = personalisation_fit(vocab, rows, arms, features, features, seed, **money_facts(tables))
    train_s = time.perf_counter() - started
    train_cpu = time.process_time() - cpu
    say(
        {
            "stage": "personalisation_train",
            "rows": ROWS,
            "seconds": round(train_s, 2),
            "cpu_s": round(train_cpu, 2),
            "uplift_model": model.uplift is not None,
            "target_s": TRAIN_TARGET_S,
            **load(),
        }
    )

    started = time.perf_counter()
    candidates = offer_candidates(tables, tables.end)
    candidate_features = offer_features(tables, candidates, vocab)
    features_s = time.perf_counter() - started
    scoring = replicate(candidate_features, ROWS, rng, features, per_customer=5)
    rank_scored(model, scoring.head(10_000), 3)  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    ranked = rank_scored(model, scoring, 3)
    score_s = time.perf_counter() - started
    say(
        {
            "stage": "nbo_score",
            "rows": ROWS,
            "ranked_rows": ranked.height,
            "seconds": round(score_s, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "real_candidates": candidates.height,
            "features_seconds": round(features_s, 2),
            "target_rows_per_s": SCORE_TARGET_ROWS_PER_S,
            **load(),
        }
    )
    return {
        "personalisation_train_s_1m": round(train_s, 2),
        "personalisation_train_cpu_s_1m": round(train_cpu, 2),
        "nbo_score_rows_per_s": round(ROWS / score_s),
        "nbo_features_rows_per_s": round(candidates.height / features_s),
        "real_offers": frame.height,
        "real_candidates": candidates.height,
        "personalisation_targets_met": bool(
            train_s <= TRAIN_TARGET_S and ROWS / score_s >= SCORE_TARGET_ROWS_PER_S
        ),
    }
