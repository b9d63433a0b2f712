"""How the review queue does, on any ledger: flag counts per layer and per source (a rule, an
anomaly forest, a drift rate, the model) always; where labels exist (a simulation's ground
truth, analysts' reviews), case recall and queue precision per pattern, false positives per
source, and the time from a case's start to its first flag (evaluate.time_to_first_flag, the
definition a model version's evaluation uses too).

A flag is true when at least TRUE_SHARE of its attempts are labelled fraud. A labelled case is
found when a true flag holds at least one of its attempts. Reviews label what they decided:
a flag reviewed fraud or legitimate counts as such whatever the ground truth says, and its
attempts become labels for the cases of other flags too.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from models_ml.data import DataError
from models_ml.evaluate import time_to_first_flag

TRUE_SHARE = 0.5


def flag_counts(queue: pl.DataFrame) -> dict[str, float]:
    """Flags in all, per layer (`layer.<name>`) and per source (`source.<name>`)."""
    out: dict[str, float] = {"flags": float(queue.height)}
    for column, prefix in (("layers", "layer"), ("sources", "source")):
        if queue.is_empty():
            continue
        counts = queue.select(pl.col(column).explode().drop_nulls().value_counts(sort=True)).unnest(
            column
        )
        for name, count in counts.iter_rows():
            out[f"{prefix}.{name}.flags"] = float(count)
    return out


def judged_flags(
    queue: pl.DataFrame, labels: pl.DataFrame, reviews: pl.DataFrame | None
) -> pl.DataFrame:
    """Per flag: `fraud_share` of its attempts labelled fraud, `truth` (reviewed decision if
    any, else fraud_share >= TRUE_SHARE), and the `case_ids` of the labelled cases it holds.

    `labels`: event_id, label (1/0), case_id, pattern (fraud.attempt_labels)."""
    exploded = (
        queue.select("flag_id", "event_ids")
        .explode("event_ids")
        .join(
            labels.select("event_id", "label", "case_id"),
            left_on="event_ids",
            right_on="event_id",
            how="left",
        )
    )
    per_flag = exploded.group_by("flag_id").agg(
        fraud_share=pl.col("label").fill_null(0).mean(),
        case_ids=pl.col("case_id").drop_nulls().unique().sort(),
    )
    judged = queue.join(per_flag, on="flag_id", how="left").with_columns(
        fraud_share=pl.col("fraud_share").fill_null(0.0)
    )
    decided = (
        reviews.filter(pl.col("decision").is_in(["fraud", "legitimate"])).select(
            "flag_id", reviewed=pl.col("decision") == "fraud"
        )
        if reviews is not None and not reviews.is_empty()
        else pl.DataFrame(schema={"flag_id": pl.String, "reviewed": pl.Boolean})
    )
    return judged.join(decided, on="flag_id", how="left").with_columns(
        truth=pl.coalesce("reviewed", pl.col("fraud_share") >= TRUE_SHARE)
    )


def evaluate_queue(
    queue: pl.DataFrame,
    labels: pl.DataFrame | None,
    cases: list[dict],
    reviews: pl.DataFrame | None = None,
    window_start: date | None = None,
) -> dict[str, float]:
    """The metrics named in the module docstring; label-based ones only where labels exist.
    `window_start`: the first day the queue covers (time to first flag counts from no earlier)."""
    metrics = flag_counts(queue)
    has_labels = labels is not None and (
        labels["label"].sum() > 0 or (reviews is not None and not reviews.is_empty())
    )
    if not has_labels or labels is None:
        return metrics
    judged = judged_flags(queue, labels, reviews)
    if judged.height:
        metrics["queue_precision"] = float(judged["truth"].mean())
        metrics["false_flags"] = float((~judged["truth"]).sum())
        sources = judged.select("sources", "truth").explode("sources").drop_nulls()
        for name, flags, true in (
            sources.group_by("sources")
            .agg(pl.len(), pl.col("truth").sum())
            .sort("sources")
            .iter_rows()
        ):
            metrics[f"source.{name}.false_positives"] = float(flags - true)
            metrics[f"source.{name}.precision"] = float(true / flags)
        layers = judged.select("layers", "truth").explode("layers").drop_nulls()
        for name, flags, true in (
            layers.group_by("layers")
            .agg(pl.len(), pl.col("truth").sum())
            .sort("layers")
            .iter_rows()
        ):
            metrics[f"layer.{name}.false_positives"] = float(flags - true)
            metrics[f"layer.{name}.precision"] = float(true / flags)

    # Cases: found by a true flag holding one of their attempts; first flag time.
    labelled_cases = (
        labels.filter(pl.col("case_id").is_not_null())
        .group_by("case_id")
        .agg(pattern=pl.col("pattern").first(), first_attempt=pl.col("occurred_at").min())
    )
    found = (
        judged.filter(pl.col("truth"))
        .select("case_ids", "first_flagged_at")
        .explode("case_ids")
        .drop_nulls()
        .group_by("case_ids")
        .agg(first_flag=pl.col("first_flagged_at").min())
    )
    per_case = time_to_first_flag(
        labelled_cases.join(found, left_on="case_id", right_on="case_ids", how="left"),
        cases,
        window_start,
    )
    delays: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    for _, pattern, _, first_flag, seconds in per_case.iter_rows():
        counts.setdefault(pattern, [0, 0])[0] += 1
        if first_flag is not None:
            counts[pattern][1] += 1
            delays.setdefault(pattern, []).append(seconds)
    metrics["cases"] = float(sum(c[0] for c in counts.values()))
    metrics["cases_found"] = float(sum(c[1] for c in counts.values()))
    if metrics["cases"]:
        metrics["case_recall"] = metrics["cases_found"] / metrics["cases"]
    every = [d for values in delays.values() for d in values]
    if every:
        metrics["time_to_first_flag_median_s"] = float(np.median(every))
    for pattern, (total, hit) in sorted(counts.items()):
        metrics[f"pattern.{pattern}.cases"] = float(total)
        metrics[f"pattern.{pattern}.cases_found"] = float(hit)
        metrics[f"pattern.{pattern}.recall"] = hit / total
        if pattern in delays:
            metrics[f"pattern.{pattern}.time_to_first_flag_median_s"] = float(
                np.median(delays[pattern])
            )
        holding = judged.filter(
            pl.col("case_ids")
            .list.eval(
                pl.element().is_in(
                    per_case.filter(pl.col("pattern") == pattern)["case_id"].to_list()
                )
            )
            .list.any()
        )
        if holding.height:
            metrics[f"pattern.{pattern}.flags"] = float(holding.height)
            metrics[f"pattern.{pattern}.precision"] = float(holding["truth"].mean())
    return {k: round(v, 6) for k, v in sorted(metrics.items())}


def evaluate_ledger(home: Path, first: date | None, last: date | None) -> tuple[dict, date, date]:
    """Every layer over the lake's days [first, last] (default: all of them), as a first night
    would run them, with the promoted model when one fits; the queue's metrics, with labels
    from the ground truth and the reviews where there are any. Returns the window too."""
    from models_ml.data import lake_days, load_ground_truth, load_review_labels
    from models_ml.fraud import attempt_labels
    from models_ml.fraud_detect import detect
    from models_ml.fraud_features import build_attempt_features, load_fraud_events
    from models_ml.fraud_feedback import apply_reviews
    from models_ml.fraud_nightly import LOOKBACK_DAYS, empty_attempts, usable_model
    from models_ml.registry import Registry

    lake_first, lake_last = lake_days(home / "lake")
    first, last = first or lake_first, last or lake_last
    if first > last:
        raise ValueError(f"empty window: --from {first} is after --to {last}")
    events = load_fraud_events(home / "lake", first, last, LOOKBACK_DAYS)
    try:
        attempts = build_attempt_features(events)
    except DataError:
        attempts = empty_attempts()
    registry = Registry(home)
    model = None
    if registry.promoted("fraud") is not None:
        model = registry.load("fraud")[0]
        model = model if usable_model(model) else None
    queue = detect(attempts, first.isoformat(), model=model).queue
    reviews = load_review_labels(home / "lake")
    queue = apply_reviews(queue, reviews).filter(~pl.col("suppressed"))
    cases = load_ground_truth(home / "simulation" / "ground_truth.jsonl")
    window = attempts.filter(
        pl.col("event_date").is_between(pl.lit(first.isoformat()), pl.lit(last.isoformat()))
    )
    labels = None if window.is_empty() else attempt_labels(window, cases, reviews)
    metrics = evaluate_queue(queue, labels, cases, reviews, first)
    metrics["attempts"] = float(window.height)
    metrics["supervised_model"] = float(model is not None)
    return dict(sorted(metrics.items())), first, last
