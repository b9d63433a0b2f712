"""How personalisation holds out offers for its metrics, matching how the merchant sends:

- campaign split (one-shot campaigns, each sent at one time): the latest campaigns by their first
  publication are held out whole, so no campaign is on both sides; the model learns from the
  earlier campaigns whose outcomes were known when the first held-out one went out (the others
  are embargoed: on neither side);
- time split (continuous autopilots): fitted on offers whose outcome was known before the split
  time, measured on the offers published after it.

`auto` picks the campaign split when every campaign of the window was sent within a day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from models_ml.personalisation_events import PersonalisationInputError

TEST_SHARE = 0.3  # time split: the later share of the window's offers held out
CAMPAIGN_TEST_SHARE = 0.25  # campaign split: the share of campaigns held out (the latest)
ONE_SHOT_SPAN = timedelta(hours=24)  # a campaign sent within this span of its first send
SPLITS = ("auto", "campaign", "time")


@dataclass(frozen=True)
class Split:
    """Which offers the model learns from and which it is measured on."""

    kind: str  # campaign or time
    train: pl.Series  # boolean per offer row
    test: pl.Series
    description: dict[str, Any]


def plan_split(offers: pl.DataFrame, split: str = "auto") -> Split:
    """The campaign or time split of labelled offers (see the module's docstring)."""
    kind = split
    if split == "auto":
        kind = "campaign" if _all_one_shot(offers) else "time"
    if kind == "campaign":
        return _campaign_split(offers)
    return _time_split(offers)


def _all_one_shot(offers: pl.DataFrame) -> bool:
    spans = offers.group_by("campaign_id").agg(span=pl.col("at").max() - pl.col("at").min())
    return spans.height >= 2 and bool((spans["span"] <= ONE_SHOT_SPAN).all())


def _campaign_split(offers: pl.DataFrame) -> Split:
    starts = (
        offers.group_by("campaign_id")
        .agg(start=pl.col("at").min())
        .sort(["start", "campaign_id"], descending=[True, False])
    )
    if starts.height < 2:
        raise PersonalisationInputError(
            f"a campaign split needs offers of two or more campaigns; the window has "
            f"{starts.height}: widen it, or use the time split"
        )
    held = max(1, min(starts.height - 1, math.ceil(starts.height * CAMPAIGN_TEST_SHARE)))
    cutoff = starts["start"][held - 1]
    # campaigns first sent at the boundary's time go to the held-out side together
    test_campaigns = starts.filter(pl.col("start") >= cutoff)["campaign_id"]
    if test_campaigns.len() == starts.height:
        raise PersonalisationInputError(
            "every campaign of the window was first sent at one time: a campaign split needs "
            "campaigns sent at two or more times"
        )
    in_test = pl.col("campaign_id").is_in(test_campaigns.implode())
    train = offers.select(~in_test & (pl.col("horizon_end") <= cutoff)).to_series()
    test = offers.select(in_test).to_series()
    embargoed = offers.filter(~in_test & (pl.col("horizon_end") > cutoff))
    return Split(
        "campaign",
        train,
        test,
        {
            "kind": "campaign",
            "cutoff": cutoff.isoformat(),
            "held_out_campaigns": sorted(test_campaigns.to_list()),
            "train": f"offers of {starts.height - test_campaigns.len()} earlier campaigns whose "
            f"outcome was known by {cutoff:%Y-%m-%d %H:%M}",
            "test": f"{test_campaigns.len()} campaigns first sent from {cutoff:%Y-%m-%d %H:%M}",
            "embargoed_offers": embargoed.height,
            "embargoed_campaigns": sorted(embargoed["campaign_id"].unique().to_list()),
        },
    )


def _time_split(offers: pl.DataFrame) -> Split:
    times = offers["at"].sort()
    split_at = times[min(len(times) - 1, int(len(times) * (1 - TEST_SHARE)))]
    if split_at == times[0]:
        raise PersonalisationInputError(
            "all the window's offers were published at one time: a time split needs offers "
            "published at two or more times (one-shot campaigns: use the campaign split)"
        )
    train = offers.select((pl.col("at") < split_at) & (pl.col("horizon_end") <= split_at))
    test = offers.select(pl.col("at") >= split_at)
    return Split(
        "time",
        train.to_series(),
        test.to_series(),
        {
            "kind": "time",
            "cutoff": split_at.isoformat(),
            "train": f"offers before {split_at:%Y-%m-%d %H:%M} whose outcome was known by then",
            "test": f"offers from {split_at:%Y-%m-%d %H:%M}",
        },
    )


def split_assignments(arms: pl.DataFrame, plan: Split) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The uplift assignments on the same sides as the offers: held-out campaigns (or times)
    measured, earlier ones whose outcome was known by the cutoff learned from."""
    if arms.height == 0:
        return arms, arms
    held = held_out(plan.description)
    cutoff = datetime.fromisoformat(plan.description["cutoff"])
    train = arms.filter(~held & (pl.col("horizon_end") <= cutoff))
    return train, arms.filter(held)


def held_out(description: dict[str, Any]) -> pl.Expr:
    """The rows of a split's held-out part: its campaigns, or the rows from its cutoff."""
    if description.get("kind") == "campaign":
        return pl.col("campaign_id").is_in(description["held_out_campaigns"])
    return pl.col("at") >= datetime.fromisoformat(description["cutoff"])
