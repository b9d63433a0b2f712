"""How well a fraud model version does on labelled attempts: precision, recall and PR-AUC overall
and per fraud pattern, and how long after a case starts its first flagged attempt appears.
Measured on days the model was not trained on (a time split). The review queue as a whole
(every layer, cases rather than attempts) is measured by fraud_evaluation.py (`promo models
evaluate fraud`).

Metric names: `precision`, `recall`, `pr_auc`, `cases`, `cases_flagged`,
`time_to_first_flag_median_s`, and per pattern `<pattern>.<metric>`. A metric that is undefined
on the data (no case of a pattern in the window) is left out, never NaN.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score

from models_ml.data import DataError, check_columns
from models_ml.fraud import FraudModel, labelled_frame, score_attempts


def _seconds(later: str, earlier: str) -> float:
    parse = datetime.fromisoformat
    return (
        parse(later.replace("Z", "+00:00")) - parse(earlier.replace("Z", "+00:00"))
    ).total_seconds()


def _pr(y: np.ndarray, score: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    out = {"recall": tp / int((y == 1).sum()), "pr_auc": float(average_precision_score(y, score))}
    if tp + fp:
        out["precision"] = tp / (tp + fp)
    return out


def evaluate_fraud_frame(
    model: FraudModel, labelled: pl.DataFrame, cases: list[dict] | None = None
) -> dict[str, float]:
    """Metrics of `model` on attempts with labels (fraud.attempt_labels)."""
    check_columns(
        labelled, ["label", "pattern", "case_id", "event_id", "occurred_at"], "the evaluation frame"
    )
    if labelled.is_empty():
        raise DataError("the evaluation window has no redemption attempts")
    positives = int(labelled["label"].sum())
    if positives in (0, labelled.height):
        only = "fraud" if positives else "legitimate"
        raise DataError(
            f"the evaluation labels have a single class ({labelled.height} attempts, all {only}): "
            "precision and PR-AUC need both"
        )
    scored = score_attempts(model, labelled)
    y = scored["label"].to_numpy()
    score = scored["score"].to_numpy()
    flagged = scored["flagged"].to_numpy()
    metrics: dict[str, float] = {"attempts": float(scored.height), "positives": float(positives)}
    metrics |= _pr(y, score, flagged)

    patterns = sorted(p for p in scored["pattern"].drop_nulls().unique().to_list())
    for pattern in patterns:
        mask = (scored["pattern"] == pattern).fill_null(False).to_numpy() & (y == 1) | (y == 0)
        for name, value in _pr(y[mask], score[mask], flagged[mask]).items():
            metrics[f"{pattern}.{name}"] = value

    # Time from a case's start to its first flagged attempt.
    started = {c["case_id"]: c["started_at"] for c in cases or []}
    per_case = (
        scored.filter(pl.col("case_id").is_not_null())
        .group_by("case_id", "pattern")
        .agg(
            first_attempt=pl.col("occurred_at").min(),
            first_flag=pl.col("occurred_at").filter(pl.col("flagged")).min(),
        )
        .sort("case_id")
    )
    delays: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    for case_id, pattern, first_attempt, first_flag in per_case.iter_rows():
        counts.setdefault(pattern, [0, 0])[0] += 1
        if first_flag is not None:
            counts[pattern][1] += 1
            delays.setdefault(pattern, []).append(
                max(0.0, _seconds(first_flag, started.get(case_id, first_attempt)))
            )
    metrics["cases"] = float(sum(c[0] for c in counts.values()))
    metrics["cases_flagged"] = float(sum(c[1] for c in counts.values()))
    every = [d for values in delays.values() for d in values]
    if every:
        metrics["time_to_first_flag_median_s"] = float(np.median(every))
    for pattern, (total, found) in counts.items():
        metrics[f"{pattern}.cases"] = float(total)
        metrics[f"{pattern}.cases_flagged"] = float(found)
        if pattern in delays:
            metrics[f"{pattern}.time_to_first_flag_median_s"] = float(np.median(delays[pattern]))
    return {k: round(v, 6) for k, v in sorted(metrics.items())}


def evaluate_fraud(
    model: FraudModel,
    events: pl.DataFrame,
    first: date,
    last: date,
    cases: list[dict],
    reviews: pl.DataFrame | None,
) -> dict[str, float]:
    """Metrics of `model` on the attempts between first and last (inclusive)."""
    return evaluate_fraud_frame(model, labelled_frame(events, first, last, cases, reviews), cases)
