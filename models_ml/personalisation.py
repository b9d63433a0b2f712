"""Reward personalisation: who is likely to redeem which offer, and whom an offer changes.

- Propensity: a LightGBM classifier over past offers (each `voucher_published` to a customer),
  with customer, offer and context features as of the publication (personalisation_features)
  and label 1 when the voucher was redeemed (and not rolled back) within its validity, at most
  `label_days` days (14) and never after the campaign ends.
- Uplift (T-learner): in campaigns with a control group, each publication is a treated
  assignment and each `customer_held_out` a control one; the outcome is any order within the
  same horizon. One classifier per arm; uplift = P(order | treated) - P(order | held out), with
  features as of the assignment.
- Next best offers: every customer * every campaign offerable at `as_of`, scored by both, ranked
  by `score = propensity + uplift_weight * uplift` (both are probabilities of the same horizon,
  so the sum reads "chance the offer is used, plus the order it adds"); uplift is 0 when no
  campaign in the training window had a control group.

Metrics come from a time split of the window: the model is fitted on offers whose outcome was
known before the split time and scored on offers published after it, against three baselines
(random, the campaign's historical redemption rate, the customer's own past redemption rate).
The returned model is then refitted on every offer of the window whose outcome is known.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from models_ml.personalisation_features import (
    CATEGORICAL_VOCAB,
    CHANNELS,
    CONTEXT_FEATURES,
    OFFER_FEATURES,
    EventTables,
    PersonalisationInputError,
    Snapshot,
    build_tables,
    customer_feature_names,
    customer_features,
    customer_snapshot,
    labelled_offers,
    offer_features,
    uplift_assignments,
)

LABEL_DAYS = 14
TEST_SHARE = 0.3  # the later share of the window's offers held out for the metrics
NDCG_K = 3
UPLIFT_WEIGHT = 1.0
MIN_ARM_ROWS = 30  # fewer assignments in an arm than this: no uplift model

PROPENSITY_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_boost_round": 200,
}
UPLIFT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_boost_round": 100,
}
# Same data, same seed, same model bytes: one thread, row-wise histograms, deterministic mode.
FIXED_PARAMS: dict[str, Any] = {
    "deterministic": True,
    "num_threads": 1,
    "force_row_wise": True,
    "verbose": -1,
}
# Scoring only: each row is scored on its own, so the results are the same on any number.
PREDICT_THREADS = 2
NBO_COLUMNS = {
    "customer_id": pl.String,
    "rank": pl.Int64,
    "campaign_id": pl.String,
    "channel": pl.String,
    "propensity": pl.Float64,
    "uplift": pl.Float64,
    "score": pl.Float64,
    "as_of": pl.Datetime("us", "UTC"),
}


@dataclass
class PersonalisationModel:
    """Everything scoring needs: the fitted boosters and the vocabularies they were fitted with."""

    propensity: lgb.Booster
    treated: lgb.Booster | None  # P(order in horizon | offer), None without control groups
    control: lgb.Booster | None  # P(order in horizon | held out)
    features: list[str]
    uplift_features: list[str]
    categories: tuple[str, ...]
    label_days: int
    uplift_weight: float
    popularity: dict[str, float]  # campaign → smoothed redemption rate in the training offers
    shape_popularity: dict[str, float]  # the same, per offer shape (see _shape)
    base_rate: float
    campaign_effect: dict[str, float] = field(default_factory=dict)  # observed uplift per campaign
    base_effect: float = 0.0

    def predict_propensity(self, frame: pl.DataFrame) -> np.ndarray:
        return self.propensity.predict(_matrix(frame, self.features), num_threads=PREDICT_THREADS)

    def predict_uplift(self, frame: pl.DataFrame) -> np.ndarray | None:
        if self.treated is None or self.control is None:
            return None
        x = _matrix(frame, self.uplift_features)
        treated = self.treated.predict(x, num_threads=PREDICT_THREADS)
        return treated - self.control.predict(x, num_threads=PREDICT_THREADS)


# -- public API --------------------------------------------------------------------------------


def train_personalisation(
    events: pl.DataFrame, first: date, last: date, seed: int
) -> tuple[PersonalisationModel, dict[str, Any]]:
    """Fit the propensity and uplift models on the offers published from `first` to `last`.

    Pass the events up to `last` including the history before `first`: customer features and
    campaign definitions come from it. Returns the model and the registry card fields.
    """
    _check_window(first, last)
    tables = build_tables(_until(events, last))
    offers = _window_offers(tables, first, last, LABEL_DAYS)
    split_at = _split_time(offers)
    # Features once per offer (and assignment), then sliced: a row's features depend only on its
    # customer and moment, not on which part of the split it falls in.
    frame = _offer_frame(tables, offers)
    train = frame.filter(
        _mask(offers, (pl.col("at") < split_at) & (pl.col("horizon_end") <= split_at))
    )
    test = frame.filter(_mask(offers, pl.col("at") >= split_at))
    _check_classes(train, "label", f"the training part (offers before {split_at:%Y-%m-%d %H:%M})")
    _check_classes(test, "label", f"the held-out part (offers from {split_at:%Y-%m-%d %H:%M})")

    features = _feature_names(tables.categories)
    uplift_features = [f for f in features if f != "offer_channel"]
    # The uplift model gets its own split: its assignments come in other batches than the offers.
    assignments = _window_assignments(tables, first, last, LABEL_DAYS)
    uplift_split_at = _uplift_split_time(assignments)
    arms = _assignment_frame(tables, assignments)
    uplift_train, uplift_test = arms.clear(), arms.clear()
    if uplift_split_at is not None:
        uplift_train = arms.filter(
            _mask(
                assignments,
                (pl.col("at") < uplift_split_at) & (pl.col("horizon_end") <= uplift_split_at),
            )
        )
        uplift_test = arms.filter(_mask(assignments, pl.col("at") >= uplift_split_at))
    held_out_model = _fit(tables.categories, train, uplift_train, features, uplift_features, seed)
    metrics = _metrics(held_out_model, test, uplift_test)
    metrics["train_offers"] = float(train.height)

    model = _fit(tables.categories, frame, arms, features, uplift_features, seed)
    fingerprint = hashlib.sha256(
        frame.select("customer_id", "at", "campaign_id", *features, "label").write_csv().encode()
    ).hexdigest()
    card = {
        "training_window": {"from": first.isoformat(), "to": last.isoformat()},
        "features": features,
        "params": {
            "propensity": PROPENSITY_PARAMS,
            "uplift": {**UPLIFT_PARAMS, "learner": "two-model (T-learner)"},
            "fixed": FIXED_PARAMS,
            "label": f"voucher redeemed (not rolled back) within its validity, at most {LABEL_DAYS} days",
            "uplift_outcome": f"any order within the campaign's horizon (validity, at most {LABEL_DAYS} days)",
            "split_at": split_at.isoformat(),
            "uplift_split_at": uplift_split_at.isoformat() if uplift_split_at else None,
            "test_share": TEST_SHARE,
            "ndcg_k": NDCG_K,
            "ranking_score": f"propensity + {UPLIFT_WEIGHT} * uplift",
            "refit": "on every offer of the window whose outcome is known",
            "uplift_model": model.treated is not None,
        },
        "seed": seed,
        "metrics": metrics,
        "primary_metric": "roc_auc",
        "data_fingerprint": fingerprint,
    }
    return model, card


def evaluate_personalisation(
    model: PersonalisationModel, events: pl.DataFrame, first: date, last: date
) -> dict[str, float]:
    """The model's metrics on the offers (and assignments) from `first` to `last`."""
    _check_window(first, last)
    tables = build_tables(_until(events, last), categories=model.categories)
    offers = _window_offers(tables, first, last, model.label_days)
    _check_classes(offers, "label", f"the offers from {first} to {last}")
    assignments = _window_assignments(tables, first, last, model.label_days)
    return _metrics(model, _offer_frame(tables, offers), _assignment_frame(tables, assignments))


def next_best_offers(
    model: PersonalisationModel,
    events: pl.DataFrame | pl.LazyFrame,
    as_of: datetime,
    top_k: int = 3,
    orders: pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """Per customer, the `top_k` campaigns offerable at `as_of`, ranked by `score`.

    Offerable: the campaign is active at `as_of` (status and active window), reaches customers
    (a distribution with channels) and the customer consents to one of its channels (the first
    in the campaign's order is the one given), holds no unexpired voucher of it, has not had
    one already when it is a promotion (sent once per customer), and is new when the campaign is
    for new customers only. Columns: customer_id, rank (1 = best), campaign_id,
    channel, propensity, uplift (null without an uplift model), score, as_of.

    `events` may be a lazy scan of the lake (only what is used is read); `orders`, the orders
    already decoded (`personalisation_features.decode_orders`), when they are kept elsewhere.
    """
    if as_of.tzinfo is None:
        raise PersonalisationInputError("as_of needs a time zone (UTC)")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise PersonalisationInputError(f"top_k must be a positive integer, not {top_k!r}")
    as_of = as_of.astimezone(UTC)
    stamp = as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # One group-by per customer as of the moment, not the training path's as-of joins: every
    # customer is scored at the same moment, so running totals per event are not needed.
    snapshot = customer_snapshot(events, as_of, model.categories, orders=orders)
    if snapshot.campaigns.height == 0:
        raise PersonalisationInputError(
            f"no campaign_created events before {stamp}: pass the ledger's history up to as_of"
        )
    campaigns = _offerable_campaigns(snapshot.campaigns, snapshot.statuses, as_of)
    if snapshot.profile.height == 0:
        raise PersonalisationInputError(f"no customers known before {stamp}")
    if campaigns.height == 0:
        return pl.DataFrame(schema=NBO_COLUMNS)

    # The offerable pairs from the few columns that decide them; the features joined after.
    deciding = ["customer_id", *[f"consent_{c}" for c in CHANNELS], "orders_total"]
    pairs = snapshot.profile.select(deciding).join(
        campaigns.select("campaign_id", "channels", "new_customers_only"), how="cross"
    )
    pairs = pairs.with_columns(channel=_first_consented_channel()).filter(
        pl.col("channel").is_not_null()
        & ~((pl.col("new_customers_only") == 1) & (pl.col("orders_total") > 0))
    )
    holding = _already_offered(snapshot, as_of, model.label_days)
    pairs = pairs.join(
        holding, on=["customer_id", "campaign_id"], how="anti", maintain_order="left"
    ).select("customer_id", "campaign_id", "channel")
    if pairs.height == 0:
        return pl.DataFrame(schema=NBO_COLUMNS)
    # sorted while narrow: the joins after keep this order
    pairs = pairs.sort(["customer_id", "campaign_id"]).join(
        snapshot.profile, on="customer_id", how="left", maintain_order="left"
    )
    frame = offer_features(pairs, snapshot.campaigns)
    propensity = model.predict_propensity(frame)
    uplift = model.predict_uplift(frame)
    scored = frame.select("customer_id", "campaign_id", "channel").with_columns(
        propensity=pl.Series(propensity, dtype=pl.Float64),
        uplift=pl.Series(uplift, dtype=pl.Float64)
        if uplift is not None
        else pl.lit(None, pl.Float64),
    )
    scored = scored.with_columns(
        score=pl.col("propensity") + model.uplift_weight * pl.col("uplift").fill_null(0.0)
    ).sort(["customer_id", "score", "campaign_id"], descending=[False, True, False])
    return (
        scored.with_columns(rank=pl.int_range(1, pl.len() + 1).over("customer_id").cast(pl.Int64))
        .filter(pl.col("rank") <= top_k)
        .with_columns(as_of=pl.lit(as_of).cast(pl.Datetime("us", "UTC")))
        .select(list(NBO_COLUMNS))
    )


# -- metrics -----------------------------------------------------------------------------------


def ndcg_at_k(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean NDCG@k over the groups with two or more items and at least one positive.

    Ties are scored by their expectation over random tie-breaking (each tied item gets the mean
    discount of the positions the tie spans), so a constant score gives the random baseline.
    One pass of window expressions, not a loop over groups: there are 100,000s at scale.
    """

    def discount(position: pl.Expr) -> pl.Expr:
        return pl.when(position < k).then(1 / (position + 2).cast(pl.Float64).log(2)).otherwise(0.0)

    frame = pl.DataFrame(
        {"g": groups, "y": labels.astype(np.float64), "s": scores.astype(np.float64)}
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
    if per_group.height == 0:
        return float("nan")
    return float((per_group["gain"] / per_group["ideal"]).mean())  # type: ignore[arg-type]


def qini_coefficient(scores: np.ndarray, treated: np.ndarray, outcome: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting line, both scaled to [0, 1] * share.

    Targeting the top x of customers by score, Q(x) = (Y_T - Y_C * N_T / N_C) / N: incremental
    conversions, as a share of everyone, that the treated among them gained over the held-out
    ones. The coefficient is ∫ (Q(x) - x * Q(1)) dx; random targeting scores 0, positive means
    the ranking puts the customers the offer changes first. Tied scores are one step (their
    expected curve), so a constant score is exactly the random line.
    """
    order = np.argsort(-scores, kind="stable")
    s, t, y = scores[order], treated[order].astype(np.float64), outcome[order].astype(np.float64)
    n = len(s)
    if n == 0 or t.sum() == 0 or t.sum() == n:
        return float("nan")
    ends = np.r_[np.nonzero(np.diff(s))[0], n - 1]  # last index of each tie group
    n_t, y_t = np.cumsum(t)[ends], np.cumsum(y * t)[ends]
    n_c, y_c = (ends + 1) - n_t, np.cumsum(y * (1 - t))[ends]
    q = (y_t - y_c * np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)) / n
    x = np.r_[0.0, (ends + 1) / n]
    q = np.r_[0.0, q]
    curve = float(np.sum((x[1:] - x[:-1]) * (q[1:] + q[:-1]) / 2))
    return curve - q[-1] / 2


def _metrics(
    model: PersonalisationModel, frame: pl.DataFrame, arms: pl.DataFrame
) -> dict[str, float]:
    """On offer rows (`_offer_frame`) and assignment rows (`_assignment_frame`)."""
    y = frame["label"].to_numpy()
    groups = frame["customer_id"].to_numpy()
    scorers = {
        "": model.predict_propensity(frame),
        "_random": np.zeros(len(y)),
        "_popularity": _popularity(model, frame),
        "_own_history": frame["redeem_rate"].to_numpy(),
    }
    metrics: dict[str, float] = {}
    for suffix, scores in scorers.items():
        metrics[f"roc_auc{suffix}"] = float(roc_auc_score(y, scores))
        metrics[f"pr_auc{suffix}"] = float(average_precision_score(y, scores))
        metrics[f"ndcg_at_{NDCG_K}{suffix}"] = ndcg_at_k(groups, y, scores, NDCG_K)
    metrics["test_offers"] = float(len(y))
    metrics["test_redemption_rate"] = float(y.mean())
    metrics.update(_uplift_metrics(model, arms))
    return {
        name: round(float(value), 6) for name, value in metrics.items() if not math.isnan(value)
    }


def _uplift_metrics(model: PersonalisationModel, frame: pl.DataFrame) -> dict[str, float]:
    treated_n = int(frame["treated"].sum()) if frame.height else 0
    if treated_n == 0 or treated_n == frame.height:
        return {}
    t, y = frame["treated"].to_numpy(), frame["converted"].to_numpy()
    effect = frame["campaign_id"].replace_strict(
        model.campaign_effect, default=model.base_effect, return_dtype=pl.Float64
    )
    scorers = {
        "_random": np.zeros(len(y)),
        "_popularity": effect.to_numpy(),
        "_own_history": frame["redeem_rate"].to_numpy(),
        "_propensity": model.predict_propensity(frame),
    }
    uplift = model.predict_uplift(frame)
    if uplift is not None:
        scorers[""] = uplift
    metrics = {
        f"qini_coefficient{suffix}": qini_coefficient(s, t, y) for suffix, s in scorers.items()
    }
    metrics["qini_random"] = metrics.pop("qini_coefficient_random")
    metrics["uplift_test_assignments"] = float(len(y))
    metrics["uplift_test_observed_ate"] = float(y[t == 1].mean() - y[t == 0].mean())
    return metrics


def _popularity(model: PersonalisationModel, frame: pl.DataFrame) -> np.ndarray:
    """The campaign's redemption rate in the training offers; for a campaign not seen there, the
    rate of the campaigns with the same offer (a monthly promotion's next edition), else overall."""
    by_shape = frame["shape"].replace_strict(
        model.shape_popularity, default=model.base_rate, return_dtype=pl.Float64
    )
    by_campaign = frame["campaign_id"].replace_strict(
        model.popularity, default=None, return_dtype=pl.Float64
    )
    return by_campaign.fill_null(by_shape).to_numpy()


# -- fitting -----------------------------------------------------------------------------------


def _fit(
    categories: tuple[str, ...],
    frame: pl.DataFrame,
    arms: pl.DataFrame,
    features: list[str],
    uplift_features: list[str],
    seed: int,
) -> PersonalisationModel:
    """Fitted on offer rows (`_offer_frame`) and assignment rows (`_assignment_frame`)."""
    propensity = _booster(frame, features, "label", PROPENSITY_PARAMS, seed)
    base_rate = float(frame["label"].mean())  # type: ignore[arg-type]
    # Smoothed towards the overall rate, so a campaign with a handful of offers is not 0 or 1.
    per_campaign = (
        frame.group_by("campaign_id").agg(n=pl.len(), r=pl.col("label").sum()).sort("campaign_id")
    )
    popularity = {c: (r + 10 * base_rate) / (n + 10) for c, n, r in per_campaign.iter_rows()}
    per_shape = (frame.group_by("shape").agg(n=pl.len(), r=pl.col("label").sum())).sort("shape")
    shape_popularity = {c: (r + 10 * base_rate) / (n + 10) for c, n, r in per_shape.iter_rows()}
    treated = control = None
    campaign_effect: dict[str, float] = {}
    base_effect = 0.0
    if arms.height:
        t_rows, c_rows = arms.filter(pl.col("treated") == 1), arms.filter(pl.col("treated") == 0)
        if _fittable(t_rows) and _fittable(c_rows):
            treated = _booster(t_rows, uplift_features, "converted", UPLIFT_PARAMS, seed)
            control = _booster(c_rows, uplift_features, "converted", UPLIFT_PARAMS, seed)
        rates = (
            arms.group_by("campaign_id", "treated")
            .agg(pl.col("converted").mean())
            .sort("campaign_id")
        )
        wide = rates.pivot("treated", index="campaign_id", values="converted")
        if "0" in wide.columns and "1" in wide.columns:
            campaign_effect = {
                c: float(a - b)
                for c, b, a in wide.select("campaign_id", "0", "1").drop_nulls().iter_rows()
            }
            base_effect = float(t_rows["converted"].mean() - c_rows["converted"].mean())  # type: ignore[operator]
    return PersonalisationModel(
        propensity=propensity,
        treated=treated,
        control=control,
        features=features,
        uplift_features=uplift_features,
        categories=categories,
        label_days=LABEL_DAYS,
        uplift_weight=UPLIFT_WEIGHT,
        popularity=popularity,
        shape_popularity=shape_popularity,
        base_rate=base_rate,
        campaign_effect=campaign_effect,
        base_effect=base_effect,
    )


def _fittable(rows: pl.DataFrame) -> bool:
    return rows.height >= MIN_ARM_ROWS and rows["converted"].n_unique() == 2


def _booster(
    frame: pl.DataFrame, features: list[str], label: str, params: dict[str, Any], seed: int
) -> lgb.Booster:
    settings = {k: v for k, v in params.items() if k != "num_boost_round"}
    settings.update(FIXED_PARAMS, seed=seed)
    categorical = [f for f in features if f in CATEGORICAL_VOCAB or f == "favourite_category"]
    data = lgb.Dataset(
        _matrix(frame, features),
        label=frame[label].to_numpy().astype(np.float64),
        feature_name=features,
        categorical_feature=categorical,
        free_raw_data=True,
        params={"verbose": -1},
    )
    return lgb.train(settings, data, num_boost_round=params["num_boost_round"])


def _matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    return frame.select([pl.col(f).cast(pl.Float64) for f in features]).to_numpy()


def _feature_names(categories: tuple[str, ...]) -> list[str]:
    return [
        *customer_feature_names(categories),
        *OFFER_FEATURES,
        *CONTEXT_FEATURES,
    ]


# -- rows --------------------------------------------------------------------------------------


def _mask(rows: pl.DataFrame, condition: pl.Expr) -> pl.Series:
    return rows.select(condition.alias("mask"))["mask"]


def _offer_frame(tables: EventTables, offers: pl.DataFrame) -> pl.DataFrame:
    """Offer rows (customer_id, at, campaign_id, channel, label) with every feature."""
    profile = customer_features(tables, offers.select("customer_id", "at"))
    rows = pl.concat([offers.select("campaign_id", "channel", "label"), profile], how="horizontal")
    return offer_features(rows, tables.campaigns)


def _assignment_frame(tables: EventTables, assignments: pl.DataFrame) -> pl.DataFrame:
    profile = customer_features(tables, assignments.select("customer_id", "at"))
    rows = pl.concat(
        [
            assignments.select("campaign_id", "treated", "converted").with_columns(
                channel=pl.lit(None, pl.String)
            ),
            profile,
        ],
        how="horizontal",
    )
    return offer_features(rows, tables.campaigns)


def _window_offers(tables: EventTables, first: date, last: date, label_days: int) -> pl.DataFrame:
    start, end = _bounds(first, last)
    offers = labelled_offers(tables, label_days).filter(
        (pl.col("at") >= start) & (pl.col("at") < end) & (pl.col("horizon_end") <= tables.end)
    )
    if offers.height == 0:
        raise PersonalisationInputError(
            f"no offers (voucher_published to a customer) from {first} to {last} whose outcome is "
            f"known by the last event ({tables.end:%Y-%m-%d %H:%M}): widen the window"
        )
    return offers


def _window_assignments(
    tables: EventTables, first: date, last: date, label_days: int
) -> pl.DataFrame:
    start, end = _bounds(first, last)
    return uplift_assignments(tables, label_days).filter(
        (pl.col("at") >= start) & (pl.col("at") < end) & (pl.col("horizon_end") <= tables.end)
    )


def _split_time(offers: pl.DataFrame) -> datetime:
    """The publication time before which the first (1 - TEST_SHARE) of the offers fall."""
    times = offers["at"].sort()
    split_at = times[min(len(times) - 1, int(len(times) * (1 - TEST_SHARE)))]
    if split_at == times[0]:
        raise PersonalisationInputError(
            "all the window's offers were published at one time: a time split needs offers "
            "published at two or more times"
        )
    return split_at


def _uplift_split_time(assignments: pl.DataFrame) -> datetime | None:
    """As `_split_time`, for the treatment assignments; None when there are none to split."""
    if assignments.height == 0 or assignments["at"].n_unique() < 2:
        return None
    times = assignments["at"].sort()
    return times[min(len(times) - 1, int(len(times) * (1 - TEST_SHARE)))]


def _offerable_campaigns(
    campaigns: pl.DataFrame, statuses: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    status = (
        statuses.filter(pl.col("at") < as_of)
        .group_by("campaign_id")
        .agg(status=pl.col("status").last())
    )
    return (
        campaigns.join(status, on="campaign_id", how="inner")
        .filter(
            (pl.col("status") == "active")
            & (pl.col("active_from").is_null() | (pl.col("active_from") <= as_of))
            & (pl.col("active_until").is_null() | (pl.col("active_until") > as_of))
            & pl.col("distribution_mode").is_not_null()
            & (pl.col("channels").list.len() > 0)
            & pl.col("voucher_kind").is_in(["unique", "gift"])
        )
        .sort("campaign_id")
    )


def _already_offered(snapshot: Snapshot, as_of: datetime, label_days: int) -> pl.DataFrame:
    """(customer, campaign) pairs not to offer again: the customer holds a voucher of it still
    valid and unused, or it is a promotion (one decision per customer) that already sent the
    customer a voucher or held them out (a promotion's held-out customers are its control
    group: offering it to them later would spoil the comparison)."""
    valid = snapshot.campaigns.select("campaign_id", "valid_days", "distribution_mode")
    return (
        snapshot.decided.filter(pl.col("at") < as_of)
        .join(valid, on="campaign_id", how="left")
        .filter(
            (pl.col("distribution_mode") == "promotion")
            | (
                ~pl.col("voucher_id").is_in(snapshot.redeemed)
                & (
                    pl.col("at")
                    + pl.duration(days=pl.col("valid_days").fill_null(float(label_days)))
                    > as_of
                )
            )
        )
        .select("customer_id", "campaign_id")
        .unique()
    )


def _first_consented_channel() -> pl.Expr:
    """The first of the campaign's channels (in its order) the customer consents to."""
    checks = [
        pl.when(
            pl.col("channels").list.get(i, null_on_oob=True).eq(name)
            & pl.col(f"consent_{name}").eq(1.0)
        ).then(pl.lit(name))
        for i in range(len(CHANNELS))
        for name in CHANNELS
    ]
    return pl.coalesce(checks)


# -- input checks ------------------------------------------------------------------------------


def _until(events: pl.DataFrame, last: date) -> pl.DataFrame:
    _require_columns(events, ("occurred_at",))
    end = (last + timedelta(days=1)).isoformat()
    events = events.filter(pl.col("occurred_at").cast(pl.String) < end)
    if events.height == 0:
        raise PersonalisationInputError(f"the events frame is empty: no events up to {last}")
    return events


def _require_columns(events: pl.DataFrame, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in events.columns]
    if missing:
        raise PersonalisationInputError(f"the events frame lacks column(s) {', '.join(missing)}")


def _check_window(first: date, last: date) -> None:
    if first > last:
        raise PersonalisationInputError(f"empty window: first {first} is after last {last}")


def _check_classes(frame: pl.DataFrame, label: str, what: str) -> None:
    if frame.height == 0:
        raise PersonalisationInputError(f"{what} holds no offers whose outcome is known")
    classes = frame[label].unique().to_list()
    if len(classes) < 2:
        kind = "redeemed" if classes == [1] else "unredeemed"
        raise PersonalisationInputError(
            f"{what} holds a single class: all {frame.height} offers {kind}; a propensity needs both"
        )


def _bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time(), tzinfo=UTC),
        datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
    )
