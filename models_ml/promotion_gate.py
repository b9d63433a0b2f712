"""Whether a candidate model may replace the promoted one, decided on the confidence interval of
the difference in their primary metric, not on two point estimates.

Both models score the same held-out rows. The bootstrap resamples whole CASES, not rows: the
attempts of one fraud case (or the offers of one customer) rise and fall together, so resampling
rows would pretend there is far more evidence than there is. Cases that hold a positive (a fraud
case, a customer who redeemed) and cases that hold none are resampled separately, each to its own
count, so that every replicate has both classes. Each replicate weights every row by how often
its case was drawn, and the metric is recomputed for both models on the same weights (a paired
comparison), giving the distribution of `candidate - promoted`.

The rule (a non-inferiority test with a stated tolerance):

- fewer than `min_cases` positive cases (or negative ones): UNDECIDED, "not enough cases";
- the interval's lower end above `-tolerance`: PROMOTE (with that confidence, the candidate is
  not worse than the promoted model by more than the tolerance);
- the interval's upper end below `-tolerance`: REFUSE (it is worse by more than the tolerance);
- otherwise: UNDECIDED (the interval straddles `-tolerance`: the data cannot tell).

Only PROMOTE promotes; the other two keep the promoted model. The percentile interval is
two-sided at `confidence` (95 %: the lower end is the 2.5th percentile).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PROMOTE, REFUSE, UNDECIDED = "promote", "refuse", "undecided"
DEFAULT_TOLERANCE = 0.01  # on a metric in [0, 1] (PR-AUC, ROC-AUC): one point
DEFAULT_MIN_CASES = 10
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
METRICS = ("pr_auc", "roc_auc")


@dataclass(frozen=True)
class GateSettings:
    tolerance: float = DEFAULT_TOLERANCE
    min_cases: int = DEFAULT_MIN_CASES
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0  # the resampling's: the same rows and settings give the same decision

    def __post_init__(self) -> None:
        if not (isinstance(self.tolerance, int | float) and 0 <= self.tolerance < 1):
            raise ValueError(f"tolerance must be a number in [0, 1), not {self.tolerance!r}")
        if isinstance(self.min_cases, bool) or not isinstance(self.min_cases, int):
            raise ValueError(f"min_cases must be a whole number, not {self.min_cases!r}")
        if self.min_cases < 2:
            raise ValueError(f"min_cases must be at least 2, not {self.min_cases}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), not {self.confidence!r}")
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int):
            raise ValueError(f"resamples must be a whole number, not {self.resamples!r}")
        if self.resamples < 100:
            raise ValueError(f"resamples must be at least 100, not {self.resamples}")


@dataclass(frozen=True)
class GateDecision:
    decision: str  # PROMOTE, REFUSE or UNDECIDED
    reason: str  # one sentence a data scientist can act on
    metric: str
    candidate: float | None  # the metric on the rows, unweighted
    promoted: float | None
    difference: float | None  # candidate - promoted
    interval: tuple[float, float] | None  # of the difference
    tolerance: float
    confidence: float
    min_cases: int
    resamples: int
    cases: int  # cases holding a positive: what the evidence is counted in
    other_cases: int  # cases holding none
    rows: int
    unit: str  # what a positive case is, in words ("fraud cases", "customers who redeemed")
    other_unit: str  # and a case without a positive ("legitimate actors")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out


# -- weighted metrics --------------------------------------------------------------------------
class _Ranked:
    """One model's rows, arranged once for weighted PR-AUC and ROC-AUC (ties scored as one
    threshold step, as scikit-learn does). A replicate gives the weights of the positive rows
    and of the negative rows (in `flatnonzero(y == 1)` and `flatnonzero(y == 0)` order).

    Only the distinct scores that some positive row has are thresholds that matter: each
    negative row is counted at the first of them (from the top) that it reaches, so a replicate
    costs one pass over the rows and a cumulative sum over the positive scores, not over every
    distinct score."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        positive, negative = score[y == 1], score[y == 0]
        ascending = np.unique(positive)
        self.thresholds = len(ascending)  # positive scores, highest first
        # index, from the top, of the first threshold a score reaches (len: none)
        self.positive_bin = self.thresholds - np.searchsorted(ascending, positive, side="right")
        self.negative_bin = self.thresholds - np.searchsorted(ascending, negative, side="right")
        reached = self.negative_bin < self.thresholds
        highest_first = ascending[::-1]
        self.tied = np.flatnonzero(reached)[
            highest_first[self.negative_bin[reached]] == negative[reached]
        ]

    def _sums(self, w_pos: np.ndarray, w_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per threshold: the weight of the positives at it, and of the negatives at or above."""
        at = np.bincount(self.positive_bin, weights=w_pos, minlength=self.thresholds)
        above = np.bincount(self.negative_bin, weights=w_neg, minlength=self.thresholds + 1)
        return at, np.cumsum(above[: self.thresholds])

    def pr_auc(self, w_pos: np.ndarray, w_neg: np.ndarray) -> float:
        """Average precision: the precision at each threshold, weighted by the recall it adds."""
        at, false_positives = self._sums(w_pos, w_neg)
        total = at.sum()
        if total == 0:
            return float("nan")
        tp = np.cumsum(at)
        seen = tp + false_positives
        # a threshold no drawn row reaches adds no recall: its precision does not matter
        precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
        return float(np.sum(at / total * precision))

    def roc_auc(self, w_pos: np.ndarray, w_neg: np.ndarray) -> float:
        """The chance a positive outscores a negative (a tie counts half)."""
        at, at_or_above = self._sums(w_pos, w_neg)
        p, n = at.sum(), w_neg.sum()
        if p == 0 or n == 0:
            return float("nan")
        tied = np.bincount(
            self.negative_bin[self.tied], weights=w_neg[self.tied], minlength=self.thresholds
        )
        return float(np.sum(at * (n - at_or_above + 0.5 * tied)) / (p * n))


def metric_value(metric: str, y: np.ndarray, score: np.ndarray) -> float:
    """`metric` (pr_auc or roc_auc) of one model on the rows, every row weighted 1."""
    _check_metric(metric)
    y = np.asarray(y, dtype=np.float64)
    ranked = _Ranked(y, np.asarray(score, dtype=np.float64))
    return getattr(ranked, metric)(np.ones(int((y == 1).sum())), np.ones(int((y == 0).sum())))


# -- the decision ------------------------------------------------------------------------------
def decide(
    metric: str,
    y: np.ndarray,
    candidate: np.ndarray,
    promoted: np.ndarray,
    cases: np.ndarray,
    settings: GateSettings | None = None,
    unit: str = "positive cases",
    other_unit: str = "negative cases",
) -> GateDecision:
    """The gate's decision on rows labelled `y` (1 positive, 0 not), scored by the candidate and
    the promoted model, each row belonging to the case `cases` names (any hashable ids).
    `unit` and `other_unit` say in words what a case holding a positive, and one holding none,
    is (the reasons count them)."""
    settings = settings or GateSettings()
    _check_metric(metric)
    y = np.asarray(y, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    promoted = np.asarray(promoted, dtype=np.float64)
    ids = np.asarray(cases)
    if not len(y) == len(candidate) == len(promoted) == len(ids):
        raise ValueError(
            f"y, candidate, promoted and cases differ in length: "
            f"{len(y)}, {len(candidate)}, {len(promoted)}, {len(ids)}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    for name, scores in (("candidate", candidate), ("promoted", promoted)):
        if not np.isfinite(scores).all():
            raise ValueError(f"the {name} scores hold NaN or infinite values")

    _, case_of_row = np.unique(ids, return_inverse=True) if len(ids) else (ids, ids)
    case_count = int(case_of_row.max()) + 1 if len(ids) else 0
    case_positive = np.bincount(case_of_row, weights=y, minlength=case_count) > 0
    positive_cases = np.flatnonzero(case_positive)
    negative_cases = np.flatnonzero(~case_positive)

    def decision(kind: str, reason: str, **figures: Any) -> GateDecision:
        return GateDecision(
            decision=kind,
            reason=reason,
            metric=metric,
            candidate=figures.get("candidate"),
            promoted=figures.get("promoted"),
            difference=figures.get("difference"),
            interval=figures.get("interval"),
            tolerance=settings.tolerance,
            confidence=settings.confidence,
            min_cases=settings.min_cases,
            resamples=settings.resamples,
            cases=len(positive_cases),
            other_cases=len(negative_cases),
            rows=len(y),
            unit=unit,
            other_unit=other_unit,
        )

    point: dict[str, Any] = {}
    if len(positive_cases) and len(negative_cases):
        value = {"candidate": metric_value(metric, y, candidate)}
        value["promoted"] = metric_value(metric, y, promoted)
        point = {**value, "difference": value["candidate"] - value["promoted"]}
    if len(positive_cases) < settings.min_cases or len(negative_cases) < settings.min_cases:
        fewest = min(len(positive_cases), len(negative_cases))
        which = unit if len(positive_cases) <= len(negative_cases) else other_unit
        return decision(
            UNDECIDED,
            f"not enough cases to decide: {fewest} {which} in the held-out rows, the gate needs "
            f"at least {settings.min_cases} (a difference on so few is noise)",
            **point,
        )

    ranked = {"candidate": _Ranked(y, candidate), "promoted": _Ranked(y, promoted)}
    case_of_positive, case_of_negative = case_of_row[y == 1], case_of_row[y == 0]
    rng = np.random.default_rng(settings.seed)
    differences = np.empty(settings.resamples)
    for i in range(settings.resamples):
        drawn = np.concatenate(
            [
                rng.choice(positive_cases, len(positive_cases)),
                rng.choice(negative_cases, len(negative_cases)),
            ]
        )
        times = np.bincount(drawn, minlength=case_count).astype(np.float64)
        w_pos, w_neg = times[case_of_positive], times[case_of_negative]  # both models' rows
        differences[i] = getattr(ranked["candidate"], metric)(w_pos, w_neg) - getattr(
            ranked["promoted"], metric
        )(w_pos, w_neg)
    tail = (1 - settings.confidence) / 2
    low, high = (float(q) for q in np.quantile(differences, [tail, 1 - tail]))
    figures = {**point, "interval": (low, high)}
    said = (
        f"{metric} candidate - promoted = {point['difference']:+.4f}, "
        f"{settings.confidence:.0%} interval [{low:+.4f}, {high:+.4f}] over "
        f"{len(positive_cases)} {unit} ({settings.resamples} resamples)"
    )
    if low > -settings.tolerance:
        return decision(
            PROMOTE,
            f"{said}: its lower end is above -{settings.tolerance:g}, so the candidate is not "
            "worse than the promoted model by more than the tolerance",
            **figures,
        )
    if high < -settings.tolerance:
        return decision(
            REFUSE,
            f"{said}: the whole interval is below -{settings.tolerance:g}, so the candidate is "
            "worse than the promoted model by more than the tolerance",
            **figures,
        )
    return decision(
        UNDECIDED,
        f"{said}: the interval straddles -{settings.tolerance:g}, the tolerance, so the data "
        "cannot tell whether the candidate is worse",
        **figures,
    )


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"the gate compares {' or '.join(METRICS)}, not {metric!r}")
