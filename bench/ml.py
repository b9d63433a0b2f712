"""Fraud model benchmark: LightGBM training time on 1,000,000 labelled attempts, batch scoring
throughput and single-request scoring latency. Prints JSON figures; the last line is one object.

The labelled rows come from a simulated ledger's attempt features (simulated here, extracted to
a lake, features and ground-truth labels built as in training). A simulated ledger of this size
has tens of thousands of attempts, so they are replicated with multiplicative noise on the
non-binary features up to 1,000,000 rows; the output says how many real rows there were.

Targets: training <= 60 s, batch >= 200,000 rows/s, single-request p99 < 1 ms.

The same simulated ledger then feeds the personalisation benchmark (bench/ml_personalisation.py:
`personalisation_train_s_1m`, `nbo_score_rows_per_s`), whose figures join the last line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from ml_personalisation import personalisation_bench

from models_ml.data import load_ground_truth
from models_ml.fraud import FraudScorer, fit_fraud, labelled_frame, score_attempts
from models_ml.fraud_features import FEATURES, load_fraud_events
from pipelines.ledger_extract import Lake, sync_lake
from redemption_core import SimulationConfig, simulate

ROWS = 1_000_000
SEED = 7
SIMULATION = SimulationConfig(customers=3000, days=30, seed=SEED, fraud_scale=5)
SINGLE_REQUESTS = 20_000


def load() -> dict:
    """The machine's load while measuring: wall-clock figures on a busy machine are slower."""
    return {"load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def say(document: dict) -> None:
    print(json.dumps(document), flush=True)


def labelled_rows(home: Path) -> pl.DataFrame:
    simulate(home, SIMULATION, progress=None)
    sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
    first = SIMULATION.start.date()
    last = first.fromordinal(first.toordinal() + SIMULATION.days - 1)
    events = load_fraud_events(home / "lake", first, last)
    cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl")
    return labelled_frame(events, first, last, cases, None).select(*FEATURES, "label")


def replicate(real: pl.DataFrame, rows: int, rng: np.random.Generator) -> pl.DataFrame:
    """`rows` rows drawn from `real`, non-binary features scaled by noise around 1 (sd 5%)."""
    picks = rng.integers(0, real.height, rows)
    frame = real[picks]
    binary = [name for name in FEATURES if set(real[name].unique().to_list()) <= {0.0, 1.0}]
    noisy = [name for name in FEATURES if name not in binary]
    noise = rng.normal(1.0, 0.05, (rows, len(noisy)))
    return frame.with_columns(
        pl.Series(name, frame[name].to_numpy() * noise[:, i]) for i, name in enumerate(noisy)
    )


def main() -> int:
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="bench-ml-") as tmp:
        started = time.perf_counter()
        real = labelled_rows(Path(tmp))
        say(
            {
                "stage": "data",
                "simulation": f"{SIMULATION.customers} customers x {SIMULATION.days} days, fraud_scale {SIMULATION.fraud_scale}",
                "real_attempts": real.height,
                "real_fraud": int(real["label"].sum()),
                "rows": ROWS,
                "note": f"{ROWS:,} rows = the {real.height:,} real attempts replicated with 5% multiplicative noise",
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        first = SIMULATION.start.date()
        last = first.fromordinal(first.toordinal() + SIMULATION.days - 1)
        personalisation = personalisation_bench(Path(tmp), first, last, SEED)
    rows = replicate(real, ROWS, rng)

    started, cpu = time.perf_counter(), time.process_time()
    model = fit_fraud(rows, SEED)
    train_s = time.perf_counter() - started
    train_cpu = time.process_time() - cpu
    say(
        {
            "stage": "train",
            "rows": ROWS,
            "seconds": round(train_s, 2),
            "cpu_s": round(train_cpu, 2),
            "target_s": 60,
            **load(),
        }
    )

    started, cpu = time.perf_counter(), time.process_time()
    scored = score_attempts(model, rows)
    batch_s = time.perf_counter() - started
    assert scored.height == ROWS
    batch_rate = ROWS / batch_s
    say(
        {
            "stage": "batch",
            "rows": ROWS,
            "seconds": round(batch_s, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "rows_per_s": round(batch_rate),
            **load(),
        }
    )

    scorer = FraudScorer(model)
    vectors = rows.select(FEATURES).to_numpy()[rng.integers(0, ROWS, SINGLE_REQUESTS)]
    for x in vectors[:500]:  # warm-up
        scorer.score(x)
    latencies = np.empty(SINGLE_REQUESTS)
    for i, x in enumerate(vectors):
        t = time.perf_counter()
        scorer.score(x)
        latencies[i] = time.perf_counter() - t
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    say(
        {
            "stage": "single",
            "requests": SINGLE_REQUESTS,
            "p50_ms": round(p50, 4),
            "p99_ms": round(p99, 4),
            **load(),
        }
    )

    result = {
        "fraud_train_s_1m": round(float(train_s), 2),
        "batch_score_rows_per_s": round(float(batch_rate)),
        "single_score_p99_ms": round(float(p99), 4),
        "single_score_p50_ms": round(float(p50), 4),
        "fraud_train_cpu_s_1m": round(train_cpu, 2),
        "real_attempts": real.height,
        "rows_replicated": True,
        **personalisation,
        **load(),
        # plain bools: numpy's are not JSON
        "targets_met": bool(
            train_s <= 60
            and batch_rate >= 200_000
            and p99 < 1.0
            and personalisation["personalisation_targets_met"]
        ),
    }
    say(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
