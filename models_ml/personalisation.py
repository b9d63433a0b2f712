"""Reward personalisation: who is likely to redeem which voucher, and whom an offer changes.

- Propensity: a LightGBM classifier over past offers, one row per voucher published to a
  customer, with customer, offer-contents and pair features as of the publication
  (personalisation_features) and label 1 when the voucher was redeemed (and never rolled back)
  within its own validity: its publication's valid days, the campaign's end or its finishing.
- Uplift (T-learner, `models_ml.uplift`): in campaigns with a control group, each publication is
  a treated assignment and each `customer_held_out` a control one; the outcome is any order by
  the voucher's horizon. uplift = P(order | treated) - P(order | held out).
- Next best offers: every customer x every campaign offerable at `as_of`, scored by both and
  ranked by expected incremental value (personalisation_value: uplift x margin x order value -
  propensity x discount) where there is an uplift model, else by propensity; campaigns whose
  measured effect is below zero with confidence are never offered, and where the model did not
  beat the simple baselines on its held-out part, the best baseline ranks instead.

Metrics come from a split of the window that matches how the merchant sends
(personalisation_split: the latest campaigns held out whole, or the later offers). Each metric
comes with a bootstrap 95% interval (customers resampled) beside the simple baselines computed
on the same rows: random, the campaign's popularity, the same contents' popularity, the
customer's own redemption history (rate and count) and the size of the voucher's product list. The returned model is refitted on every offer of the window whose
outcome is known; the fit on the earlier part is kept with it (`holdout_model`) so that an
evaluation on the held-out part never scores rows the model learned from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from models_ml import uplift as uplift_api
from models_ml.personalisation_candidates import offer_candidates
from models_ml.personalisation_events import (
    CATEGORICAL_VOCAB,
    EventTables,
    PersonalisationInputError,
    Vocabulary,
    build_tables,
    labelled_offers,
    undeclared_attributes,
    uplift_assignments,
    vocabulary,
)
from models_ml.personalisation_features import categorical_features, feature_names, offer_features
from models_ml.personalisation_split import (
    CAMPAIGN_TEST_SHARE,
    SPLITS,
    TEST_SHARE,
    held_out,
    plan_split,
    split_assignments,
)
from models_ml.personalisation_value import (
    MODEL,
    CampaignEffect,
    campaign_effects,
    choose_ranking,
    incremental_value,
    mean_discounts,
)
from models_ml.ranking_metrics import compare

FORMAT = 3  # scoring refuses a model pickled by code of another format: retrain it
NDCG_K = 3
MIN_ARM_ROWS = 30  # fewer assignments in an arm than this: no uplift model
RANDOM_QINI_SEEDS = 200

# At most five splits deep and 100 trees: LightGBM scores a row in about 40 ns per tree, so a
# million candidates cost seconds (a leaf-wise tree of 15 leaves may be 14 splits deep, and 200
# trees at 0.05 measured no better on the dunnhumby and simulated hold-outs).
PROPENSITY_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.075,
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "max_bin": 63,
    "num_boost_round": 100,
}
# Redemptions are rare (a fraction of a percent of a retailer's coupons): the propensity learns
# from every redeemed offer and at most this many unredeemed ones per redeemed one, drawn with
# the seed and weighted up by the share drawn, so probabilities keep their scale. Training then
# costs what the redemptions cost, not what the ledger's size does.
NEGATIVES_PER_POSITIVE = 50
UPLIFT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_boost_round": 50,
}
# Same data, same seed, same model bytes: deterministic mode and row-wise histograms, and a
# thread count that follows from the data alone (`threads_for`).
FIXED_PARAMS: dict[str, Any] = {
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
# Below this many rows a second thread costs more than it saves (and on a busy machine its
# spin-waiting multiplies the wall time).
ROWS_PER_THREAD = 200_000


def threads_for(rows: int) -> int:
    return 2 if rows >= ROWS_PER_THREAD else 1


NBO_COLUMNS = {
    "customer_id": pl.String,
    "rank": pl.Int64,
    "campaign_id": pl.String,
    "channel": pl.String,
    "propensity": pl.Float64,
    "uplift": pl.Float64,
    "incremental_value": pl.Float64,
    "currency": pl.String,
    "score": pl.Float64,
    "ranked_by": pl.String,
    "as_of": pl.Datetime("us", "UTC"),
}
# What `score` is, by what ranked the offers.
INCREMENTAL_VALUE = "incremental_value"
PROPENSITY = "propensity"


@dataclass
class PersonalisationModel:
    """Everything scoring needs: the fitted boosters, the vocabulary they were fitted with, and
    the training rates the baselines read."""

    propensity: lgb.Booster
    uplift: uplift_api.TLearner | None  # None without control groups to learn from
    features: list[str]
    uplift_features: list[str]
    vocab: Vocabulary
    popularity: dict[str, float]  # campaign → smoothed redemption rate in the training offers
    shape_popularity: dict[str, float]  # the same per offer shape (a campaign's next edition)
    contents_popularity: dict[str, float]  # the same per voucher contents (one coupon, say)
    base_rate: float
    campaign_effect: dict[str, float] = field(default_factory=dict)  # observed uplift
    base_effect: float = 0.0
    order_value: float | None = None  # the mean order in the training data (minor units)
    discounts: dict[str, float] = field(default_factory=dict)  # campaign → mean discount given
    effects: list[CampaignEffect] = field(default_factory=list)  # against control groups
    ranking: str = MODEL  # the model, or the baseline that beat it on the held-out part
    holdout_model: PersonalisationModel | None = None  # fitted without the held-out part
    format: int = FORMAT

    def predict_propensity(self, frame: pl.DataFrame) -> np.ndarray:
        return self.propensity.predict(
            _matrix(frame, self.features), num_threads=threads_for(frame.height)
        )

    def predict_uplift(self, frame: pl.DataFrame) -> np.ndarray | None:
        if self.uplift is None:
            return None
        return self.uplift.predict(frame.select(self.uplift_features))["uplift"].to_numpy()

    def predict(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Propensity and uplift (None without an uplift model) from one feature matrix: what
        scoring many candidates calls."""
        x = _matrix(frame, self.features)
        propensity = self.propensity.predict(x, num_threads=threads_for(len(x)))
        if self.uplift is None:
            return propensity, None
        if self.uplift_features != self.features:  # a model fitted on other columns
            columns = [self.features.index(name) for name in self.uplift_features]
            x = np.ascontiguousarray(x[:, columns])
        treated, control = self.uplift.predict_matrix(x)
        return propensity, treated - control


# -- public API --------------------------------------------------------------------------------


def train_personalisation(
    events: pl.DataFrame,
    first: date,
    last: date,
    seed: int,
    *,
    split: str = "auto",
    attribute_types: dict[str, str] | None = None,
    orders: pl.LazyFrame | None = None,
) -> tuple[PersonalisationModel, dict[str, Any]]:
    """Fit the propensity and uplift models on the offers published from `first` to `last`.

    Pass the events up to `last` including the history before `first`: customer features and
    campaign definitions come from it. `split`: auto (campaign when every campaign of the
    window was sent at one time, else time), campaign or time. `attribute_types` reads the
    customer attributes otherwise than declared. Returns the model and the registry card fields.
    """
    _check_window(first, last)
    if split not in SPLITS:
        raise PersonalisationInputError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    tables = build_tables(_until(events, last), orders)
    vocab = vocabulary(tables, attribute_types)
    offers = _window_offers(tables, first, last)
    plan = plan_split(offers, split)
    frame = offer_features(tables, offers, vocab)
    train, test = frame.filter(plan.train), frame.filter(plan.test)
    _check_classes(train, "label", f"the training part ({plan.description['train']})")
    _check_classes(test, "label", f"the held-out part ({plan.description['test']})")

    features = feature_names(vocab)
    # The same features as the propensity's: the control arm never saw a channel (nothing was
    # sent), so its model cannot split on one, while the treated arm's may; and scoring needs
    # one feature matrix for the three models.
    uplift_features = features
    assignments = _window_assignments(tables, first, last)
    arms = offer_features(tables, assignments, vocab) if assignments.height else assignments
    uplift_train, uplift_test = split_assignments(arms, plan)

    money = money_facts(tables)
    held_out_model = fit_personalisation(
        vocab, train, uplift_train, features, uplift_features, seed, **money
    )
    metrics, _ = evaluate_frames(held_out_model, test, uplift_test, seed=seed)
    metrics["train_offers"] = float(train.height)
    metrics["train_redemption_rate"] = float(train["label"].mean())  # type: ignore[arg-type]
    ranking = choose_ranking(metrics, NDCG_K)

    model = fit_personalisation(vocab, frame, arms, features, uplift_features, seed, **money)
    model.holdout_model = held_out_model
    model.ranking = ranking.ranked_by
    currencies = dict(tables.campaigns.select("campaign_id", "currency").iter_rows())
    fingerprint = hashlib.sha256(
        frame.select("customer_id", "at", "voucher_id", *features, "label").write_csv().encode()
    ).hexdigest()
    card = {
        "training_window": {"from": first.isoformat(), "to": last.isoformat()},
        "features": features,
        "params": {
            "propensity": {**PROPENSITY_PARAMS, "negatives_per_positive": NEGATIVES_PER_POSITIVE},
            "uplift": {**UPLIFT_PARAMS, "learner": "two-model (T-learner)"},
            "fixed": FIXED_PARAMS,
            "label": "voucher redeemed (never rolled back) within its validity: publication "
            "plus valid days, the campaign's end or finishing, whichever first",
            "uplift_outcome": "any order by the voucher's horizon",
            "split": plan.kind,
            "test_share": CAMPAIGN_TEST_SHARE if plan.kind == "campaign" else TEST_SHARE,
            "ndcg_k": NDCG_K,
            "ranking": "expected incremental value (uplift x gross margin x order value - "
            "propensity x discount) with an uplift model, else propensity; the best baseline "
            "instead where the model did not beat every baseline on the held-out part; campaigns "
            "below zero with confidence against their control group never offered",
            "refit": "on every offer of the window whose outcome is known",
            "uplift_model": model.uplift is not None,
            "attribute_types": vocab.attribute_types,
            "attributes_not_declared": undeclared_attributes(tables),
            "categorical_features": categorical_features(vocab),
        },
        "seed": seed,
        "metrics": metrics,
        "primary_metric": "roc_auc",
        "data_fingerprint": fingerprint,
        "extra": {
            "holdout": plan.description,
            "ranking": ranking.as_dict(),
            "campaign_effects": [
                {**effect.as_dict(), "currency": currencies.get(effect.campaign_id)}
                for effect in model.effects
            ],
        },
    }
    return model, card


def evaluate_personalisation(
    model: PersonalisationModel,
    events: pl.DataFrame,
    first: date,
    last: date,
    *,
    holdout: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], pl.DataFrame, pl.DataFrame]:
    """The model's metrics on the offers (and assignments) published from `first` to `last`,
    with the scored rows (offers: label, the model's propensity and each baseline's score;
    assignments: treated, converted, uplift). `holdout` (a card's `extra.holdout`): measure on
    the model's own held-out part of the window (its campaigns, or the offers from its cutoff),
    scored by the model's fit without that part."""
    check_model(model)
    _check_window(first, last)
    scorer = model
    if holdout is not None:
        if model.holdout_model is None:
            raise PersonalisationInputError("this model kept no fit without its held-out part")
        scorer = model.holdout_model
    tables = build_tables(_until(events, last))
    offers = _window_offers(tables, first, last)
    assignments = _window_assignments(tables, first, last)
    if holdout is not None:
        held = held_out(holdout)
        offers, assignments = offers.filter(held), assignments.filter(held)
    _check_classes(offers, "label", f"the offers from {first} to {last}")
    frame = offer_features(tables, offers, scorer.vocab)
    arms = offer_features(tables, assignments, scorer.vocab) if assignments.height else assignments
    metrics, scored = evaluate_frames(scorer, frame, arms, seed=seed)
    return metrics, scored, _scored_arms(scorer, arms)


def next_best_offers(
    model: PersonalisationModel,
    events: pl.DataFrame | pl.LazyFrame,
    as_of: datetime,
    top_k: int = 3,
    orders: pl.LazyFrame | None = None,
    exclude: Collection[str] = (),
) -> pl.DataFrame:
    """Per customer, the `top_k` campaigns offerable at `as_of`, best first.

    Offerable: the campaign is active at `as_of` (status and active window), reaches customers
    (a distribution with channels) and the customer consents to one of its channels (the first
    in the campaign's order is the one given), holds no unexpired voucher of it, has not had
    one already when it is a promotion (sent once per customer), and is new when the campaign is
    for new customers only; and its effect was not measured below zero with confidence (the
    model's own measure against the control groups, or a campaign named in `exclude`: the
    marts' verdict, say). Each is scored as a voucher with its campaign's contents.

    Columns: customer_id, rank (1 = best), campaign_id, channel, propensity, uplift (null
    without an uplift model), incremental_value (minor units of `currency`; null without an
    uplift model or where the discount or order value is unknown), currency, score (what ranked
    the offer), ranked_by (`incremental_value`, `propensity`, or the baseline that beat the
    model), as_of. See rank_scored.

    `events` may be a lazy scan of the lake (only what is used is read); `orders`, the orders
    already decoded (`personalisation_features.decode_orders`), when they are kept elsewhere.
    """
    check_model(model)
    if as_of.tzinfo is None:
        raise PersonalisationInputError("as_of needs a time zone (UTC)")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise PersonalisationInputError(f"top_k must be a positive integer, not {top_k!r}")
    as_of = as_of.astimezone(UTC)
    tables = build_tables(_before(events, as_of, orders is not None), _orders_before(orders, as_of))
    candidates = offer_candidates(tables, as_of)
    candidates = candidates.filter(~pl.col("campaign_id").is_in(never_offered(model, exclude)))
    if candidates.height == 0:
        return pl.DataFrame(schema=NBO_COLUMNS)
    return rank_offers(model, tables, candidates, top_k)


def never_offered(model: PersonalisationModel, exclude: Collection[str] = ()) -> list[str]:
    """The campaigns next best offers leave out: those the model measured below zero with
    confidence against their control group, and those in `exclude`."""
    measured = [e.campaign_id for e in model.effects if e.below_zero_with_confidence]
    return sorted({*measured, *exclude})


def rank_offers(
    model: PersonalisationModel, tables: EventTables, candidates: pl.DataFrame, top_k: int
) -> pl.DataFrame:
    """Score candidate rows (offer_candidates) and keep each customer's `top_k` by score."""
    frame = offer_features(tables, candidates, model.vocab)
    return rank_scored(model, frame, top_k)


def rank_scored(model: PersonalisationModel, frame: pl.DataFrame, top_k: int) -> pl.DataFrame:
    """Rows with features (offer_features of offer_candidates) scored, ranked per customer, the
    first `top_k` kept. The score is the best baseline's where the model did not beat it
    (`model.ranking`); else the expected incremental value where there is an uplift model
    (offers whose value is unknown after those whose value is known, by propensity); else the
    propensity."""
    propensity, uplift = model.predict(frame)
    scored = frame.select("customer_id", "campaign_id", "channel", "currency", "at").with_columns(
        propensity=pl.Series(propensity, dtype=pl.Float64),
        uplift=pl.Series(uplift, dtype=pl.Float64)
        if uplift is not None
        else pl.lit(None, pl.Float64),
        incremental_value=incremental_value(
            frame, propensity, uplift, model.order_value, model.discounts
        )
        if uplift is not None
        else pl.lit(None, pl.Float64),
    )
    if model.ranking != MODEL:
        ranked_by = model.ranking
        score = pl.Series(baseline_scores(model, frame)[ranked_by], dtype=pl.Float64)
    elif uplift is not None:
        ranked_by, score = INCREMENTAL_VALUE, scored["incremental_value"]
    else:
        ranked_by, score = PROPENSITY, scored["propensity"]
    scored = scored.with_columns(score=score, ranked_by=pl.lit(ranked_by)).sort(
        ["customer_id", "score", "propensity", "campaign_id"],
        descending=[False, True, True, False],
        nulls_last=True,
    )
    return (
        scored.with_columns(rank=pl.int_range(1, pl.len() + 1).over("customer_id").cast(pl.Int64))
        .filter(pl.col("rank") <= top_k)
        .rename({"at": "as_of"})
        .select(list(NBO_COLUMNS))
    )


class ModelFormatError(PersonalisationInputError):
    """A model pickled by code of another format: it has to be trained again."""


def check_model(model: Any) -> None:
    """Refuse a model pickled by other code (its features would not match)."""
    if getattr(model, "format", None) != FORMAT:
        raise ModelFormatError(
            "this personalisation model was trained by an earlier version of the code: "
            "train a new one (`promo models train personalisation`) and promote it"
        )


# -- metrics -----------------------------------------------------------------------------------


def baseline_scores(model: PersonalisationModel, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The simple rankings a model has to beat, each computed on the same rows."""
    return {
        "random": np.zeros(frame.height),
        "popularity": _popularity(model, frame),
        "contents_popularity": frame["contents"]
        .replace_strict(model.contents_popularity, default=None, return_dtype=pl.Float64)
        .fill_null(pl.Series(_popularity(model, frame)))
        .to_numpy(),
        "own_history_rate": frame["redeem_rate"].to_numpy(),
        "own_history_count": frame["redemptions_365d"].to_numpy(),
        # a discount on the whole order covers more than any list
        "contents_size": frame["contents_products"]
        .fill_null((frame["contents_products"].max() or 0) + 1)  # type: ignore[operator]
        .to_numpy(),
    }


def evaluate_frames(
    model: PersonalisationModel,
    frame: pl.DataFrame,
    arms: pl.DataFrame,
    *,
    seed: int = 0,
) -> tuple[dict[str, float], pl.DataFrame]:
    """Metrics on offer rows and assignment rows (both with features), and the offer rows
    scored: customer_id, campaign_id, voucher_id, label, `model` and one column per baseline."""
    y = frame["label"].to_numpy()
    scores = {"model": model.predict_propensity(frame), **baseline_scores(model, frame)}
    metrics = compare(
        y, frame["customer_id"].to_numpy(), scores, model="model", k=NDCG_K, seed=seed
    )
    metrics["test_offers"] = float(len(y))
    metrics["test_redemption_rate"] = float(y.mean())
    metrics["test_customers"] = float(frame["customer_id"].n_unique())
    metrics.update(_uplift_metrics(model, arms, seed))
    scored = frame.select("customer_id", "campaign_id", "voucher_id", "label").with_columns(
        **{name: pl.Series(values, dtype=pl.Float64) for name, values in scores.items()}
    )
    return (
        {n: round(float(v), 6) for n, v in metrics.items() if not math.isnan(v)},
        scored,
    )


def _uplift_metrics(model: PersonalisationModel, arms: pl.DataFrame, seed: int) -> dict[str, float]:
    treated_n = int(arms["treated"].sum()) if arms.height else 0
    if treated_n == 0 or treated_n == arms.height or arms["converted"].n_unique() < 2:
        return {}
    effect = arms["campaign_id"].replace_strict(
        model.campaign_effect, default=model.base_effect, return_dtype=pl.Float64
    )
    scored = arms.select("customer_id", "treated", "converted").with_columns(
        uplift_popularity=effect,
        uplift_own_history=arms["redeem_rate"],
        uplift_propensity=pl.Series(model.predict_propensity(arms), dtype=pl.Float64),
    )
    prediction = model.predict_uplift(arms)
    if prediction is not None:
        scored = scored.with_columns(uplift_model=pl.Series(prediction, dtype=pl.Float64))
    metrics: dict[str, float] = {}
    for column in [c for c in scored.columns if c.startswith("uplift_")]:
        suffix = "" if column == "uplift_model" else column.removeprefix("uplift")
        interval = uplift_api.bootstrap_qini(
            scored, column, "treated", "converted", seed=seed, cluster="customer_id"
        )
        metrics.update(interval.as_dict(f"qini{suffix}"))
    noise = uplift_api.random_qini(scored, "treated", "converted", seeds=RANDOM_QINI_SEEDS)
    metrics.update(noise.as_dict("qini_random"))
    metrics["uplift_test_assignments"] = float(arms.height)
    y, t = scored["converted"].to_numpy(), scored["treated"].to_numpy()
    metrics["uplift_test_observed_ate"] = float(y[t == 1].mean() - y[t == 0].mean())
    return metrics


def _scored_arms(model: PersonalisationModel, arms: pl.DataFrame) -> pl.DataFrame:
    if arms.height == 0:
        return pl.DataFrame(schema={"treated": pl.Int64, "converted": pl.Int64})
    prediction = model.predict_uplift(arms)
    return arms.select("customer_id", "campaign_id", "treated", "converted").with_columns(
        uplift=pl.Series(prediction, dtype=pl.Float64)
        if prediction is not None
        else pl.lit(None, pl.Float64)
    )


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


def fit_personalisation(
    vocab: Vocabulary,
    frame: pl.DataFrame,
    arms: pl.DataFrame,
    features: list[str],
    uplift_features: list[str],
    seed: int,
    *,
    order_value: float | None = None,
    discounts: dict[str, float] | None = None,
) -> PersonalisationModel:
    """Fitted on offer rows and assignment rows (both with features). `order_value` (the mean
    order) and `discounts` (campaign → mean discount given) value the offers (money_facts)."""
    categorical = [f for f in categorical_features(vocab) if f in features]
    propensity = _booster(frame, features, categorical, seed)
    base_rate = float(frame["label"].mean())  # type: ignore[arg-type]

    def smoothed(by: str) -> dict[str, float]:
        # towards the overall rate, so a key with a handful of offers is not 0 or 1
        rates = frame.group_by(by).agg(n=pl.len(), r=pl.col("label").sum()).sort(by)
        return {k: (r + 10 * base_rate) / (n + 10) for k, n, r in rates.iter_rows()}

    uplift = None
    campaign_effect: dict[str, float] = {}
    base_effect = 0.0
    if arms.height:
        t_rows, c_rows = arms.filter(pl.col("treated") == 1), arms.filter(pl.col("treated") == 0)
        if _fittable(t_rows) and _fittable(c_rows):
            uplift = uplift_api.fit_t_learner(
                arms,
                uplift_features,
                "treated",
                "converted",
                seed=seed,
                params={**UPLIFT_PARAMS, **FIXED_PARAMS, "num_threads": threads_for(arms.height)},
            )
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
        uplift=uplift,
        features=features,
        uplift_features=uplift_features,
        vocab=vocab,
        popularity=smoothed("campaign_id"),
        shape_popularity=smoothed("shape"),
        contents_popularity=smoothed("contents"),
        base_rate=base_rate,
        campaign_effect=campaign_effect,
        base_effect=base_effect,
        order_value=order_value,
        discounts=discounts or {},
        effects=campaign_effects(arms) if "revenue" in arms.columns else [],
    )


def money_facts(tables: EventTables) -> dict[str, Any]:
    """What values an offer in money: the mean order and each campaign's mean discount."""
    amounts = tables.orders["amount"]
    return {
        "order_value": float(amounts.mean()) if amounts.len() else None,  # type: ignore[arg-type]
        "discounts": mean_discounts(tables.redemptions),
    }


def _fittable(rows: pl.DataFrame) -> bool:
    return rows.height >= MIN_ARM_ROWS and rows["converted"].n_unique() == 2


def _booster(
    frame: pl.DataFrame, features: list[str], categorical: list[str], seed: int
) -> lgb.Booster:
    params = PROPENSITY_PARAMS
    settings = {k: v for k, v in params.items() if k != "num_boost_round"}
    settings.update(FIXED_PARAMS, seed=seed)
    rows, weights = negative_sample(frame["label"].to_numpy(), seed)
    settings["num_threads"] = threads_for(len(rows))
    data = lgb.Dataset(
        _matrix(frame[rows], features),
        label=frame["label"].to_numpy()[rows].astype(np.float64),
        weight=weights,
        feature_name=features,
        categorical_feature=categorical,
        free_raw_data=True,
        params={"verbose": -1, "max_bin": params["max_bin"]},
    )
    return lgb.train(settings, data, num_boost_round=params["num_boost_round"])


def negative_sample(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows the propensity learns from (every positive, at most NEGATIVES_PER_POSITIVE
    negatives per positive, drawn with `seed`) and their weights (None: every row, unweighted)."""
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels != 1)
    keep = NEGATIVES_PER_POSITIVE * len(positives)
    if keep == 0 or len(negatives) <= keep:
        return np.arange(len(labels)), None
    drawn = np.random.default_rng(seed).choice(negatives, keep, replace=False)
    rows = np.sort(np.concatenate([positives, drawn]))
    weights = np.where(labels[rows] == 1, 1.0, len(negatives) / keep)
    return rows, weights


def _matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    # row-major: LightGBM reads rows, and would otherwise copy a column-major matrix first
    return frame.select([pl.col(f).cast(pl.Float64) for f in features]).to_numpy(order="c")


# -- rows --------------------------------------------------------------------------------------


def _window_offers(tables: EventTables, first: date, last: date) -> pl.DataFrame:
    start, end = _bounds(first, last)
    offers = labelled_offers(tables).filter(
        (pl.col("at") >= start) & (pl.col("at") < end) & (pl.col("horizon_end") <= tables.end)
    )
    if offers.height == 0:
        raise PersonalisationInputError(
            f"no offers (voucher_published to a customer) from {first} to {last} whose outcome is "
            f"known by the last event ({tables.end:%Y-%m-%d %H:%M}): widen the window"
        )
    return offers.with_columns(
        shape=pl.col("campaign_id").replace_strict(
            dict(tables.campaigns.select("campaign_id", "shape").iter_rows()),
            default="-",
            return_dtype=pl.String,
        )
    )


def _window_assignments(tables: EventTables, first: date, last: date) -> pl.DataFrame:
    start, end = _bounds(first, last)
    return (
        uplift_assignments(tables)
        .filter(
            (pl.col("at") >= start) & (pl.col("at") < end) & (pl.col("horizon_end") <= tables.end)
        )
        .with_columns(voucher_id=pl.lit(None, pl.String))
    )


# -- input checks ------------------------------------------------------------------------------


def _until(events: pl.DataFrame, last: date) -> pl.DataFrame:
    _require_columns(events, ("occurred_at",))
    end = (last + timedelta(days=1)).isoformat()
    events = events.filter(pl.col("occurred_at").cast(pl.String) < end)
    if events.height == 0:
        raise PersonalisationInputError(f"the events frame is empty: no events up to {last}")
    return events


def _before(
    events: pl.DataFrame | pl.LazyFrame, as_of: datetime, skip_orders: bool
) -> pl.DataFrame:
    """The events read, strictly before `as_of` (orders left out when they come decoded)."""
    from models_ml.personalisation_events import EVENT_TYPES, REQUIRED_COLUMNS

    lazy = events.lazy()
    names = lazy.collect_schema().names()
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        raise PersonalisationInputError(
            f"the events frame lacks column(s) {', '.join(missing)}: pass the lake's events"
        )
    stamp = as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    types = [t for t in EVENT_TYPES if not (skip_orders and t == "order_recorded")]
    seq = ["seq"] if "seq" in names else []
    frame = (
        lazy.filter(
            pl.col("occurred_at").cast(pl.String) < stamp, pl.col("event_type").is_in(types)
        )
        .select(*seq, *REQUIRED_COLUMNS)
        .collect()
    )
    if frame.height == 0:
        raise PersonalisationInputError(f"the events frame is empty: no events before {stamp}")
    return frame


def _orders_before(orders: pl.LazyFrame | None, as_of: datetime) -> pl.LazyFrame | None:
    return None if orders is None else orders.filter(pl.col("at") < as_of)


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


__all__ = [
    "CATEGORICAL_VOCAB",
    "ModelFormatError",
    "PersonalisationInputError",
    "PersonalisationModel",
    "evaluate_frames",
    "evaluate_personalisation",
    "never_offered",
    "next_best_offers",
    "plan_split",
    "train_personalisation",
]
