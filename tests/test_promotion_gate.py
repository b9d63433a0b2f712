"""The promotion gate's statistics (models_ml.promotion_gate): a paired bootstrap over cases,
decided on the interval of the difference against a stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models_ml.promotion_gate import (
    PROMOTE,
    REFUSE,
    UNDECIDED,
    GateSettings,
    _Ranked,
    decide,
    metric_value,
)

FAST = GateSettings(resamples=300)


def fraud_like(
    fraud_cases: int, legitimate: int, rows_per_case: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and case ids: `fraud_cases` cases of fraud attempts, `legitimate` actors of
    legitimate ones, `rows_per_case` attempts each."""
    y = np.r_[np.ones(fraud_cases * rows_per_case), np.zeros(legitimate * rows_per_case)]
    cases = np.repeat(np.arange(fraud_cases + legitimate), rows_per_case)
    order = np.random.default_rng(seed).permutation(len(y))
    return y[order], cases[order]


def scores(y: np.ndarray, cases: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A model's scores: the label blurred by noise of its own and of the case's (attempts of
    one case look alike, so a model is right or wrong about a case as a whole)."""
    rng = np.random.default_rng(seed)
    per_case = rng.normal(0, noise, cases.max() + 1)[cases]
    return y + per_case + rng.normal(0, noise / 2, len(y))


@pytest.mark.parametrize("metric", ["pr_auc", "roc_auc"])
def test_the_gate_metrics_equal_scikit_learn_with_ties(metric: str) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = rng.integers(0, 20, 500) / 20  # many ties
    expected = (average_precision_score if metric == "pr_auc" else roc_auc_score)(y, score)

    assert metric_value(metric, y, score) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", ["pr_auc", "roc_auc"])
def test_a_replicates_weighted_metric_equals_scikit_learn_with_those_sample_weights(
    metric: str,
) -> None:
    """What each bootstrap replicate computes: rows weighted by how often their case was drawn
    (zero included)."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 800)
    score = rng.integers(0, 40, 800) / 40
    weights = rng.integers(0, 4, 800).astype(float)
    expected = (average_precision_score if metric == "pr_auc" else roc_auc_score)(
        y, score, sample_weight=weights
    )

    ranked = _Ranked(y.astype(float), score)
    found = getattr(ranked, metric)(weights[y == 1], weights[y == 0])

    assert found == pytest.approx(expected, abs=1e-12)


def test_a_known_better_candidate_on_many_cases_is_promoted() -> None:
    y, cases = fraud_like(fraud_cases=80, legitimate=400)
    better, worse = scores(y, cases, 0.3, seed=1), scores(y, cases, 0.9, seed=2)

    gate = decide("pr_auc", y, better, worse, cases, FAST, unit="fraud cases")

    assert gate.decision == PROMOTE
    assert gate.interval is not None and gate.interval[0] > 0
    assert gate.cases == 80 and gate.other_cases == 400 and gate.rows == len(y)
    assert "80 fraud cases" in gate.reason and "not worse" in gate.reason


def test_a_known_worse_candidate_on_many_cases_is_refused() -> None:
    y, cases = fraud_like(fraud_cases=80, legitimate=400)
    better, worse = scores(y, cases, 0.3, seed=1), scores(y, cases, 0.9, seed=2)

    gate = decide("roc_auc", y, worse, better, cases, FAST)

    assert gate.decision == REFUSE
    assert gate.interval is not None and gate.interval[1] < -gate.tolerance
    assert gate.difference == pytest.approx(
        metric_value("roc_auc", y, worse) - metric_value("roc_auc", y, better)
    )


def test_equal_models_on_many_cases_are_within_the_tolerance_and_promoted() -> None:
    y, cases = fraud_like(fraud_cases=300, legitimate=1500)
    one = scores(y, cases, 0.5, seed=1)
    other = one + np.random.default_rng(9).normal(0, 0.01, len(y))  # a retrain's jitter

    gate = decide("pr_auc", y, other, one, cases, FAST)

    assert gate.decision == PROMOTE
    low, high = gate.interval or (np.nan, np.nan)
    assert -gate.tolerance < low <= 0 <= high < gate.tolerance


def test_three_fraud_cases_leave_the_gate_undecided_however_many_rows_they_hold() -> None:
    """The issue's example: PR-AUC 0.952 against 0.957 on three fraud cases."""
    y, cases = fraud_like(fraud_cases=3, legitimate=400, rows_per_case=200)
    candidate = scores(y, cases, 0.45, seed=4)
    promoted = scores(y, cases, 0.40, seed=5)

    gate = decide("pr_auc", y, candidate, promoted, cases, FAST, unit="fraud cases")

    assert gate.decision == UNDECIDED
    assert gate.reason.startswith("not enough cases to decide: 3 fraud cases")
    assert "at least 10" in gate.reason
    assert gate.interval is None and gate.rows == 80_600
    assert gate.candidate is not None and gate.promoted is not None  # the figures, still shown


def test_a_gain_that_lives_in_one_large_case_is_not_evidence() -> None:
    """Resampling rows would call this a clear win; resampling cases sees that it rests on one
    case of twelve, which a replicate may well leave out."""
    y, cases = fraud_like(fraud_cases=12, legitimate=200, rows_per_case=3)
    big = 10_000  # one more fraud case with many attempts
    y = np.r_[y, np.ones(big)]
    cases = np.r_[cases, np.full(big, cases.max() + 1)]
    promoted = scores(y, cases, 0.35, seed=6)
    candidate = promoted.copy()
    in_big_case = cases == cases.max()
    candidate[in_big_case] = 3.0  # perfect on the big case
    promoted[in_big_case] = np.random.default_rng(1).uniform(-1, 1, big)  # poor on it
    candidate[~in_big_case] -= np.random.default_rng(2).normal(0, 0.2, (~in_big_case).sum())

    by_row = decide("pr_auc", y, candidate, promoted, np.arange(len(y)), FAST)
    by_case = decide("pr_auc", y, candidate, promoted, cases, FAST)

    assert by_case.difference is not None and by_case.difference > 0.03
    assert by_row.decision == PROMOTE  # what a bootstrap over rows would have done
    assert by_case.decision == UNDECIDED and "straddles" in by_case.reason


def test_the_same_rows_and_settings_give_the_same_decision() -> None:
    y, cases = fraud_like(fraud_cases=30, legitimate=100)
    a, b = scores(y, cases, 0.6, seed=1), scores(y, cases, 0.6, seed=2)

    first = decide("pr_auc", y, a, b, cases, FAST)
    again = decide("pr_auc", y, a, b, cases, FAST)

    assert first == again


def test_the_tolerance_decides_between_promote_and_undecided() -> None:
    y, cases = fraud_like(fraud_cases=60, legitimate=300)
    promoted = scores(y, cases, 0.5, seed=1)
    candidate = scores(y, cases, 0.55, seed=2)  # a little worse, within a few points

    strict = decide("pr_auc", y, candidate, promoted, cases, GateSettings(0.0, resamples=300))
    loose = decide("pr_auc", y, candidate, promoted, cases, GateSettings(0.2, resamples=300))

    assert strict.decision != PROMOTE and loose.decision == PROMOTE
    assert strict.interval == loose.interval  # the tolerance moves the bar, not the interval


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tolerance": -0.1}, "tolerance must be a number in"),
        ({"tolerance": "0.1"}, "tolerance must be a number in"),
        ({"min_cases": 1}, "min_cases must be at least 2"),
        ({"min_cases": 2.5}, "min_cases must be a whole number"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"resamples": 10}, "resamples must be at least 100"),
    ],
)
def test_settings_out_of_range_are_refused_naming_the_field(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GateSettings(**settings)


def test_mismatched_or_broken_rows_are_refused_naming_the_problem() -> None:
    y, cases = fraud_like(fraud_cases=10, legitimate=20)
    good = scores(y, cases, 0.5, seed=1)
    broken = good.copy()
    broken[3] = np.nan

    with pytest.raises(ValueError, match="differ in length"):
        decide("pr_auc", y, good[:-1], good, cases)
    with pytest.raises(ValueError, match="candidate scores hold NaN"):
        decide("pr_auc", y, broken, good, cases)
    with pytest.raises(ValueError, match="y must hold only 0 and 1"):
        decide("pr_auc", y * 2, good, good, cases)
    with pytest.raises(ValueError, match="compares pr_auc or roc_auc, not 'ndcg'"):
        decide("ndcg", y, good, good, cases)
