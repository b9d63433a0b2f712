"""The named fraud rules: the one table of what each rule watches, its absolute floor and how it
is scaled to the merchant's own baseline. docs/fraud-rules.md is generated from this table
(fraud_docs.py) and a test keeps the two equal.

A rule fires on an attempt when the rule's value there reaches its threshold:

    threshold = max(at_least, times_baseline x baseline of its segment)

The baseline of a segment (a store, a sales channel, an hour of the day, a campaign: the rule's
`segment` column) is the BASELINE_QUANTILE of the rule's value over the actor-days of that
segment in the merchant's own history (an actor-day: one device, code, staff member... on one
day, at its highest value that day). Actor-days, not attempts, and a low quantile: a bot making
200 attempts is one actor-day among thousands, and even dozens of bots cannot raise the bar they
are measured against. A segment with
fewer than MIN_BASELINE_ACTOR_DAYS actor-days borrows the merchant-wide baseline; a merchant
with fewer has only the absolute floors.

Household-aware by construction: several accounts on one device or card is not a rule; many
accounts that each took a welcome offer (a new-customers-only campaign, or a redemption within
48 h of signing up) on one device or card within days is.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from models_ml.data import check_columns

# The baseline is a low quantile of the merchant's actor-days, scaled up: attackers set it only
# by being more than 1 - BASELINE_QUANTILE of a segment's actor-days. (A 99% quantile was not
# robust: 37 guessing bots among 2,094 web device-days, 1.8%, raised the web threshold 31-fold.)
BASELINE_QUANTILE = 0.9
MIN_BASELINE_ACTOR_DAYS = 1000
# An hour of the day in which a store (or, without a store, a sales channel) has under this share
# of its attempts is a "quiet hour" for it: when it is as good as closed.
QUIET_HOUR_SHARE = 0.01
MIN_PROFILE_ATTEMPTS = 300  # fewer attempts than this: use the merchant-wide hour profile

ENTITY_COLUMNS = {
    "attempt": "event_id",
    "redemption": "redemption_id",
    "customer": "customer_id",
    "device": "device_hash",
    "ip": "ip_hash",
    "payment": "payment_hash",
    "code": "code",
    "voucher": "voucher_id",
    "staff": "staff_id",
    "store": "store_id",
    "sales_channel": "sales_channel",
}
_WINDOW_NS = {"10m": 600 * 10**9, "1h": 3600 * 10**9, "24h": 86400 * 10**9, "7d": 7 * 86400 * 10**9}


@dataclass(frozen=True)
class Rule:
    value: str  # the attempt column the rule reads (a feature, or one of DERIVED_VALUES)
    at_least: float  # absolute floor of the threshold
    entity_type: str  # the actor the rule is about: its case gathers that actor's attempts
    why: str
    segment: str | None = "sales_channel"  # baseline per value of this column; None: absolute
    times_baseline: float = 3.0
    counts: str | None = None  # which attempts the value counts (a 0/1 column; None: all)

    @property
    def window(self) -> str:
        """The value's time window (its name ends in it: `_1h`, `_7d`)."""
        return self.value.rsplit("_", 1)[-1]


# In priority order: an attempt that sets off several rules joins the case of the first.
RULES: dict[str, Rule] = {
    "staff_quiet_hour_manual": Rule(
        "staff_quiet_manual_24h", 3, "staff",
        "customer-less redemptions keyed in by one staff member in the quiet hours of their store "
        "(hours with under 1% of its attempts), 24 h",
        segment="store_id", counts="quiet_manual",
    ),
    "device_failed_attempts": Rule(
        "device_failures_1h", 10, "device", "failed validations/redemptions from one device, 1 h",
        counts="failed",
    ),
    "device_codes_tried": Rule(
        "device_codes_1h", 8, "device", "distinct codes tried from one device, 1 h"
    ),
    "ip_failed_attempts": Rule(
        "ip_failures_1h", 20, "ip", "failed validations/redemptions from one IP address, 1 h",
        counts="failed",
    ),
    "new_accounts_on_device": Rule(
        "device_welcome_accounts_7d", 3, "device",
        "distinct accounts that each took a welcome offer (a new-customers-only campaign, or a "
        "redemption within 48 h of signing up) on one device, 7 d",
        times_baseline=2.0, counts="welcome_take",
    ),
    "new_accounts_on_payment": Rule(
        "payment_welcome_accounts_7d", 3, "payment",
        "distinct accounts that each took a welcome offer on one card/wallet, 7 d",
        times_baseline=2.0, counts="welcome_take",
    ),
    "accounts_redeeming_on_device": Rule(
        "device_redeemers_24h", 4, "device",
        "distinct accounts redeeming vouchers on one device, 24 h", times_baseline=2.0,
        counts="redeemed",
    ),
    "code_used_by_non_holders": Rule(
        "code_nonholders_7d", 2, "code",
        "distinct customers redeeming a code published to someone else, 7 d",
        segment="campaign_id", counts="holder_mismatch",
    ),
    "code_velocity": Rule(
        "code_attempts_10m", 15, "code", "attempts on one code, 10 min", segment="hour_utc"
    ),
    "customer_refunded_orders": Rule(
        "customer_refunded_orders_7d", 2, "customer",
        "orders of one customer, tried with a voucher, that were refunded in full, 7 d",
        segment=None, counts="refunded_full",
    ),
}  # fmt: skip

# Rule values computed here rather than in fraud_features: they need the merchant's baselines
# (quiet hours) or what happened after the attempt (refunds), which a nightly run knows.
DERIVED_VALUES = (
    "quiet_hour", "quiet_manual", "redeemed", "staff_quiet_manual_24h", "customer_refunded_orders_7d",
)  # fmt: skip
NEEDED = (
    "event_id", "seq", "occurred_at", "event_date", "event_type", "hour_utc",
    "manual_no_customer", "refunded_full", *ENTITY_COLUMNS.values(), "campaign_id",
)  # fmt: skip


def with_time(attempts: pl.DataFrame) -> pl.DataFrame:
    """`t`: nanoseconds since the epoch, ties broken by seq (strictly increasing in seq order)."""
    if "t" in attempts.columns:
        return attempts
    ts = pl.col("occurred_at").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ")
    return (
        attempts.sort("seq")
        .with_columns(ts=ts)
        .with_columns(t=pl.col("ts").cast(pl.Int64) * 1000 + pl.int_range(pl.len()).over("ts"))
        .drop("ts")
    )


def rolling_sum(attempts: pl.DataFrame, key: str, flag: str, window: str) -> pl.Series:
    """Per attempt (in the frame's order): the sum of `flag` over the attempts of the same `key`
    in (t - window, t]; 0 where `key` is null."""
    frame = attempts.select("t", key, pl.col(flag).cast(pl.Int64)).with_row_index("row")
    keyed = frame.filter(pl.col(key).is_not_null()).sort(key, "t")
    if keyed.is_empty():
        return pl.Series(flag, [0] * attempts.height, pl.Float64)
    sums = keyed.rolling("t", period=f"{_WINDOW_NS[window]}i", group_by=key).agg(
        row=pl.col("row").last(), value=pl.col(flag).sum()
    )
    return (
        frame.select("row")
        .join(sums.select("row", "value"), on="row", how="left")
        .sort("row")["value"]
        .fill_null(0)
        .cast(pl.Float64)
    )


def quiet_hours(attempts: pl.DataFrame) -> pl.DataFrame:
    """(place, hour_utc) pairs that are quiet: a place is a store, else a sales channel, else
    the merchant; hours with under QUIET_HOUR_SHARE of the place's attempts. Places with fewer
    than MIN_PROFILE_ATTEMPTS attempts take the merchant-wide profile."""
    place = _place()
    profile = attempts.group_by(place.alias("place"), "hour_utc").len()
    totals = profile.group_by("place").agg(total=pl.col("len").sum())
    merchant = attempts.group_by("hour_utc").len()
    merchant = merchant.with_columns(share=pl.col("len") / pl.col("len").sum())
    hours = pl.DataFrame({"hour_utc": list(range(24))}, schema={"hour_utc": pl.Float64})
    own = (
        totals.join(hours, how="cross")
        .join(profile, on=["place", "hour_utc"], how="left")
        .join(merchant.select("hour_utc", merchant_share="share"), on="hour_utc", how="left")
        .with_columns(
            share=pl.when(pl.col("total") >= MIN_PROFILE_ATTEMPTS)
            .then(pl.col("len").fill_null(0) / pl.col("total"))
            .otherwise(pl.col("merchant_share").fill_null(0.0))
        )
    )
    return own.filter(pl.col("share") < QUIET_HOUR_SHARE).select("place", "hour_utc")


def _place() -> pl.Expr:
    return pl.coalesce(
        pl.concat_str(pl.lit("store:"), "store_id"),
        pl.concat_str(pl.lit("channel:"), "sales_channel"),
        pl.lit("merchant"),
    )


def with_derived_values(attempts: pl.DataFrame) -> pl.DataFrame:
    """The attempts (sorted by t) with DERIVED_VALUES."""
    check_columns(attempts, NEEDED, "the attempts frame")
    frame = with_time(attempts).sort("t")
    quiet = quiet_hours(frame).with_columns(quiet_hour=pl.lit(True))
    frame = frame.with_columns(place=_place()).join(
        quiet, on=["place", "hour_utc"], how="left", maintain_order="left"
    )
    frame = frame.with_columns(
        # an order counted once, however many attempts were made on it
        refunded_order=pl.col("refunded_full")
        & pl.col("order_id").is_not_null()
        & pl.col("order_id").is_first_distinct(),
        quiet_hour=pl.col("quiet_hour").fill_null(False),
        quiet_manual=pl.col("quiet_hour").fill_null(False) & (pl.col("manual_no_customer") > 0),
    ).drop("place")
    return frame.with_columns(
        redeemed=pl.col("event_type") == "redemption_succeeded",
        staff_quiet_manual_24h=rolling_sum(frame, "staff_id", "quiet_manual", "24h"),
        # Counted over all of the customer's orders of the 7 days, refunds seen since: the
        # nightly run knows them, and the attempt-time feature sees only refunds before it.
        customer_refunded_orders_7d=rolling_sum(frame, "customer_id", "refunded_order", "7d"),
    ).drop("refunded_order")


def thresholds(attempts: pl.DataFrame, rules: dict[str, Rule] = RULES) -> pl.DataFrame:
    """One row per rule and segment value: the rule's threshold there (`segment_value` null: the
    merchant-wide threshold), its baseline and how many actor-days it rests on."""
    rows = []
    # Rules about the same actor with the same segment share one pass over the attempts.
    groups: dict[tuple[str, str], list[str]] = {}
    for name, rule in rules.items():
        if rule.segment is None:
            rows.append(_threshold_row(name, rule, None, None, 0))
        else:
            groups.setdefault((ENTITY_COLUMNS[rule.entity_type], rule.segment), []).append(name)
    for (entity, segment), names in groups.items():
        daily = (
            attempts.filter(pl.col(entity).is_not_null())
            .group_by(pl.col(segment).cast(pl.String).alias("segment_value"), entity, "event_date")
            .agg(*[pl.col(rules[name].value).max().alias(name) for name in names])
        )
        overall = daily.group_by(entity, "event_date").agg(*[pl.col(name).max() for name in names])
        per_segment = daily.group_by("segment_value").agg(
            *[pl.col(name).quantile(BASELINE_QUANTILE, "higher") for name in names], n=pl.len()
        )
        for name in names:
            rule = rules[name]
            rows.append(_threshold_row(name, rule, None, *_baseline(overall[name])))
            for segment_value, baseline, n in per_segment.select(
                "segment_value", name, "n"
            ).iter_rows():
                if segment_value is not None and n >= MIN_BASELINE_ACTOR_DAYS:
                    rows.append(_threshold_row(name, rule, segment_value, baseline, n))
    return pl.DataFrame(
        rows,
        schema={
            "rule": pl.String,
            "segment_value": pl.String,
            "baseline": pl.Float64,
            "actor_days": pl.Int64,
            "threshold": pl.Float64,
        },
        orient="row",
    )


def _baseline(values: pl.Series) -> tuple[float | None, int]:
    if values.len() < MIN_BASELINE_ACTOR_DAYS:
        return None, values.len()
    return float(values.quantile(BASELINE_QUANTILE, "higher") or 0.0), values.len()


def _threshold_row(
    name: str, rule: Rule, segment_value: str | None, baseline: float | None, n: int
) -> tuple[str, str | None, float | None, int, float]:
    relative = 0.0 if baseline is None else rule.times_baseline * baseline
    return name, segment_value, baseline, n, max(rule.at_least, relative)


def apply_rules(
    attempts: pl.DataFrame, rules: dict[str, Rule] = RULES
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The attempts (with DERIVED_VALUES) plus, per rule, `rule__<name>` (bool: fired) and
    `threshold__<name>` (the threshold the attempt was held to); and the thresholds table."""
    frame = with_derived_values(attempts)
    table = thresholds(frame, rules)
    columns = []
    for name, rule in rules.items():
        mine = table.filter(pl.col("rule") == name)
        overall = mine.filter(pl.col("segment_value").is_null())["threshold"].item()
        if rule.segment is None:
            threshold = pl.lit(overall)
        else:
            segmented = mine.filter(pl.col("segment_value").is_not_null())
            threshold = (
                pl.col(rule.segment)
                .cast(pl.String)
                .replace_strict(segmented["segment_value"], segmented["threshold"], default=overall)
                .cast(pl.Float64)
            )
        columns.append(threshold.alias(f"threshold__{name}"))
    frame = frame.with_columns(columns)
    fired = frame.with_columns(
        (pl.col(rule.value) >= pl.col(f"threshold__{name}")).alias(f"rule__{name}")
        for name, rule in rules.items()
    )
    return fired, table
