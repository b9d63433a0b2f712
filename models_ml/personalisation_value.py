"""What an offer is worth to the merchant, which offers are never to be made, and which ranking
to trust: the decisions next best offers take on top of the models' scores.

- Expected incremental value of offering a campaign's voucher to a customer, in minor units of
  the campaign's currency: uplift x gross margin x order value - propensity x discount. Uplift
  is the change in the chance of an order the offer causes (the T-learner's estimate), the
  order value the customer's mean order as of the offer (else the mean order of the training
  data), the gross margin the marts' (GROSS_MARGIN), and the discount what the voucher would
  give on such an order by its definition (for an unspecified discount, the mean of the
  campaign's past redemptions). Redemptions that would have happened anyway cost their
  discount too, which is why a popular voucher can be worth less than nothing.
- A campaign's measured effect: its incremental profit per treated customer against its control
  group in the training data (margin x revenue - discount, treated minus held out), with a 95 %
  interval (Welch's standard error), as the marts measure a campaign. A campaign whose whole
  interval is below zero loses money with confidence and is never recommended.
- The ranking to trust: the model only where it beat every simple baseline on its held-out part
  (NDCG@3, the metric of choosing among a customer's offers; ROC-AUC where no customer there had
  two offers and a redemption); otherwise the best baseline that ranks offers, and the
  Personalisation page says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from models_ml.personalisation_events import CATEGORICAL_VOCAB

# The share of order revenue that is gross profit: the default of the marts' dbt var
# `campaign_gross_margin` (fct_campaign_performance), so that the model and Campaign performance
# value an order alike (tests/test_personalisation_value.py keeps the two in step).
GROSS_MARGIN = 0.65
Z_95 = 1.959963984540054
# The baselines (personalisation.baseline_scores) and those that can rank one customer's offers:
# the others give all of a customer's offers one score.
BASELINES = (
    "random", "popularity", "contents_popularity", "own_history_rate", "own_history_count",
    "contents_size",
)  # fmt: skip
OFFER_BASELINES = ("popularity", "contents_popularity", "contents_size")
MODEL = "model"


# -- money ------------------------------------------------------------------------------------


def mean_discounts(redemptions: pl.DataFrame) -> dict[str, float]:
    """Per campaign: the mean discount of its standing redemptions (minor units)."""
    standing = redemptions.filter(
        pl.col("rolled_back_at").is_null() & pl.col("discount").is_not_null()
    )
    means = standing.group_by("campaign_id").agg(pl.col("discount").mean()).sort("campaign_id")
    return {c: float(d) for c, d in means.iter_rows() if c is not None}


def expected_discount(
    frame: pl.DataFrame, order_value: float | None, observed: dict[str, float]
) -> pl.Series:
    """Per row (offer features): what the voucher would give away on the customer's typical
    order, by its definition; the campaign's observed mean where the definition does not say
    (an unspecified discount); null where neither does. A voucher on listed products discounts
    at most the median price of a product it covers."""
    code = {name: float(i) for i, name in enumerate(CATEGORICAL_VOCAB["discount_type"])}
    kind = pl.col("discount_type")
    value = pl.when(pl.col("avg_order_value") > 0).then(pl.col("avg_order_value"))
    if order_value is not None:
        value = value.otherwise(pl.lit(order_value))
    listed = (pl.col("whole_order") == 0) & pl.col("contents_price_median").is_not_null()
    base = pl.when(listed).then(pl.min_horizontal(value, "contents_price_median")).otherwise(value)
    cap = pl.col("max_discount").fill_null(math.inf)
    by_definition = (
        pl.when((kind == code["amount"]) & pl.col("amount_off").is_not_null())
        .then(pl.min_horizontal(pl.col("amount_off"), base))
        .when((kind == code["percent"]) & pl.col("percent_off").is_not_null())
        .then(pl.min_horizontal(pl.col("percent_off") / 100 * base, cap))
        .when((kind == code["fixed_price"]) & pl.col("fixed_price").is_not_null())
        .then((base - pl.col("fixed_price")).clip(lower_bound=0))
        .when(kind == code["free_item"])
        .then(pl.col("contents_price_median"))
    )
    seen = pl.col("campaign_id").replace_strict(observed, default=None, return_dtype=pl.Float64)
    return frame.select(pl.coalesce(by_definition, seen).cast(pl.Float64)).to_series()


def incremental_value(
    frame: pl.DataFrame,
    propensity: np.ndarray,
    uplift: np.ndarray,
    order_value: float | None,
    observed_discounts: dict[str, float],
    margin: float = GROSS_MARGIN,
) -> pl.Series:
    """uplift x margin x order value - propensity x discount per row, in minor units; null
    where the order value or the discount is unknown."""
    value = frame.select(
        pl.when(pl.col("avg_order_value") > 0)
        .then(pl.col("avg_order_value"))
        .otherwise(pl.lit(order_value, pl.Float64))
    ).to_series()
    discount = expected_discount(frame, order_value, observed_discounts)
    gain = pl.Series(uplift, dtype=pl.Float64) * margin * value
    cost = pl.Series(propensity, dtype=pl.Float64) * discount
    return (gain - cost).alias("incremental_value")


# -- effects against control groups -----------------------------------------------------------


@dataclass(frozen=True)
class CampaignEffect:
    """A campaign's incremental profit per treated customer (minor units) with its 95 %
    interval; low and high are None when an arm has fewer than two customers."""

    campaign_id: str
    treated: int
    control: int
    effect: float
    low: float | None
    high: float | None

    @property
    def below_zero_with_confidence(self) -> bool:
        return self.high is not None and self.high < 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_effects(arms: pl.DataFrame, margin: float = GROSS_MARGIN) -> list[CampaignEffect]:
    """Per campaign with customers in both arms (assignments with `treated`, `revenue`,
    `discount`): treated minus held out in margin x revenue - discount per customer."""
    if arms.height == 0:
        return []
    profit = pl.col("revenue").cast(pl.Float64) * margin - pl.col("discount").cast(pl.Float64)
    arm = (
        arms.group_by("campaign_id", "treated")
        .agg(n=pl.len(), mean=profit.mean(), var=profit.var(ddof=1))
        .sort("campaign_id")
    )
    treated = arm.filter(pl.col("treated") == 1).drop("treated")
    control = arm.filter(pl.col("treated") == 0).drop("treated")
    both = treated.join(control, on="campaign_id", suffix="_c")
    effects = []
    for campaign, n_t, mean_t, var_t, n_c, mean_c, var_c in both.iter_rows():
        effect = mean_t - mean_c
        low = high = None
        if n_t >= 2 and n_c >= 2:
            half = Z_95 * math.sqrt(var_t / n_t + var_c / n_c)
            low, high = effect - half, effect + half
        effects.append(CampaignEffect(campaign, n_t, n_c, effect, low, high))
    return effects


# -- which ranking to trust -------------------------------------------------------------------


@dataclass(frozen=True)
class Ranking:
    """What ranks the next best offers (`ranked_by`: the model, or a baseline's name) and the
    held-out figures that decided it: the model's and each baseline's on `metric`."""

    ranked_by: str
    metric: str
    model: float | None
    baselines: dict[str, float]

    @property
    def beaten_by(self) -> list[str]:
        """The baselines at or above the model, best first."""
        if self.model is None:
            return []
        found = [(v, n) for n, v in self.baselines.items() if v >= self.model]
        return [name for _, name in sorted(found, reverse=True)]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "beaten_by": self.beaten_by}


def choose_ranking(metrics: dict[str, float], k: int = 3) -> Ranking:
    """The model where its held-out figure is above every baseline's; otherwise the baseline
    that ranks offers best (OFFER_BASELINES). Without figures to compare, the model."""
    metric = f"ndcg_at_{k}" if f"ndcg_at_{k}" in metrics else "roc_auc"
    model = metrics.get(metric)
    baselines = {b: metrics[f"{metric}_{b}"] for b in BASELINES if f"{metric}_{b}" in metrics}
    ranking = Ranking(MODEL, metric, model, baselines)
    offer_level = {b: v for b, v in baselines.items() if b in OFFER_BASELINES}
    if model is None or not ranking.beaten_by or not offer_level:
        return ranking
    best = max(sorted(offer_level), key=lambda name: offer_level[name])
    return Ranking(best, metric, model, baselines)
