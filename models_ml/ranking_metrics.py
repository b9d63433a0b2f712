"""Ranking metrics with their noise: ROC-AUC, PR-AUC (average precision) and NDCG@k, each with
a bootstrap 95% interval, and the interval of the difference between a model and a baseline
computed on the same resamples (a paired comparison).

The bootstrap resamples whole customers (clusters), not rows: one customer's offers share the
customer's habits, and resampling rows would make the intervals too narrow. Each replicate is a
vector of weights (how often each customer was drawn), so a metric is recomputed in one pass
over the rows sorted once, not by copying the data.

Ties are scored by their expectation over random tie-breaking, so a constant score is exactly
the random baseline (ROC-AUC 0.5, PR-AUC the positive rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

REPLICATES = 200


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self, name: str) -> dict[str, float]:
        return {name: self.value, f"{name}_ci95_low": self.low, f"{name}_ci95_high": self.high}


class _Sorted:
    """One scorer's rows grouped by distinct score (ascending), for weighted AUC and AP."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.values, self.group = np.unique(score, return_inverse=True)
        self.y = y.astype(np.float64)

    def sums(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.values)
        positive = np.bincount(self.group, weights=weights * self.y, minlength=size)
        negative = np.bincount(self.group, weights=weights * (1 - self.y), minlength=size)
        return positive, negative

    def roc_auc(self, weights: np.ndarray) -> float:
        positive, negative = self.sums(weights)
        p, n = positive.sum(), negative.sum()
        if p == 0 or n == 0:
            return float("nan")
        below = np.cumsum(negative) - negative
        return float(np.sum(positive * (below + 0.5 * negative)) / (p * n))

    def average_precision(self, weights: np.ndarray) -> float:
        positive, negative = self.sums(weights)
        p = positive.sum()
        if p == 0:
            return float("nan")
        tp = np.cumsum(positive[::-1])
        fp = np.cumsum(negative[::-1])
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        recall_step = positive[::-1] / p
        return float(np.sum(recall_step * precision))


def roc_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _Sorted(np.asarray(y), np.asarray(score, dtype=np.float64)).roc_auc(
        np.ones(len(y)) if weights is None else weights
    )


def average_precision(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _Sorted(np.asarray(y), np.asarray(score, dtype=np.float64)).average_precision(
        np.ones(len(y)) if weights is None else weights
    )


def ndcg_per_group(groups: np.ndarray, y: np.ndarray, score: np.ndarray, k: int) -> pl.DataFrame:
    """NDCG@k of each group with two or more items and at least one positive (columns `g`,
    `ndcg`). Tied items share the mean discount of the positions the tie spans."""

    def discount(position: pl.Expr) -> pl.Expr:
        return pl.when(position < k).then(1 / (position + 2).cast(pl.Float64).log(2)).otherwise(0.0)

    frame = pl.DataFrame(
        {"g": groups, "y": np.asarray(y, dtype=np.float64), "s": np.asarray(score, np.float64)}
    ).sort(["g", "s"], descending=[False, True])
    per_group = (
        frame.with_columns(
            at=pl.int_range(pl.len()).over("g"),
            ideal_at=pl.col("y").rank("ordinal", descending=True).over("g") - 1,
        )
        .with_columns(
            expected=discount(pl.col("at")).mean().over("g", "s"),
            ideal=pl.col("y") * discount(pl.col("ideal_at")),
        )
        .group_by("g")
        .agg(
            n=pl.len(),
            positives=pl.col("y").sum(),
            gain=(pl.col("y") * pl.col("expected")).sum(),
            ideal=pl.col("ideal").sum(),
        )
        .filter((pl.col("n") >= 2) & (pl.col("positives") > 0))
    )
    return per_group.select("g", ndcg=pl.col("gain") / pl.col("ideal")).sort("g")


def ndcg_at_k(groups: np.ndarray, y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Mean NDCG@k over the groups with two or more items and at least one positive."""
    per_group = ndcg_per_group(groups, y, score, k)
    return float(per_group["ndcg"].mean()) if per_group.height else float("nan")  # type: ignore[arg-type]


def compare(
    y: np.ndarray,
    customers: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    model: str,
    k: int,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> dict[str, float]:
    """ROC-AUC, PR-AUC and NDCG@k of every scorer with bootstrap 95% intervals (customers
    resampled), and for each other scorer the interval of `model` minus it.

    Names: `roc_auc` (the model's), `roc_auc_<scorer>`, each with `_ci95_low`/`_ci95_high`, and
    `roc_auc_lift_over_<scorer>_ci95_low`/`_high`; the same for `pr_auc` and `ndcg_at_<k>`.
    """
    y = np.asarray(y, dtype=np.float64)
    codes = pl.Series(customers).cast(pl.String).rank("dense").cast(pl.Int64).to_numpy() - 1
    clusters = int(codes.max()) + 1 if len(codes) else 0
    sorted_scores = {name: _Sorted(y, np.asarray(s, np.float64)) for name, s in scores.items()}
    ndcg_groups = {name: ndcg_per_group(codes, y, s, k) for name, s in scores.items()}
    ndcg_name = f"ndcg_at_{k}"

    def measure(weights: np.ndarray, cluster_weights: np.ndarray) -> dict[tuple[str, str], float]:
        found = {}
        for name, ranked in sorted_scores.items():
            found[("roc_auc", name)] = ranked.roc_auc(weights)
            found[("pr_auc", name)] = ranked.average_precision(weights)
            groups = ndcg_groups[name]
            w = cluster_weights[groups["g"].to_numpy()]
            found[(ndcg_name, name)] = (
                float(np.sum(w * groups["ndcg"].to_numpy()) / w.sum()) if w.sum() > 0 else np.nan
            )
        return found

    point = measure(np.ones(len(y)), np.ones(clusters))
    rng = np.random.default_rng(seed)
    draws: dict[tuple[str, str], list[float]] = {key: [] for key in point}
    for _ in range(replicates):
        counts = np.bincount(rng.integers(0, clusters, clusters), minlength=clusters).astype(
            np.float64
        )
        for key, value in measure(counts[codes], counts).items():
            draws[key].append(value)

    out: dict[str, float] = {}
    for (metric, name), value in point.items():
        label = metric if name == model else f"{metric}_{name}"
        out.update(_interval(value, np.array(draws[(metric, name)])).as_dict(label))
        if name != model:
            lift = np.array(draws[(metric, model)]) - np.array(draws[(metric, name)])
            low, high = _quantiles(lift)
            out[f"{metric}_lift_over_{name}_ci95_low"] = low
            out[f"{metric}_lift_over_{name}_ci95_high"] = high
    return {name: value for name, value in out.items() if not np.isnan(value)}


def _interval(value: float, draws: np.ndarray) -> Interval:
    low, high = _quantiles(draws)
    return Interval(value, low, high)


def _quantiles(draws: np.ndarray) -> tuple[float, float]:
    found = draws[~np.isnan(draws)]
    if found.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(found, [0.025, 0.975])
    return float(low), float(high)
