"""models_ml.uplift, the data scientists' uplift API, and the ranking metrics with intervals:
a T-learner finds a planted heterogeneous effect; the Qini coefficient follows scikit-uplift;
random rankings give the noise a figure is read against."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models_ml import uplift
from models_ml.ranking_metrics import average_precision, compare, ndcg_at_k, roc_auc


def experiment(rows: int = 4_000, seed: int = 0) -> pl.DataFrame:
    """A randomised experiment where the offer works only on young customers in the city:
    they convert at 0.55 treated and 0.15 held out; everyone else at 0.25 either way (and the
    old convert more on their own, so a propensity ranking is no uplift ranking)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    city = rng.choice(["city", "village"], rows)
    treated = rng.integers(0, 2, rows)
    responds = (age < 35) & (city == "city")
    base = np.where(age > 60, 0.35, 0.25)
    chance = np.where(responds, np.where(treated == 1, 0.55, 0.15), base)
    return pl.DataFrame(
        {
            "age": age,
            "city": city,
            "spend": rng.gamma(2.0, 30.0, rows),  # noise
            "treated": treated,
            "converted": (rng.random(rows) < chance).astype(np.int64),
            "responds": responds,
        }
    )


def test_the_t_learner_ranks_the_responding_segment_first() -> None:
    train, test = experiment(seed=1), experiment(seed=2)

    model = uplift.fit_t_learner(
        train, ["age", "city", "spend"], "treated", "converted", categorical=["city"], seed=0
    )
    scored = model.predict(test)

    share = scored["responds"].mean()  # about one row in seven responds
    top = scored.sort("uplift", descending=True).head(int(scored.height * share))
    assert top["responds"].mean() > 0.85
    by_segment = scored.group_by("responds").agg(pl.col("uplift").mean())
    effect = dict(by_segment.iter_rows())
    assert effect[True] > 0.25 and abs(effect[False]) < 0.08
    qini = uplift.qini_auc_score(scored["converted"], scored["uplift"], scored["treated"])
    noise = uplift.random_qini(scored, "treated", "converted", seeds=100)
    assert qini > 2 * noise.high > 0  # well above what random rankings of these rows give


def test_the_qini_coefficient_and_curve_follow_scikit_uplift_ties_included() -> None:
    from sklift.metrics import qini_auc_score, qini_curve  # the reference implementation

    rng = np.random.default_rng(3)
    for rows in (60, 2_000):
        t = rng.integers(0, 2, rows)
        score = np.round(rng.random(rows), 1)  # many ties
        y = (rng.random(rows) < 0.2 + 0.3 * t * (score > 0.5)).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            expected = qini_auc_score(y, score, t)
            x_ref, q_ref = qini_curve(y, score, t)

        x, q = uplift.qini_points(y, score, t)

        assert uplift.qini_auc_score(y, score, t) == pytest.approx(expected)
        np.testing.assert_allclose(x, x_ref)
        np.testing.assert_allclose(q, q_ref)


def test_a_constant_score_is_the_random_line_and_the_perfect_ranking_scores_one() -> None:
    frame = experiment(rows=1_000)
    y, t = frame["converted"].to_numpy(), frame["treated"].to_numpy()

    assert uplift.qini_auc_score(y, np.zeros(len(y)), t) == pytest.approx(0.0)
    assert uplift.qini_auc_score(y, y * t - y * (1 - t), t) == pytest.approx(1.0)


def test_the_qini_curve_frame_runs_from_nothing_targeted_to_everyone() -> None:
    frame = experiment(rows=1_000).with_columns(score=pl.col("responds").cast(pl.Float64))

    curve = uplift.qini_curve(frame, "score", "treated", "converted")

    assert curve.columns == ["share_targeted", "model", "random", "perfect"]
    assert curve["share_targeted"][0] == 0.0 and curve["share_targeted"][-1] == 1.0
    assert curve["model"][0] == 0.0
    assert curve["model"][-1] == pytest.approx(curve["random"][-1])
    assert (curve["model"] - curve["random"]).max() > 5  # the responders targeted first


def test_a_bootstrap_interval_surrounds_the_coefficient_and_deciles_show_the_effect() -> None:
    frame = experiment(rows=2_000).with_columns(score=pl.col("responds").cast(pl.Float64))

    interval = uplift.bootstrap_qini(frame, "score", "treated", "converted", replicates=100)
    deciles = uplift.uplift_by_decile(frame, "score", "treated", "converted", bins=5)

    assert interval.low < interval.value < interval.high
    assert deciles["observed_uplift"][0] > 0.25 > deciles["observed_uplift"][-1]


def test_the_uplift_api_refuses_bad_columns_naming_them() -> None:
    frame = experiment(rows=200)

    with pytest.raises(uplift.UpliftInputError, match="'treated'"):
        uplift.fit_t_learner(frame.with_columns(treated=pl.lit(2)), ["age"], "treated",
                             "converted")  # fmt: skip
    with pytest.raises(uplift.UpliftInputError, match="income"):
        uplift.fit_t_learner(frame, ["income"], "treated", "converted")
    with pytest.raises(uplift.UpliftInputError, match="control arm"):
        uplift.fit_t_learner(frame.with_columns(treated=pl.lit(1)), ["age"], "treated",
                             "converted")  # fmt: skip


# -- ranking metrics ---------------------------------------------------------------------------


def test_ranking_metrics_equal_scikit_learns_ties_and_weights_included() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500), 1)
    weights = rng.integers(0, 3, 500).astype(float)

    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    assert roc_auc(y, score, weights) == pytest.approx(
        roc_auc_score(y, score, sample_weight=weights)
    )
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    assert average_precision(y, score, weights) == pytest.approx(
        average_precision_score(y, score, sample_weight=weights)
    )


def test_ndcg_rewards_putting_the_redeemed_offer_first_and_scores_ties_as_random() -> None:
    groups = np.array(["a", "a", "a", "b", "b"])
    y = np.array([0, 1, 0, 1, 0])

    best = ndcg_at_k(groups, y, np.array([0.1, 0.9, 0.2, 0.8, 0.1]), 3)
    worst = ndcg_at_k(groups, y, np.array([0.9, 0.1, 0.8, 0.1, 0.8]), 3)
    tied = ndcg_at_k(groups, y, np.zeros(5), 3)

    assert best == pytest.approx(1.0)
    assert worst < tied < best
    assert tied == pytest.approx(np.mean([(1 + 1 / np.log2(3) + 0.5) / 3,
                                          (1 + 1 / np.log2(3)) / 2]))  # fmt: skip


def test_every_metric_comes_with_an_interval_and_a_lift_over_each_baseline() -> None:
    rng = np.random.default_rng(5)
    customers = rng.integers(0, 300, 3_000)
    y = rng.integers(0, 2, 3_000)
    good = y + rng.random(3_000)

    found = compare(y, customers, {"model": good, "random": np.zeros(3_000), "same": good},
                    model="model", k=3, replicates=50)  # fmt: skip

    for metric in ("roc_auc", "pr_auc", "ndcg_at_3"):
        assert found[f"{metric}_ci95_low"] <= found[metric] <= found[f"{metric}_ci95_high"]
        assert found[f"{metric}_lift_over_random_ci95_low"] > 0
        assert found[f"{metric}_lift_over_same_ci95_low"] == 0.0
        assert found[f"{metric}_lift_over_same_ci95_high"] == 0.0
    assert found["roc_auc_random"] == 0.5
