"""How well a fraud model version does on labelled attempts: precision, recall and PR-AUC overall
and per fraud pattern, and how long after a case starts its first flagged attempt appears
(`case_first_flags`, the one definition training, `promo models evaluate VERSION` and the queue's
evaluation share). Measured on days the model was not trained on (a time split). The review
queue as a whole (every layer, cases rather than attempts) is measured by fraud_evaluation.py
(`promo models evaluate fraud`).

Metric names: `precision`, `recall`, `pr_auc`, `cases`, `cases_flagged`,
`time_to_first_flag_median_s`, and per pattern `<pattern>.<metric>`. A metric that is undefined
on the data (no case of a pattern in the window) is left out, never NaN.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score

from models_ml.data import DataError, check_columns, load_ground_truth, load_review_labels
from models_ml.fraud import FraudModel, labelled_frame, score_attempts


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pr(y: np.ndarray, score: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    out = {"recall": tp / int((y == 1).sum()), "pr_auc": float(average_precision_score(y, score))}
    if tp + fp:
        out["precision"] = tp / (tp + fp)
    return out


def time_to_first_flag(
    per_case: pl.DataFrame, cases: list[dict], window_start: date | None
) -> pl.DataFrame:
    """The one definition of time to first flag, for a model version's flagged attempts
    (`case_first_flags`: training and `promo models evaluate VERSION`) and for the review
    queue's flags (fraud_evaluation.py: `promo models evaluate fraud`) alike.

    `per_case`: case_id, pattern, first_attempt (its first attempt in the window) and
    first_flag (ISO instants; first_flag null when nothing flagged it). Returns case_id, pattern,
    started, first_flag and the seconds between (null when never flagged), sorted by case_id.

    A case starts at its recorded start (the ground truth's `started_at`: its first event, which
    may be an account opened before any attempt), or at its first attempt in the window when no
    start is recorded; a case that started before `window_start` starts, for this window, at the
    window's first instant, since nothing flagged in it could have flagged it earlier."""
    check_columns(per_case, ["case_id", "pattern", "first_attempt", "first_flag"], "per_case")
    recorded = {c["case_id"]: _instant(c["started_at"]) for c in cases}
    opened = None if window_start is None else datetime.combine(window_start, time(), tzinfo=UTC)
    rows = []
    for case_id, pattern, first_attempt, first_flag in (
        per_case.select("case_id", "pattern", "first_attempt", "first_flag")
        .sort("case_id")
        .iter_rows()
    ):
        started = recorded.get(case_id) or _instant(first_attempt)
        started = started if opened is None else max(started, opened)
        flagged_at = _instant(first_flag) if first_flag is not None else None
        seconds = None if flagged_at is None else max(0.0, (flagged_at - started).total_seconds())
        rows.append((case_id, pattern, started, flagged_at, seconds))
    return pl.DataFrame(
        rows,
        schema={
            "case_id": pl.String,
            "pattern": pl.String,
            "started": pl.Datetime("us", "UTC"),
            "first_flag": pl.Datetime("us", "UTC"),
            "seconds": pl.Float64,
        },
        orient="row",
    )


def case_first_flags(scored: pl.DataFrame, cases: list[dict], window_start: date) -> pl.DataFrame:
    """`time_to_first_flag` of each ground-truth case with attempts in `scored` (a model's scored
    attempts of the window that starts on `window_start`), its first flag being its first
    flagged attempt."""
    check_columns(scored, ["case_id", "pattern", "occurred_at", "flagged"], "the scored frame")
    per_case = (
        scored.filter(pl.col("case_id").is_not_null())
        .group_by("case_id", "pattern")
        .agg(
            first_attempt=pl.col("occurred_at").min(),
            first_flag=pl.col("occurred_at").filter(pl.col("flagged")).min(),
        )
    )
    return time_to_first_flag(per_case, cases, window_start)


def evaluate_fraud_frame(
    model: FraudModel, labelled: pl.DataFrame, cases: list[dict], window_start: date
) -> dict[str, float]:
    """Metrics of `model` on attempts with labels (fraud.attempt_labels) of the window that
    starts on `window_start`, whose ground-truth cases are `cases` (empty on a real ledger)."""
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

    per_case = case_first_flags(scored, cases, window_start)
    metrics["cases"] = float(per_case.height)
    metrics["cases_flagged"] = float(per_case["first_flag"].is_not_null().sum())
    delays = per_case.filter(pl.col("seconds").is_not_null())
    if delays.height:
        metrics["time_to_first_flag_median_s"] = float(delays["seconds"].median())  # type: ignore[arg-type]
    for pattern, total, found, median in (
        per_case.group_by("pattern")
        .agg(
            pl.len(),
            pl.col("first_flag").is_not_null().sum(),
            pl.col("seconds").drop_nulls().median(),
        )
        .sort("pattern")
        .iter_rows()
    ):
        metrics[f"{pattern}.cases"] = float(total)
        metrics[f"{pattern}.cases_flagged"] = float(found)
        if median is not None:
            metrics[f"{pattern}.time_to_first_flag_median_s"] = float(median)
    return {k: round(v, 6) for k, v in sorted(metrics.items())}


def labels_fingerprint(labelled: pl.DataFrame) -> str:
    """sha256 of the attempts' ids and labels (in event id order): the same window measured
    twice has the same fingerprint unless its labels changed (reviews recorded since)."""
    frame = labelled.select("event_id", "label").sort("event_id")
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def load_evaluation_frame(home: Path, first: date, last: date) -> tuple[pl.DataFrame, list[dict]]:
    """The labelled attempts of the lake's days [first, last] under `home`, and the ground-truth
    cases: what training measures its held-out days on, and `promo models evaluate` and the
    promotion gate read again."""
    from models_ml.fraud_features import load_fraud_events

    lake = home / "lake"
    cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl")
    events = load_fraud_events(lake, first, last)
    return labelled_frame(events, first, last, cases, load_review_labels(lake)), cases


def evaluate_fraud(
    model: FraudModel,
    events: pl.DataFrame,
    first: date,
    last: date,
    cases: list[dict],
    reviews: pl.DataFrame | None,
) -> dict[str, float]:
    """Metrics of `model` on the attempts between first and last (inclusive)."""
    labelled = labelled_frame(events, first, last, cases, reviews)
    return evaluate_fraud_frame(model, labelled, cases, first)
