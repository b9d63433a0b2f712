"""Fraud queue quality, before and after analysts' reviews: a simulated ledger with fraud scaled
up, plus the tests' own injections (households, a rollback loop, a refund creep; see
tests/fraud_injection.py), scored by the label-free layers as on a first night; then REVIEWS
decisions recorded in the ledger by an oracle analyst (the ground truth) on the oldest cases, as
an analyst works through the backlog, and the queue scored again with those reviews applied.

Prints per-pattern recall and queue precision for both, and the false positives per source.
Targets: recall >= 0.9 per pattern at precision >= 0.5 without labels; precision >= 0.8 at the
same recall once REVIEWS reviews exist. The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from models_ml.data import lake_days, load_ground_truth, load_review_labels
from models_ml.fraud import attempt_labels
from models_ml.fraud_detect import detect
from models_ml.fraud_evaluation import evaluate_queue, judged_flags
from models_ml.fraud_features import build_attempt_features, load_fraud_events
from models_ml.fraud_feedback import apply_reviews
from models_ml.fraud_nightly import LOOKBACK_DAYS
from pipelines.ledger_extract import Lake, sync_lake
from redemption_core import RedemptionEngine, SimulationConfig, simulate

SIMULATION = SimulationConfig(customers=3000, days=60, seed=9, fraud_scale=35)
REVIEWS = 200


def summary(metrics: dict) -> dict:
    keep = ("flags", "queue_precision", "false_flags", "case_recall", "cases")
    out = {k: metrics[k] for k in keep if k in metrics}
    out["recall_by_pattern"] = {
        k.split(".")[1]: v
        for k, v in metrics.items()
        if k.startswith("pattern.") and k.endswith(".recall")
    }
    out["false_positives_by_source"] = {
        k.split(".", 1)[1].rsplit(".", 1)[0]: v
        for k, v in metrics.items()
        if k.startswith("source.") and k.endswith(".false_positives")
    }
    return out


def main() -> int:
    # the tests' own injections, so that the bench measures what they do
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fraud_injection import inject

    with tempfile.TemporaryDirectory(prefix="bench-fraud-reviews-") as tmp:
        home = Path(tmp)
        started = time.perf_counter()
        simulate(home, SIMULATION, progress=None)
        customers = [f"c{i:07d}" for i in range(0, SIMULATION.customers, 7)]
        injected = inject(home, SIMULATION.start, SIMULATION.days, SIMULATION.seed, customers)
        sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
        first, last = lake_days(home / "lake")
        attempts = build_attempt_features(
            load_fraud_events(home / "lake", first, last, LOOKBACK_DAYS)
        )
        cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl") + injected.cases
        labels = attempt_labels(attempts, cases, None)
        before = detect(attempts, first.isoformat()).queue
        unlabelled = evaluate_queue(before, labels, cases)
        print(json.dumps({"stage": "no labels", **summary(unlabelled)}), flush=True)

        judged = judged_flags(before, labels, None).sort("first_seen", "flag_id")
        reviewed = judged.head(REVIEWS)
        with RedemptionEngine.open(home) as engine:
            for flag in reviewed.iter_rows(named=True):
                engine.record_review(
                    flag["flag_id"],
                    flag["entity_type"],
                    flag["entity_id"],
                    "fraud" if flag["truth"] else "legitimate",
                    reviewer="oracle",
                )
        sync_lake(home / "ledger.sqlite", Lake(home / "lake"))
        reviews = load_review_labels(home / "lake")
        again = detect(attempts, first.isoformat(), previous=before).queue
        active = apply_reviews(again, reviews).filter(~pl.col("suppressed"))
        with_reviews = evaluate_queue(active, labels, cases)
        waiting = active.filter(~pl.col("flag_id").is_in(reviews["flag_id"].implode()))
        unreviewed = evaluate_queue(waiting, labels, cases)
        print(json.dumps({"stage": "after reviews", **summary(with_reviews)}), flush=True)
        result = {
            "reviews": reviews.height,
            "reviewed_legitimate": int((reviews["decision"] == "legitimate").sum()),
            "no_labels": summary(unlabelled),
            "after_reviews": summary(with_reviews),
            "after_reviews_unreviewed_only": {
                k: unreviewed.get(k) for k in ("flags", "queue_precision", "false_flags")
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
