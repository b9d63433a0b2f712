"""Uplift modelling for data scientists: who does an offer change?

A public, notebook-friendly API over Polars frames (one row per assignment: features, a 0/1
treatment column and a 0/1 outcome column):

    from models_ml import uplift
    model = uplift.fit_t_learner(train, features=["spend_90d", "segment"], treatment="treated",
                                 outcome="converted", categorical=["segment"], seed=0)
    scored = model.predict(test)                     # test + uplift, p_treated, p_control
    curve = uplift.qini_curve(scored, "uplift", "treated", "converted")   # a frame to plot
    q = uplift.qini_auc_score(scored["converted"], scored["uplift"], scored["treated"])
    noise = uplift.random_qini(scored, "treated", "converted", seeds=200)  # random rankings

The T-learner fits one LightGBM classifier per arm; uplift = P(outcome | treated, x) -
P(outcome | control, x). The Qini curve and coefficient follow the uplift literature's
conventions as scikit-uplift implements them (Radcliffe 2007): targeting the top n by uplift,
Q(n) = Y_T(n) - Y_C(n) · N_T(n) / N_C(n); ties form one step; the coefficient is the area
between the curve and the random line (0, 0)-(N, Q(N)), divided by the same area for the
perfect ranking (negative effects included), so 1 is perfect, 0 is random and a ranking that
puts the harmed first is negative. A figure alone says little on a few thousand assignments:
`random_qini` gives the distribution of the coefficient over random rankings of the same rows,
and `bootstrap_qini` an interval for a model's coefficient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from models_ml.ranking_metrics import Interval

T_LEARNER_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_boost_round": 100,
    "deterministic": True,
    "num_threads": 1,
    "force_row_wise": True,
    "verbose": -1,
}


class UpliftInputError(ValueError):
    """Data the uplift functions cannot use; the message names the column or problem."""


@dataclass
class TLearner:
    """Two classifiers, one per arm, over the same features (categorical ones as codes)."""

    treated: lgb.Booster
    control: lgb.Booster
    features: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical feature -> codes

    def predict(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` with `p_treated`, `p_control` and `uplift` (their difference) added."""
        treated, control = self.predict_matrix(
            feature_matrix(frame, self.features, self.categories)
        )
        return frame.with_columns(
            p_treated=pl.Series(treated, dtype=pl.Float64),
            p_control=pl.Series(control, dtype=pl.Float64),
            uplift=pl.Series(treated - control, dtype=pl.Float64),
        )

    def predict_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(outcome | treated) and P(outcome | control) for rows of `feature_matrix`."""
        threads = 2 if len(x) >= 200_000 else 1
        return self.treated.predict(x, num_threads=threads), self.control.predict(
            x, num_threads=threads
        )


def fit_t_learner(
    frame: pl.DataFrame,
    features: Sequence[str],
    treatment: str,
    outcome: str,
    *,
    categorical: Sequence[str] = (),
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> TLearner:
    """A T-learner fitted on `frame`: each arm needs both outcomes."""
    features = list(features)
    _check_binary(frame, [treatment, outcome])
    _require(frame, features)
    categories = {
        name: sorted(frame[name].cast(pl.String).drop_nulls().unique().to_list())
        for name in categorical
    }
    settings = {**T_LEARNER_PARAMS, **(params or {}), "seed": seed}
    rounds = settings.pop("num_boost_round")
    boosters = []
    for arm, name in ((1, "treated"), (0, "control")):
        rows = frame.filter(pl.col(treatment) == arm)
        if rows.height == 0 or rows[outcome].n_unique() < 2:
            raise UpliftInputError(
                f"the {name} arm ({treatment} = {arm}) has {rows.height} rows and needs both "
                f"outcomes in {outcome!r} to be fitted"
            )
        data = lgb.Dataset(
            feature_matrix(rows, features, categories),
            label=rows[outcome].cast(pl.Float64).to_numpy(),
            feature_name=features,
            categorical_feature=[f for f in features if f in categories],
            params={"verbose": -1},
        )
        boosters.append(lgb.train(settings, data, num_boost_round=rounds))
    return TLearner(boosters[0], boosters[1], features, categories)


def feature_matrix(
    frame: pl.DataFrame, features: Sequence[str], categories: dict[str, list[str]] | None = None
) -> np.ndarray:
    """Features as float64; a categorical feature becomes its value's index in `categories`
    (a value not seen in fitting is missing)."""
    categories = categories or {}
    columns = []
    for name in features:
        if name in categories:
            codes = {value: float(i) for i, value in enumerate(categories[name])}
            columns.append(
                pl.col(name)
                .cast(pl.String)
                .replace_strict(codes, default=None, return_dtype=pl.Float64)
            )
        else:
            columns.append(pl.col(name).cast(pl.Float64))
    return frame.select(columns).to_numpy()


# -- the Qini curve and coefficient ------------------------------------------------------------


def qini_points(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """(n targeted, Q(n)) at each distinct score from the highest down, starting at (0, 0):
    scikit-uplift's `qini_curve`."""
    y, u, t = _arrays(y_true, uplift, treatment)
    order = np.argsort(u, kind="mergesort")[::-1]
    y, u, t = y[order], u[order], t[order]
    ends = np.r_[np.nonzero(np.diff(u))[0], u.size - 1]
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    n_all = (ends + 1).astype(np.float64)
    n_c = n_all - n_t
    values = y_t - y_c * np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return np.r_[0.0, n_all], np.r_[0.0, values]


def perfect_qini_points(y_true: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The best possible curve (negative effects included): treated responders first, control
    responders last."""
    y, _, t = _arrays(y_true, np.zeros(len(y_true)), treatment)
    return qini_points(y, y * t - y * (1 - t), t)


def qini_auc_score(y_true: Any, uplift: Any, treatment: Any) -> float:
    """The Qini coefficient normalised as scikit-uplift's `qini_auc_score` (negative_effect=True):
    (area of the curve - area of the random line) / (the same for the perfect curve)."""
    x, q = qini_points(y_true, uplift, treatment)
    x_best, q_best = perfect_qini_points(y_true, treatment)
    baseline = x_best[-1] * q_best[-1] / 2
    best = np.trapezoid(q_best, x_best) - baseline
    if best == 0:
        return float("nan")  # no outcome at all, or arms that cannot be told apart
    return float((np.trapezoid(q, x) - baseline) / best)


def qini_curve(
    frame: pl.DataFrame, score: str, treatment: str, outcome: str, points: int = 101
) -> pl.DataFrame:
    """The Qini curve of `score` as a frame to plot: share of assignments targeted (0..1),
    incremental outcomes Q(n) for the score, for random targeting (the straight line) and for the
    perfect ranking, interpolated at `points` evenly spaced shares."""
    _check_binary(frame, [treatment, outcome])
    _require(frame, [score])
    y, t, s = (frame[c].cast(pl.Float64).to_numpy() for c in (outcome, treatment, score))
    x, q = qini_points(y, s, t)
    x_best, q_best = perfect_qini_points(y, t)
    share = np.linspace(0.0, 1.0, points)
    n = x[-1]
    return pl.DataFrame(
        {
            "share_targeted": share,
            "model": np.interp(share * n, x, q),
            "random": share * q[-1],
            "perfect": np.interp(share * n, x_best, q_best),
        }
    )


def random_qini(frame: pl.DataFrame, treatment: str, outcome: str, *, seeds: int = 200) -> Interval:
    """The Qini coefficient of random rankings of these rows over `seeds` seeds: its mean and
    the 2.5% and 97.5% quantiles. A model's coefficient inside this band is not told apart from
    targeting at random."""
    _check_binary(frame, [treatment, outcome])
    y = frame[outcome].cast(pl.Float64).to_numpy()
    t = frame[treatment].cast(pl.Float64).to_numpy()
    values = np.array(
        [qini_auc_score(y, np.random.default_rng(seed).random(len(y)), t) for seed in range(seeds)]
    )
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    low, high = np.quantile(values, [0.025, 0.975])
    return Interval(float(values.mean()), float(low), float(high))


def bootstrap_qini(
    frame: pl.DataFrame,
    score: str,
    treatment: str,
    outcome: str,
    *,
    replicates: int = 200,
    seed: int = 0,
    cluster: str | None = None,
) -> Interval:
    """The Qini coefficient of `score` with a bootstrap 95% interval (resampling rows, or whole
    `cluster`s such as customers when one customer has several assignments)."""
    _check_binary(frame, [treatment, outcome])
    y = frame[outcome].cast(pl.Float64).to_numpy()
    t = frame[treatment].cast(pl.Float64).to_numpy()
    s = frame[score].cast(pl.Float64).to_numpy()
    value = qini_auc_score(y, s, t)
    rng = np.random.default_rng(seed)
    draws = []
    for index in resample_indices(frame, replicates, rng, cluster):
        draws.append(qini_auc_score(y[index], s[index], t[index]))
    found = np.array([d for d in draws if not np.isnan(d)])
    if found.size == 0:
        return Interval(value, float("nan"), float("nan"))
    low, high = np.quantile(found, [0.025, 0.975])
    return Interval(value, float(low), float(high))


def resample_indices(
    frame: pl.DataFrame, replicates: int, rng: np.random.Generator, cluster: str | None
) -> list[np.ndarray]:
    """Row indices of each bootstrap replicate: rows drawn with replacement, or whole clusters."""
    if cluster is None:
        return [rng.integers(0, frame.height, frame.height) for _ in range(replicates)]
    codes = frame[cluster].cast(pl.String).rank("dense").cast(pl.Int64).to_numpy() - 1
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(codes.max() + 1))
    sizes = np.diff(np.r_[starts, len(codes)])
    out = []
    for _ in range(replicates):
        picked = rng.integers(0, len(sizes), len(sizes))
        out.append(np.concatenate([order[starts[c] : starts[c] + sizes[c]] for c in picked]))
    return out


def uplift_by_decile(
    frame: pl.DataFrame, score: str, treatment: str, outcome: str, bins: int = 10
) -> pl.DataFrame:
    """Per tenth of the rows by descending score: counts and outcome rates per arm and their
    difference (the observed uplift), the table behind a Qini curve."""
    _check_binary(frame, [treatment, outcome])
    ranked = frame.select(score, treatment, outcome).with_columns(
        bin=(pl.col(score).rank("ordinal", descending=True) - 1) * bins // pl.len()
    )
    return (
        ranked.group_by("bin")
        .agg(
            rows=pl.len(),
            treated=pl.col(treatment).sum(),
            rate_treated=pl.col(outcome).filter(pl.col(treatment) == 1).mean(),
            rate_control=pl.col(outcome).filter(pl.col(treatment) == 0).mean(),
            mean_score=pl.col(score).mean(),
        )
        .with_columns(observed_uplift=pl.col("rate_treated") - pl.col("rate_control"))
        .sort("bin")
    )


# -- checks ------------------------------------------------------------------------------------


def _arrays(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(y_true, dtype=np.float64)
    u = np.asarray(uplift, dtype=np.float64)
    t = np.asarray(treatment, dtype=np.float64)
    if not len(y) == len(u) == len(t):
        raise UpliftInputError(
            f"lengths differ: outcome {len(y)}, score {len(u)}, treatment {len(t)}"
        )
    for name, values in (("outcome", y), ("treatment", t)):
        if not np.isin(values, (0.0, 1.0)).all():
            raise UpliftInputError(f"{name} must be 0 or 1")
    if np.isnan(u).any():
        raise UpliftInputError("the score has missing values")
    return y, u, t


def _require(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UpliftInputError(f"the frame lacks column(s) {', '.join(missing)}")


def _check_binary(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    _require(frame, columns)
    for name in columns:
        values = set(frame[name].drop_nulls().cast(pl.Int64).unique().to_list())
        if frame[name].null_count() or not values <= {0, 1}:
            raise UpliftInputError(f"column {name!r} must hold 0 or 1 in every row")
