"""Which (customer, campaign) pairs are offerable at a moment: what next best offers score.

Offerable: the campaign is active at the moment (status and active window), reaches customers (a
distribution with channels) and the customer consents to one of its channels (the first in the
campaign's order is the one given), holds no unexpired voucher of it, has not had one already
when it is a promotion (sent once per customer), and is new when the campaign is for new
customers only. Each pair is scored as a voucher with its campaign's contents.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from models_ml.personalisation_events import (
    CHANNELS,
    WHOLE_ORDER,
    EventTables,
    PersonalisationInputError,
    with_horizon,
)


def offer_candidates(tables: EventTables, as_of: datetime) -> pl.DataFrame:
    """The (customer, campaign) pairs offerable at `as_of` (see next_best_offers), as rows
    customer_id, at, campaign_id, voucher_id (null), channel, contents, shape, currency."""
    stamp = as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if tables.campaigns.height == 0:
        raise PersonalisationInputError(
            f"no campaign_created events before {stamp}: pass the ledger's history up to as_of"
        )
    customers = _known_customers(tables, as_of)
    if customers.height == 0:
        raise PersonalisationInputError(f"no customers known before {stamp}")
    campaigns = _offerable_campaigns(tables.campaigns, tables.statuses, as_of)
    if campaigns.height == 0:
        return pl.DataFrame(
            schema={
                "customer_id": pl.String, "at": pl.Datetime("us", "UTC"), "campaign_id": pl.String,
                "voucher_id": pl.String, "channel": pl.String, "contents": pl.String,
                "shape": pl.String, "currency": pl.String,
            }
        )  # fmt: skip
    pairs = customers.join(
        campaigns.select(
            "campaign_id", "channels", "new_customers_only", "contents", "shape", "currency"
        ),
        how="cross",
    )
    pairs = pairs.with_columns(channel=_first_consented_channel()).filter(
        pl.col("channel").is_not_null()
        & ~((pl.col("new_customers_only") == 1) & pl.col("has_ordered"))
    )
    pairs = pairs.join(
        _already_offered(tables, as_of), on=["customer_id", "campaign_id"], how="anti"
    )
    return pairs.sort(["customer_id", "campaign_id"]).select(
        "customer_id",
        at=pl.lit(as_of).cast(pl.Datetime("us", "UTC")),
        campaign_id="campaign_id",
        voucher_id=pl.lit(None, pl.String),
        channel="channel",
        contents=pl.col("contents").fill_null(WHOLE_ORDER),
        shape="shape",
        currency="currency",
    )


def _known_customers(tables: EventTables, as_of: datetime) -> pl.DataFrame:
    """Customers created or ordering before `as_of`, with their latest consent per channel and
    whether they have ordered."""
    created = tables.consent.filter(pl.col("at") < as_of)
    consent = (
        created.filter(pl.col("channel").is_in(CHANNELS))
        .group_by("customer_id", "channel")
        .agg(pl.col("granted").last())
        .pivot("channel", index="customer_id", values="granted", on_columns=CHANNELS)
    )
    for channel in CHANNELS:
        if channel not in consent.columns:
            consent = consent.with_columns(pl.lit(None, pl.Boolean).alias(channel))
    ordered = tables.orders.filter(pl.col("at") < as_of)["customer_id"].unique()
    ids = pl.concat([consent["customer_id"], ordered]).unique().sort()
    return (
        pl.DataFrame({"customer_id": ids})
        .join(consent, on="customer_id", how="left")
        .select(
            "customer_id",
            *[pl.col(c).fill_null(False).alias(f"consent_{c}") for c in CHANNELS],
            has_ordered=pl.col("customer_id").is_in(ordered.implode()),
        )
    )


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


def _already_offered(tables: EventTables, as_of: datetime) -> pl.DataFrame:
    """(customer, campaign) pairs not to offer again: the customer holds a voucher of it still
    valid and unused, or it is a promotion (one decision per customer) that already sent the
    customer a voucher or held them out (a promotion's held-out customers are its control
    group: offering it to them later would spoil the comparison)."""
    modes = tables.campaigns.select("campaign_id", "distribution_mode")
    redeemed = tables.redemptions.filter(pl.col("at") < as_of)["voucher_id"]
    offers = with_horizon(tables, tables.offers.filter(pl.col("at") < as_of))
    holding = offers.filter(
        ~pl.col("voucher_id").is_in(redeemed.implode()) & (pl.col("horizon_end") > as_of)
    ).select("customer_id", "campaign_id")
    decided = pl.concat(
        [
            offers.select("customer_id", "campaign_id"),
            tables.held_out.filter(pl.col("at") < as_of).select("customer_id", "campaign_id"),
        ]
    ).join(modes.filter(pl.col("distribution_mode") == "promotion"), on="campaign_id")
    return pl.concat([holding, decided.select("customer_id", "campaign_id")]).unique()


def _first_consented_channel() -> pl.Expr:
    """The first of the campaign's channels (in its order) the customer consents to."""
    checks = [
        pl.when(
            pl.col("channels").list.get(i, null_on_oob=True).eq(name) & pl.col(f"consent_{name}")
        ).then(pl.lit(name))
        for i in range(len(CHANNELS))
        for name in CHANNELS
    ]
    return pl.coalesce(checks)
