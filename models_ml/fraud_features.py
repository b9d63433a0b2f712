"""Fraud features: one row per redemption attempt (a validation, a redemption or a rejected
redemption), with what was known at that instant about the attempt itself and about every actor
it involves — customer, device, IP, payment fingerprint, code, store and staff member — over
sliding windows (10 min, 1 h, 24 h, 7 d).

No look-ahead: a window ends at the attempt and includes only events ordered before it (events at
the same microsecond are ordered by seq, so the 3rd of a burst of 40 sees 3, not 40). Features
are computed with Polars rolling windows and as-of joins; there is no Python loop over rows.

The events frame should reach back before the scored window (see LOOKBACK_DAYS) and include the
publications and customer creations that precede it, or holder and account-age features are
unknown for older vouchers and customers (they fall back to "not published" / "old account").
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl

from models_ml.data import DataError, check_columns, scan_events

ATTEMPT_TYPES = ("voucher_validated", "redemption_succeeded", "redemption_rejected")
# Event types the features read; everything else in the frame is ignored.
FEATURE_EVENT_TYPES = (
    *ATTEMPT_TYPES,
    "redemption_rolled_back",
    "order_refunded",
    "voucher_published",
    "customer_created",
    "campaign_created",
)
LOOKBACK_DAYS = 8  # the longest window (7 d) plus a day of slack
# A redemption by an account at most this old, or of a campaign for new customers only, is a
# "welcome take": what a farm of fresh accounts on one device or card does once per account.
WELCOME_ACCOUNT_AGE_H = 48.0
# Manual redemptions in these UTC hours are "off-hours": [OFF_HOURS_FROM, 24) and [0, OFF_HOURS_TO).
OFF_HOURS_FROM, OFF_HOURS_TO = 23, 6
# An account older than the frame (no customer_created seen) counts as this old, in hours.
OLD_ACCOUNT_H = 24.0 * 365
# A refund of at least this share of what was paid for an order is "full". What was paid is the
# order's amount less the discounts its redemptions gave: the ledger never refunds a discount.
FULL_REFUND_SHARE = 0.9

_NS = {"10m": 600 * 10**9, "1h": 3600 * 10**9, "24h": 86400 * 10**9, "7d": 7 * 86400 * 10**9}
NEEDED_COLUMNS = (
    "seq", "event_id", "event_type", "occurred_at", "campaign_id", "voucher_id", "customer_id",
    "order_id", "redemption_id", "device_hash", "ip_hash", "payment_hash", "store_id",
    "staff_id", "sales_channel", "payload",
)  # fmt: skip
ID_COLUMNS = (
    "event_id", "seq", "event_type", "occurred_at", "event_date", "campaign_id", "voucher_id",
    "customer_id", "order_id", "redemption_id", "code", "holder_id", "device_hash", "ip_hash",
    "payment_hash", "store_id", "staff_id", "sales_channel",
)  # fmt: skip

# Every model feature, in the order the models see them. All numeric, never null.
ATTEMPT_FEATURES = (
    "is_validation", "failed", "code_not_found", "hour_utc", "off_hours", "has_customer",
    "manual_no_customer", "channel_pos", "channel_web", "channel_app", "order_amount",
    "discount", "discount_share", "holder_mismatch", "account_age_h", "welcome_take",
)  # fmt: skip
# What happened to an attempt afterwards (rolled back, its order refunded): not model features
# (they look ahead), but the rates the drift layer watches per store, staff member, channel...
OUTCOME_COLUMNS = ("rolled_back", "refunded", "refunded_full")
DEVICE_FEATURES = (
    "device_attempts_1h", "device_failures_1h", "device_fail_ratio_1h", "device_codes_1h",
    "device_attempts_24h", "device_customers_7d", "device_redeemers_24h",
    "device_welcome_accounts_7d",
)  # fmt: skip
IP_FEATURES = (
    "ip_attempts_1h", "ip_failures_1h", "ip_fail_ratio_1h", "ip_codes_1h", "ip_customers_7d",
)  # fmt: skip
PAYMENT_FEATURES = (
    "payment_attempts_24h", "payment_customers_7d", "payment_redeemers_24h",
    "payment_welcome_accounts_7d",
)  # fmt: skip
CUSTOMER_FEATURES = (
    "customer_attempts_24h", "customer_failures_24h", "customer_codes_7d",
    "customer_redeemed_7d", "customer_rollbacks_7d", "customer_refunds_7d",
    "customer_voucher_refunds_7d", "customer_full_refunds_7d", "customer_refund_ratio_7d",
)  # fmt: skip
CODE_FEATURES = (
    "code_attempts_10m", "code_attempts_1h", "code_attempts_7d", "code_velocity_ratio",
    "code_customers_24h", "code_nonholders_7d",
)  # fmt: skip
STORE_FEATURES = ("store_attempts_1h", "store_off_hours_manual_24h")
STAFF_FEATURES = ("staff_attempts_1h", "staff_attempts_24h", "staff_off_hours_manual_24h")
FEATURES: tuple[str, ...] = (
    *ATTEMPT_FEATURES, *DEVICE_FEATURES, *IP_FEATURES, *PAYMENT_FEATURES, *CUSTOMER_FEATURES,
    *CODE_FEATURES, *STORE_FEATURES, *STAFF_FEATURES,
)  # fmt: skip


def _json(path: str) -> pl.Expr:
    return pl.col("payload").str.json_path_match(path)


def _timeline(events: pl.DataFrame) -> pl.DataFrame:
    """Attempts, rollbacks and refunds with parsed payloads and a strictly increasing time key `t`
    (nanoseconds; ties at the same microsecond broken by seq). Rows that come with `t_offset`
    (load_fraud_events' older reference events, read without the rest of their instant) keep it."""
    offset = pl.int_range(pl.len()).over("ts")
    if "t_offset" in events.columns:
        offset = pl.coalesce(pl.col("t_offset"), offset)
    frame = (
        events.filter(pl.col("event_type").is_in(FEATURE_EVENT_TYPES))
        .sort("seq")
        .with_columns(
            ts=pl.col("occurred_at").str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ"),
        )
        .with_columns(
            t=pl.col("ts").cast(pl.Int64) * 1000 + offset,
            event_date=pl.col("occurred_at").str.slice(0, 10),
        )
    )
    return frame


def build_attempt_features(
    events: pl.DataFrame, first: date | None = None, last: date | None = None
) -> pl.DataFrame:
    """One row per attempt with event_date in [first, last] (default: all): ID_COLUMNS + FEATURES."""
    check_columns(events, NEEDED_COLUMNS, "the events frame")
    timeline = _timeline(events)
    attempts = timeline.filter(pl.col("event_type").is_in(ATTEMPT_TYPES))
    if attempts.is_empty():
        raise DataError("no redemption attempts (validations or redemptions) in the events")
    attempts = _with_attempt_fields(attempts, timeline)
    activity = _activity(attempts, timeline)

    features = attempts
    for key, prefix, specs in _WINDOWS:
        features = features.join(
            _rolling(activity, key, specs, prefix), on="row", how="left", maintain_order="left"
        )
    features = features.with_columns(
        device_fail_ratio_1h=_ratio("device_failures_1h", "device_attempts_1h"),
        ip_fail_ratio_1h=_ratio("ip_failures_1h", "ip_attempts_1h"),
        customer_refund_ratio_7d=_ratio("customer_voucher_refunds_7d", "customer_redeemed_7d"),
        # How far this hour runs above the code's usual hourly rate over the past week.
        code_velocity_ratio=pl.col("code_attempts_1h").cast(pl.Float64)
        / (pl.col("code_attempts_7d").cast(pl.Float64) / 168.0 + 1.0),
    )
    if first is not None:
        features = features.filter(pl.col("event_date") >= first.isoformat())
    if last is not None:
        features = features.filter(pl.col("event_date") <= last.isoformat())
    return (
        _with_outcomes(features, timeline)
        .select(
            *ID_COLUMNS,
            "t",  # the windows' time key (ns, ties broken by seq), for the layers after them
            *[pl.col(name).cast(pl.Float64).fill_null(0.0).fill_nan(0.0) for name in FEATURES],
            *OUTCOME_COLUMNS,
        )
        .sort("seq")
    )


def _with_outcomes(features: pl.DataFrame, timeline: pl.DataFrame) -> pl.DataFrame:
    """Whether each successful redemption was later rolled back, and whether the order of each
    attempt was refunded (in part or in full)."""
    typed = pl.col("event_type")
    rolled = timeline.filter(typed == "redemption_rolled_back")["redemption_id"].drop_nulls()
    refunds = (
        timeline.filter(typed == "order_refunded", pl.col("order_id").is_not_null())
        .group_by("order_id")
        .agg(refund_total=_json("$.amount").cast(pl.Float64, strict=False).sum())
        .join(_order_discounts(timeline), on="order_id", how="left")
    )
    succeeded = typed == "redemption_succeeded"
    paid = pl.col("order_amount") - pl.col("order_discount").fill_null(0.0)
    return (
        features.join(refunds, on="order_id", how="left", maintain_order="left")
        .with_columns(
            rolled_back=(
                succeeded & pl.col("redemption_id").is_in(rolled.unique().implode())
            ).fill_null(False),
            # of any attempt on an order, redeemed or not: refund abuse refunds them all
            refunded=pl.col("refund_total").is_not_null(),
            refunded_full=(
                (pl.col("refund_total") >= FULL_REFUND_SHARE * paid) & (paid > 0)
            ).fill_null(False),
        )
        .drop("refund_total", "order_discount")
    )


def _order_discounts(timeline: pl.DataFrame) -> pl.DataFrame:
    """order_id, order_discount: what the customer did not pay for each order with a voucher."""
    return (
        timeline.filter(
            pl.col("event_type") == "redemption_succeeded", pl.col("order_id").is_not_null()
        )
        .group_by("order_id")
        .agg(order_discount=_json("$.discount").cast(pl.Float64, strict=False).fill_null(0.0).sum())
    )


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    return pl.when(pl.col(denominator) > 0).then(
        pl.col(numerator).cast(pl.Float64) / pl.col(denominator)
    )


_ATTEMPT_PAYLOAD = pl.Struct(
    {
        "code": pl.String,
        "valid": pl.Boolean,
        "reasons": pl.List(pl.Struct({"code": pl.String})),
        "discount": pl.Float64,
        "order_amount": pl.Float64,
        "order": pl.Struct({"amount": pl.Float64}),
    }
)


def _attempt_payloads(attempts: pl.DataFrame) -> pl.DataFrame:
    """The payload fields the features read, parsed once per attempt. A payload whose fields
    are not of these types (the pipeline's raw checks stop those before the models) is read
    field by field instead, what cannot be read taken as missing."""
    try:
        fields = attempts.select(parsed=pl.col("payload").str.json_decode(_ATTEMPT_PAYLOAD)).unnest(
            "parsed"
        )
        return fields.select(
            code=pl.col("code"),
            valid=pl.col("valid").cast(pl.String).str.to_lowercase(),
            reason=pl.col("reasons").list.first().struct.field("code"),
            discount=pl.col("discount"),
            order_amount=pl.col("order_amount"),
            order_total=pl.col("order").struct.field("amount"),
        )
    except pl.exceptions.PolarsError:
        return attempts.select(
            code=_json("$.code"),
            valid=_json("$.valid"),
            reason=_json("$.reasons[0].code"),
            discount=_json("$.discount").cast(pl.Float64, strict=False),
            order_amount=_json("$.order_amount").cast(pl.Float64, strict=False),
            order_total=_json("$.order.amount").cast(pl.Float64, strict=False),
        )


def _with_attempt_fields(attempts: pl.DataFrame, timeline: pl.DataFrame) -> pl.DataFrame:
    """The attempt's own fields: outcome, hour, channel, amounts, holder, account age."""
    attempts = pl.concat([attempts, _attempt_payloads(attempts)], how="horizontal")
    amount = (
        pl.when(pl.col("event_type") == "voucher_validated")
        .then(pl.col("order_amount"))
        .otherwise(pl.col("order_total"))
        .fill_null(0.0)
    )
    frame = attempts.with_columns(
        row=pl.int_range(pl.len(), dtype=pl.Int64),
        code=pl.col("code").str.to_uppercase(),
        is_validation=(pl.col("event_type") == "voucher_validated"),
        failed=(pl.col("event_type") == "redemption_rejected")
        | ((pl.col("event_type") == "voucher_validated") & (pl.col("valid") == "false")),
        code_not_found=(pl.col("reason") == "resource_not_found").fill_null(False),
        hour_utc=pl.col("ts").dt.hour(),
        has_customer=pl.col("customer_id").is_not_null(),
        manual_no_customer=pl.col("staff_id").is_not_null() & pl.col("customer_id").is_null(),
        channel_pos=pl.col("sales_channel") == "pos",
        channel_web=pl.col("sales_channel") == "web",
        channel_app=pl.col("sales_channel") == "app",
        order_amount=amount,
        discount=pl.col("discount").fill_null(0.0),
    ).with_columns(
        off_hours=(pl.col("hour_utc") >= OFF_HOURS_FROM) | (pl.col("hour_utc") < OFF_HOURS_TO),
        discount_share=pl.when(pl.col("order_amount") > 0)
        .then(pl.col("discount") / pl.col("order_amount"))
        .otherwise(0.0),
    )

    # The voucher's holder at the attempt: the latest publication before it.
    published = (
        timeline.filter(pl.col("event_type") == "voucher_published")
        .filter(pl.col("voucher_id").is_not_null())
        .select("voucher_id", "t", holder_id=pl.col("customer_id"))
        .sort("t")
    )
    frame = frame.sort("t").join_asof(
        published, on="t", by="voucher_id", strategy="backward", check_sortedness=False
    )
    created = (
        timeline.filter(pl.col("event_type") == "customer_created")
        .group_by("customer_id")
        .agg(created_t=pl.col("t").min())
    )
    # Campaigns for new customers only, from their definitions (any merchant's welcome offer).
    welcome_campaigns = (
        timeline.filter(pl.col("event_type") == "campaign_created")
        .filter(_json("$.definition.rules.new_customers_only") == "true")["campaign_id"]
        .drop_nulls()
        .unique()
    )
    frame = frame.join(created, on="customer_id", how="left").with_columns(
        holder_mismatch=pl.col("holder_id").is_not_null()
        & pl.col("customer_id").is_not_null()
        & (pl.col("holder_id") != pl.col("customer_id")),
        account_age_h=pl.when(pl.col("customer_id").is_null())
        .then(-1.0)
        .when(pl.col("created_t").is_null() | (pl.col("created_t") > pl.col("t")))
        .then(OLD_ACCOUNT_H)
        .otherwise(((pl.col("t") - pl.col("created_t")) / 3.6e12).clip(0.0, OLD_ACCOUNT_H)),
    )
    frame = frame.with_columns(
        welcome_take=(pl.col("event_type") == "redemption_succeeded")
        & pl.col("customer_id").is_not_null()
        & (
            pl.col("campaign_id").is_in(welcome_campaigns.implode()).fill_null(False)
            | ((pl.col("account_age_h") >= 0) & (pl.col("account_age_h") < WELCOME_ACCOUNT_AGE_H))
        )
    )
    return frame.sort("row")


def _activity(attempts: pl.DataFrame, timeline: pl.DataFrame) -> pl.DataFrame:
    """Attempts plus the customers' rollbacks and refunds on one time axis, with 0/1 flags to sum."""
    redeemed_orders = (
        attempts.filter(
            (pl.col("event_type") == "redemption_succeeded") & pl.col("order_id").is_not_null()
        )
        .group_by("order_id")
        .agg(voucher_order_amount=pl.col("order_amount").max())
        .join(_order_discounts(timeline), on="order_id", how="left")
        .select(
            "order_id",
            voucher_order_paid=pl.col("voucher_order_amount")
            - pl.col("order_discount").fill_null(0.0),
        )
    )
    refunds = (
        timeline.filter(pl.col("event_type") == "order_refunded")
        .join(redeemed_orders, on="order_id", how="left")
        .with_columns(refund_amount=_json("$.amount").cast(pl.Float64, strict=False))
        .select(
            "t",
            "customer_id",
            is_refund=pl.lit(1),
            is_voucher_refund=pl.col("voucher_order_paid").is_not_null().cast(pl.Int32),
            is_full_refund=(
                pl.col("refund_amount")
                >= FULL_REFUND_SHARE * pl.col("voucher_order_paid").fill_null(float("inf"))
            )
            .fill_null(False)
            .cast(pl.Int32),
        )
    )
    rollbacks = timeline.filter(pl.col("event_type") == "redemption_rolled_back").select(
        "t", "customer_id", is_rollback=pl.lit(1)
    )
    base = attempts.select(
        "row",
        "t",
        "customer_id",
        "device_hash",
        "ip_hash",
        "payment_hash",
        "code",
        "store_id",
        "staff_id",
        is_attempt=pl.lit(1),
        is_failure=pl.col("failed").cast(pl.Int32),
        is_redeemed=(pl.col("event_type") == "redemption_succeeded").cast(pl.Int32),
        is_off_hours_manual=(pl.col("off_hours") & pl.col("manual_no_customer")).cast(pl.Int32),
        nonholder=pl.when(pl.col("holder_mismatch")).then(pl.col("customer_id")),
        redeemer=pl.when(pl.col("event_type") == "redemption_succeeded").then(
            pl.col("customer_id")
        ),
        welcomer=pl.when(pl.col("welcome_take")).then(pl.col("customer_id")),
    )
    return pl.concat([base, refunds, rollbacks], how="diagonal").with_columns(
        pl.col("row").fill_null(-1),
        *[
            pl.col(name).fill_null(0)
            for name in (
                "is_attempt",
                "is_failure",
                "is_redeemed",
                "is_off_hours_manual",
                "is_refund",
                "is_voucher_refund",
                "is_full_refund",
                "is_rollback",
            )
        ],
    )


def _attempt(name: str) -> pl.Expr:
    return pl.col(name).filter(pl.col("is_attempt") == 1)


def _distinct(name: str) -> pl.Expr:
    return _attempt(name).drop_nulls().n_unique()


# (key column, feature prefix, {window: {suffix: aggregation}}). Windows end at the attempt.
_WINDOWS: tuple[tuple[str, str, dict[str, dict[str, pl.Expr]]], ...] = (
    (
        "device_hash",
        "device",
        {
            "1h": {
                "attempts_1h": pl.col("is_attempt").sum(),
                "failures_1h": pl.col("is_failure").sum(),
                "codes_1h": _distinct("code"),
            },
            "24h": {
                "attempts_24h": pl.col("is_attempt").sum(),
                "redeemers_24h": _distinct("redeemer"),
            },
            "7d": {
                "customers_7d": _distinct("customer_id"),
                "welcome_accounts_7d": _distinct("welcomer"),
            },
        },
    ),
    (
        "ip_hash",
        "ip",
        {
            "1h": {
                "attempts_1h": pl.col("is_attempt").sum(),
                "failures_1h": pl.col("is_failure").sum(),
                "codes_1h": _distinct("code"),
            },
            "7d": {"customers_7d": _distinct("customer_id")},
        },
    ),
    (
        "payment_hash",
        "payment",
        {
            "24h": {
                "attempts_24h": pl.col("is_attempt").sum(),
                "redeemers_24h": _distinct("redeemer"),
            },
            "7d": {
                "customers_7d": _distinct("customer_id"),
                "welcome_accounts_7d": _distinct("welcomer"),
            },
        },
    ),
    (
        "customer_id",
        "customer",
        {
            "24h": {
                "attempts_24h": pl.col("is_attempt").sum(),
                "failures_24h": pl.col("is_failure").sum(),
            },
            "7d": {
                "codes_7d": _distinct("code"),
                "redeemed_7d": pl.col("is_redeemed").sum(),
                "rollbacks_7d": pl.col("is_rollback").sum(),
                "refunds_7d": pl.col("is_refund").sum(),
                "voucher_refunds_7d": pl.col("is_voucher_refund").sum(),
                "full_refunds_7d": pl.col("is_full_refund").sum(),
            },
        },
    ),
    (
        "code",
        "code",
        {
            "10m": {"attempts_10m": pl.col("is_attempt").sum()},
            "1h": {"attempts_1h": pl.col("is_attempt").sum()},
            "24h": {"customers_24h": _distinct("customer_id")},
            "7d": {
                "attempts_7d": pl.col("is_attempt").sum(),
                "nonholders_7d": _distinct("nonholder"),
            },
        },
    ),
    (
        "store_id",
        "store",
        {
            "1h": {"attempts_1h": pl.col("is_attempt").sum()},
            "24h": {"off_hours_manual_24h": pl.col("is_off_hours_manual").sum()},
        },
    ),
    (
        "staff_id",
        "staff",
        {
            "1h": {"attempts_1h": pl.col("is_attempt").sum()},
            "24h": {
                "attempts_24h": pl.col("is_attempt").sum(),
                "off_hours_manual_24h": pl.col("is_off_hours_manual").sum(),
            },
        },
    ),
)


def _rolling(
    activity: pl.DataFrame, key: str, specs: dict[str, dict[str, pl.Expr]], prefix: str
) -> pl.DataFrame:
    """For every attempt row with a `key`, the aggregations over (t - window, t] of that key."""
    keyed = activity.filter(pl.col(key).is_not_null()).sort(key, "t")
    result: pl.DataFrame | None = None
    for window, aggregations in specs.items():
        part = (
            keyed.rolling("t", period=f"{_NS[window]}i", group_by=key)
            .agg(
                row=pl.col("row").last(),
                **{f"{prefix}_{name}": expr for name, expr in aggregations.items()},
            )
            .filter(pl.col("row") >= 0)
            .drop(key, "t")
        )
        result = part if result is None else result.join(part, on="row", how="inner")
    assert result is not None
    return result


def load_fraud_events(
    lake_dir: Path, first: date, last: date, lookback_days: int = LOOKBACK_DAYS
) -> pl.DataFrame:
    """What the features of [first, last] need: the attempts, refunds and rollbacks from
    `lookback_days` before `first`, and every publication, customer creation and campaign
    definition up to `last`.

    Only NEEDED_COLUMNS are read. The publications and creations before the lookback serve
    only to find the holder of a voucher tried in the window and the creation time of an
    account seen in it, so only those are kept, with only their ids and times (the other columns
    are null) and their number among the events of their instant (`t_offset`, see `_timeline`)."""
    if first > last:
        raise DataError(f"empty window: from {first} is after to {last}")
    since = first - timedelta(days=lookback_days)
    scan = scan_events(lake_dir).filter(pl.col("event_date") <= last.isoformat())
    recent = (
        scan.filter(
            pl.col("event_date") >= since.isoformat(),
            pl.col("event_type").is_in(FEATURE_EVENT_TYPES),
        )
        .select(NEEDED_COLUMNS)
        .collect()
    )
    tried = recent.filter(pl.col("event_type").is_in(ATTEMPT_TYPES))
    vouchers = tried["voucher_id"].drop_nulls().unique()
    customers = tried["customer_id"].drop_nulls().unique()
    typed = pl.col("event_type")
    older = (
        scan.filter(pl.col("event_date") < since.isoformat(), typed.is_in(_REFERENCE_TYPES))
        .select(_REFERENCE_COLUMNS)
        .sort("seq")
        # `_timeline` numbers the events of one instant in seq order, and a creation's number is
        # part of the account age: number them before leaving out the ones not needed.
        .with_columns(t_offset=pl.int_range(pl.len()).over("occurred_at"))
        .filter(
            ((typed == "voucher_published") & pl.col("voucher_id").is_in(vouchers.implode()))
            | ((typed == "customer_created") & pl.col("customer_id").is_in(customers.implode()))
        )
        .collect()
    )
    # Campaign definitions say which campaigns are for new customers only: a few rows, all kept.
    campaigns = (
        scan.filter(pl.col("event_date") < since.isoformat(), typed == "campaign_created")
        .select("seq", "event_type", "occurred_at", "campaign_id", "payload")
        .collect()
    )
    return pl.concat([recent, older, campaigns], how="diagonal").sort("seq")


_REFERENCE_TYPES = ("voucher_published", "customer_created")
_REFERENCE_COLUMNS = ("seq", "event_type", "occurred_at", "voucher_id", "customer_id")
