"""Point-in-time features for reward personalisation, from the ledger's events (lake schema).

Every customer feature is computed as of a moment from events strictly before it (an as-of
join on cumulative per-customer tables), so a training row for an offer published at `t` sees
exactly what the platform knew at `t`: no look-ahead into the redemption it is labelled with.

Three families:
- customer: lifetime value and RFM (orders net of refunds, recency, frequency, recent windows),
  preferences (category shares of ordered items, lunch-time share, sales-channel shares,
  consent per channel) and engagement (offers published / accepted / redeemed, per channel,
  recent offer pressure, deliveries failed, times held out);
- offer: the campaign definition (voucher kind, discount type and value, minimum order,
  validity, weekdays, acceptance, distribution mode and trigger) and the channel it goes out on;
- context: weekday and hour of the offer, and the offer's size relative to the customer's
  average order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

# The lake columns these features read (pipelines/ledger_extract.py writes them all as text).
REQUIRED_COLUMNS = (
    "event_type",
    "occurred_at",
    "campaign_id",
    "voucher_id",
    "customer_id",
    "order_id",
    "channel",
    "redemption_id",
    "sales_channel",
    "payload",
)
CHANNELS = ("email", "sms", "push")
SALES_CHANNELS = ("app", "web", "pos")
MAX_CATEGORIES = 12
LUNCH_BEFORE_HOUR = 15  # orders before 15:00 UTC count as lunch, later ones as dinner

# Categorical features are integer codes over these vocabularies (unknown → missing).
CATEGORICAL_VOCAB: dict[str, tuple[str, ...]] = {
    "voucher_kind": ("unique", "gift", "standalone"),
    "discount_type": ("amount", "percent", "fixed_price", "free_item", "unspecified"),
    "distribution_mode": ("promotion", "autopilot"),
    "trigger_type": ("gone_quiet", "personal_date", "first_order", "nth_order", "segment_entered"),
    "offer_channel": CHANNELS,
}

# One per event row, for running counts (a literal 1 would not broadcast inside cum_sum).
ONE = pl.col("at").is_not_null().cast(pl.Int64)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
_ORDER_DTYPE = pl.Struct(
    {
        "amount": pl.Int64,
        "items": pl.List(pl.Struct({"category": pl.String, "quantity": pl.Int64})),
    }
)


class PersonalisationInputError(ValueError):
    """Events that personalisation cannot learn from or score; the message names the problem."""


def prepare_events(events: pl.DataFrame) -> pl.DataFrame:
    """The columns we read, as text with '' as missing, and `at` parsed as a UTC datetime."""
    missing = [name for name in REQUIRED_COLUMNS if name not in events.columns]
    if missing:
        raise PersonalisationInputError(
            f"the events frame lacks column(s) {', '.join(missing)}: pass the lake's events "
            f"(columns {', '.join(REQUIRED_COLUMNS)}, ...)"
        )
    if events.height == 0:
        raise PersonalisationInputError("the events frame is empty: no events in the window")
    frame = events.select(
        [pl.col(name).cast(pl.String).replace("", None).alias(name) for name in REQUIRED_COLUMNS]
    )
    try:
        frame = frame.with_columns(
            at=pl.col("occurred_at").str.to_datetime(
                _TIME_FORMAT, time_unit="us", time_zone="UTC", strict=True
            )
        )
    except pl.exceptions.PolarsError as error:
        raise PersonalisationInputError(
            f"occurred_at must be UTC ISO text like 2026-11-26T10:09:57.612363Z: {error}"
        ) from error
    return frame.drop("occurred_at").sort("at", maintain_order=True)


@dataclass(frozen=True)
class EventTables:
    """The events split into the per-customer timelines the features are built from."""

    orders: pl.DataFrame  # customer_id, at, amount, lunch, app/web/pos, item quantity per category
    refunds: pl.DataFrame  # customer_id, at, amount
    cancellations: pl.DataFrame  # customer_id, at
    offers: pl.DataFrame  # voucher_published: customer_id, at, campaign_id, voucher_id, channel
    accepted: pl.DataFrame  # customer_id, at, voucher_id
    redemptions: (
        pl.DataFrame
    )  # successful, not rolled back: customer_id, at, voucher_id, campaign_id
    held_out: pl.DataFrame  # customer_id, at, campaign_id
    delivery_failures: pl.DataFrame  # customer_id, at
    consent: pl.DataFrame  # customer_id, at, channel, granted (from creation and changes)
    customers: pl.DataFrame  # customer_id, created_at, signup_at
    campaigns: pl.DataFrame  # one row per campaign: its definition's attributes
    statuses: pl.DataFrame  # campaign_id, at, status
    categories: tuple[str, ...]
    end: datetime  # the last event's time: labels and outcomes later than this are unknown
    cache: dict[str, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)


# The event types build_tables reads: loading only these keeps memory to what is used.
EVENT_TYPES = (
    "campaign_created",
    "campaign_status_changed",
    "consent_changed",
    "customer_created",
    "customer_held_out",
    "delivery_failed",
    "order_cancelled",
    "order_recorded",
    "order_refunded",
    "redemption_rolled_back",
    "redemption_succeeded",
    "voucher_accepted",
    "voucher_published",
)


def build_tables(events: pl.DataFrame, categories: tuple[str, ...] | None = None) -> EventTables:
    """Parse the events once. `categories` fixes the item-category vocabulary (a trained model's);
    without it, the most frequent ones in the events are used."""
    frame = prepare_events(events)
    of = frame.filter
    typed = pl.col("event_type")

    orders = (
        of(typed.eq("order_recorded") & pl.col("customer_id").is_not_null())
        .with_columns(order=pl.col("payload").str.json_decode(_ORDER_DTYPE))
        .select(
            "customer_id",
            "at",
            "order_id",
            amount=pl.col("order").struct.field("amount").fill_null(0),
            items=pl.col("order").struct.field("items"),
            lunch=(pl.col("at").dt.hour() < LUNCH_BEFORE_HOUR).cast(pl.Int64),
            **{
                f"via_{name}": pl.col("sales_channel").eq(name).fill_null(False).cast(pl.Int64)
                for name in SALES_CHANNELS
            },
        )
    )
    lines = (
        orders.select("order_id", "items")
        .explode("items")
        .drop_nulls("items")
        .select(
            "order_id",
            category=pl.col("items").struct.field("category").fill_null("other"),
            quantity=pl.col("items").struct.field("quantity").fill_null(1),
        )
    )
    if categories is None:
        ranked = (
            lines.group_by("category")
            .agg(pl.col("quantity").sum())
            .sort(["quantity", "category"], descending=[True, False])
        )
        categories = tuple(sorted(ranked["category"].head(MAX_CATEGORIES).to_list()))
    per_order = (
        lines.filter(pl.col("category").is_in(list(categories)))
        .group_by("order_id", "category")
        .agg(pl.col("quantity").sum())
        .pivot("category", index="order_id", values="quantity", on_columns=list(categories))
        if lines.height and categories
        else pl.DataFrame({"order_id": []}, schema={"order_id": pl.String})
    )
    for category in categories:
        if category not in per_order.columns:
            per_order = per_order.with_columns(pl.lit(0, pl.Int64).alias(category))
    orders = (
        orders.drop("items")
        .join(
            per_order.select(
                "order_id",
                *[pl.col(c).fill_null(0).cast(pl.Int64).alias(f"cat_{c}") for c in categories],
            ),
            on="order_id",
            how="left",
            maintain_order="left",
        )
        .with_columns([pl.col(f"cat_{c}").fill_null(0) for c in categories])
        .drop("order_id")
    )

    refunds = of(typed.eq("order_refunded") & pl.col("customer_id").is_not_null()).select(
        "customer_id", "at", amount=pl.col("payload").str.json_path_match("$.amount").cast(pl.Int64)
    )
    cancellations = of(typed.eq("order_cancelled") & pl.col("customer_id").is_not_null()).select(
        "customer_id", "at"
    )
    offers = of(typed.eq("voucher_published") & pl.col("customer_id").is_not_null()).select(
        "customer_id", "at", "campaign_id", "voucher_id", "channel"
    )
    accepted = of(typed.eq("voucher_accepted") & pl.col("customer_id").is_not_null()).select(
        "customer_id", "at", "voucher_id"
    )
    rolled_back = of(typed.eq("redemption_rolled_back"))["redemption_id"].drop_nulls()
    redemptions = of(
        typed.eq("redemption_succeeded")
        & pl.col("customer_id").is_not_null()
        & ~pl.col("redemption_id").is_in(rolled_back)
    ).select("customer_id", "at", "voucher_id", "campaign_id")
    held_out = of(typed.eq("customer_held_out") & pl.col("customer_id").is_not_null()).select(
        "customer_id", "at", "campaign_id"
    )
    delivery_failures = of(
        typed.eq("delivery_failed") & pl.col("customer_id").is_not_null()
    ).select("customer_id", "at")

    created = of(typed.eq("customer_created") & pl.col("customer_id").is_not_null())
    consent = consent_events(
        created, of(typed.eq("consent_changed") & pl.col("customer_id").is_not_null())
    )
    customers = created.group_by("customer_id").agg(
        created_at=pl.col("at").min(),
        signup_at=pl.col("payload")
        .str.json_path_match("$.signup_at")
        .str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=False)
        .min(),
    )

    campaigns = campaign_definitions(of(typed.eq("campaign_created")))
    statuses = pl.concat(
        [
            campaigns.select("campaign_id", at="created_at", status="initial_status"),
            of(typed.eq("campaign_status_changed")).select(
                "campaign_id", "at", status=pl.col("payload").str.json_path_match("$.status")
            ),
        ]
    ).sort("at", maintain_order=True)
    return EventTables(
        orders=orders,
        refunds=refunds,
        cancellations=cancellations,
        offers=offers,
        accepted=accepted,
        redemptions=redemptions,
        held_out=held_out,
        delivery_failures=delivery_failures,
        consent=consent,
        customers=customers,
        campaigns=campaigns,
        statuses=statuses,
        categories=categories,
        end=frame["at"].max(),  # type: ignore[arg-type]
    )


def campaign_definitions(created: pl.DataFrame) -> pl.DataFrame:
    """One row per campaign from its `campaign_created` definition (the latest if repeated)."""
    import json

    rows: list[dict[str, Any]] = []
    for campaign_id, at, payload in created.select("campaign_id", "at", "payload").iter_rows():
        definition = json.loads(payload).get("definition", {})
        rows.append(_campaign_row(campaign_id or definition.get("id"), at, definition))
    schema = {
        "campaign_id": pl.String,
        "created_at": pl.Datetime("us", "UTC"),
        "initial_status": pl.String,
        "active_from": pl.Datetime("us", "UTC"),
        "active_until": pl.Datetime("us", "UTC"),
        "channels": pl.List(pl.String),
        "voucher_kind": pl.String,
        "discount_type": pl.String,
        "amount_off": pl.Float64,
        "percent_off": pl.Float64,
        "max_discount": pl.Float64,
        "has_product_target": pl.Int64,
        "min_order_amount": pl.Float64,
        "valid_days": pl.Float64,
        "acceptance_required": pl.Int64,
        "weekdays_allowed": pl.Int64,
        "holder_only": pl.Int64,
        "new_customers_only": pl.Int64,
        "distribution_mode": pl.String,
        "trigger_type": pl.String,
        "control_share": pl.Float64,
    }
    table = pl.DataFrame(rows, schema=schema, orient="row").with_columns(_shape())
    return table.sort("created_at").unique("campaign_id", keep="last", maintain_order=True)


def _shape() -> pl.Expr:
    """What makes two campaigns the same offer (a monthly promotion's editions, say): reward,
    conditions, validity and distribution, not the name or the dates."""
    parts = [
        "voucher_kind", "discount_type", "amount_off", "percent_off", "max_discount",
        "has_product_target", "min_order_amount", "valid_days", "weekdays_allowed",
        "acceptance_required", "distribution_mode", "trigger_type",
    ]  # fmt: skip
    return pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("-") for c in parts], separator="|"
    ).alias("shape")


def _campaign_row(campaign_id: str, at: datetime, d: dict[str, Any]) -> dict[str, Any]:
    def when(text: Any) -> datetime | None:
        if not text:
            return None
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))

    def number(value: Any) -> float | None:
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    discount = d.get("discount") or {}
    rules = d.get("rules") or {}
    distribution = d.get("distribution") or {}
    voucher = d.get("voucher") or {}
    return {
        "campaign_id": campaign_id,
        "created_at": at,
        "initial_status": d.get("status", "active"),
        "active_from": when(d.get("active_from")),
        "active_until": when(d.get("active_until")),
        "channels": list(distribution.get("channels") or []) if distribution else None,
        "voucher_kind": voucher.get("kind", "unique"),
        "discount_type": discount.get("type"),
        "amount_off": number(discount.get("amount_off")),
        "percent_off": number(discount.get("percent_off")),
        "max_discount": number(discount.get("max_discount")),
        "has_product_target": int(bool(discount.get("applies_to") or discount.get("product"))),
        "min_order_amount": number(rules.get("min_order_amount")),
        "valid_days": number(rules.get("valid_days_after_publication")),
        "acceptance_required": int(bool(rules.get("acceptance_required"))),
        "weekdays_allowed": len(rules.get("days_of_week") or []) or 7,
        "holder_only": int(rules.get("holder_only", voucher.get("kind") != "standalone")),
        "new_customers_only": int(bool(rules.get("new_customers_only"))),
        "distribution_mode": distribution.get("mode") if distribution else None,
        "trigger_type": (distribution.get("trigger") or {}).get("type") if distribution else None,
        "control_share": number(distribution.get("control_share")) if distribution else None,
    }


# -- customer features as of a moment ---------------------------------------------------------


def _cumulative(
    frame: pl.DataFrame, sums: dict[str, pl.Expr], last: str | None = None
) -> pl.DataFrame:
    """Per customer, running totals after each event (sorted by time), for as-of joins."""
    ordered = frame.sort(["customer_id", "at"], maintain_order=True)
    columns = [expr.cum_sum().over("customer_id").alias(name) for name, expr in sums.items()]
    if last:
        columns.append(pl.col("at").alias(last))
    return ordered.select("customer_id", "at", *columns)


def _as_of(
    queries: pl.DataFrame, table: pl.DataFrame, shift: timedelta | None = None, suffix: str = ""
) -> pl.DataFrame:
    """The table's latest row per customer strictly before each query's `at` (minus `shift`)."""
    key = pl.col("at") - shift if shift else pl.col("at")
    left = queries.select("row", "customer_id", key.alias("at")).sort("at")
    joined = left.join_asof(
        table.sort("at"),
        on="at",
        by="customer_id",
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    renamed = joined.drop("customer_id", "at").rename(
        {
            name: f"{name}{suffix}"
            for name in joined.columns
            if name not in ("row", "customer_id", "at")
        }
    )
    return renamed.sort("row")


def _timelines(tables: EventTables) -> dict[str, pl.DataFrame]:
    """The running per-customer totals the features join to, computed once per EventTables."""
    if tables.cache:
        return tables.cache
    cats = tables.categories
    order_sums = {
        "orders_total": ONE,
        "spend_gross": pl.col("amount"),
        "lunch_orders": pl.col("lunch"),
        **{f"via_{s}": pl.col(f"via_{s}") for s in SALES_CHANNELS},
        **{f"cat_{c}": pl.col(f"cat_{c}") for c in cats},
    }
    orders = _cumulative(tables.orders, order_sums, last="last_order_at")
    first_order = tables.orders.group_by("customer_id").agg(first_order_at=pl.col("at").min())
    orders_short = orders.select("customer_id", "at", "orders_total", "spend_gross")
    refunds = _cumulative(tables.refunds, {"refunds_total": ONE, "refund_amount": pl.col("amount")})
    cancels = _cumulative(tables.cancellations, {"cancellations_total": ONE})

    redeemed_channel = tables.redemptions.join(
        tables.offers.select("voucher_id", "channel").unique("voucher_id", keep="first"),
        on="voucher_id",
        how="left",
    )
    offers = _cumulative(
        tables.offers,
        {
            "offers_total": ONE,
            **{
                f"offers_{c}": pl.col("channel").eq(c).fill_null(False).cast(pl.Int64)
                for c in CHANNELS
            },
        },
        last="last_offer_at",
    )
    # a Series, not an imploded list: a list literal is broadcast to every row (GBs at scale)
    offered_vouchers = tables.offers["voucher_id"].drop_nulls().unique()
    redemptions = _cumulative(
        redeemed_channel,
        {
            "redemptions_any": ONE,
            "offer_redemptions": pl.col("voucher_id").is_in(offered_vouchers).cast(pl.Int64),
            **{
                f"redemptions_{c}": pl.col("channel").eq(c).fill_null(False).cast(pl.Int64)
                for c in CHANNELS
            },
        },
        last="last_redemption_at",
    )
    accepted = _cumulative(tables.accepted, {"accepted_total": ONE})
    held_out = _cumulative(tables.held_out, {"held_out_total": ONE})
    failures = _cumulative(tables.delivery_failures, {"delivery_failures": ONE})

    tables.cache.update(
        orders=orders,
        first_order=first_order,
        orders_short=orders_short,
        refunds=refunds,
        cancels=cancels,
        offers=offers,
        redemptions=redemptions,
        accepted=accepted,
        held_out=held_out,
        failures=failures,
    )
    return tables.cache


def customer_features(tables: EventTables, queries: pl.DataFrame) -> pl.DataFrame:
    """Features for each (customer_id, at) query row, from events strictly before `at`.

    `queries` needs `customer_id` and `at` (UTC datetime); the result has the same rows in the
    same order, with the customer feature columns (see `customer_feature_names`).
    """
    queries = queries.select("customer_id", "at").with_row_index("row")
    cats = tables.categories
    t = _timelines(tables)
    orders, first_order, orders_short = t["orders"], t["first_order"], t["orders_short"]
    refunds, cancels, offers, redemptions = (
        t["refunds"],
        t["cancels"],
        t["offers"],
        t["redemptions"],
    )
    accepted, held_out, failures = t["accepted"], t["held_out"], t["failures"]

    parts = [
        _as_of(queries, orders),
        _as_of(queries, orders_short, timedelta(days=30), "_before_30d"),
        _as_of(queries, orders_short, timedelta(days=90), "_before_90d"),
        _as_of(queries, refunds),
        _as_of(queries, cancels),
        _as_of(queries, offers),
        _as_of(
            queries,
            offers.select("customer_id", "at", "offers_total"),
            timedelta(days=14),
            "_before_14d",
        ),
        _as_of(queries, redemptions),
        _as_of(
            queries,
            redemptions.select("customer_id", "at", "offer_redemptions"),
            timedelta(days=14),
            "_before_14d",
        ),
        _as_of(queries, accepted),
        _as_of(queries, held_out),
        _as_of(queries, failures),
    ]
    for channel in CHANNELS:
        timeline = tables.consent.filter(pl.col("channel") == channel).select(
            "customer_id", "at", pl.col("granted").cast(pl.Int64).alias(f"consent_{channel}")
        )
        parts.append(_as_of(queries, timeline))
    wide = pl.concat([queries, *[part.drop("row") for part in parts]], how="horizontal")
    wide = wide.join(first_order, on="customer_id", how="left", maintain_order="left").join(
        tables.customers, on="customer_id", how="left", maintain_order="left"
    )
    return _derived_features(wide, cats)


def _derived_features(wide: pl.DataFrame, cats: tuple[str, ...]) -> pl.DataFrame:
    """The customer features from the raw totals as of each row's `at` (running counts, sums and
    latest times; see `customer_features` and `customer_snapshot`, which compute them two ways)."""
    counts = [
        "orders_total", "spend_gross", "lunch_orders", *[f"via_{s}" for s in SALES_CHANNELS],
        *[f"cat_{c}" for c in cats], "refunds_total", "refund_amount", "cancellations_total",
        "offers_total", *[f"offers_{c}" for c in CHANNELS], "redemptions_any", "offer_redemptions",
        *[f"redemptions_{c}" for c in CHANNELS], "accepted_total", "held_out_total",
        "delivery_failures", "orders_total_before_30d", "spend_gross_before_30d",
        "orders_total_before_90d", "spend_gross_before_90d", "offers_total_before_14d",
        "offer_redemptions_before_14d",
    ]  # fmt: skip
    wide = wide.with_columns([pl.col(c).fill_null(0).cast(pl.Float64) for c in counts])
    # A first order after the query time is unknown at that time.
    wide = wide.with_columns(
        first_order_at=pl.when(pl.col("first_order_at") < pl.col("at")).then(
            pl.col("first_order_at")
        )
    )

    def days_since(column: str) -> pl.Expr:
        return (pl.col("at") - pl.col(column)).dt.total_seconds() / 86_400

    orders_n = pl.col("orders_total")
    item_total = pl.sum_horizontal([pl.col(f"cat_{c}") for c in cats]) if cats else pl.lit(0.0)
    start = pl.coalesce(
        pl.when(pl.col("signup_at") < pl.col("at")).then(pl.col("signup_at")),
        pl.when(pl.col("created_at") < pl.col("at")).then(pl.col("created_at")),
        pl.col("first_order_at"),
    )
    features = wide.with_columns(
        item_total=item_total,
        tenure_start=start,
    ).select(
        "customer_id",
        "at",
        tenure_days=((pl.col("at") - pl.col("tenure_start")).dt.total_seconds() / 86_400),
        orders_total=orders_n,
        spend_net=pl.col("spend_gross") - pl.col("refund_amount"),
        avg_order_value=pl.when(orders_n > 0).then(pl.col("spend_gross") / orders_n),
        days_since_last_order=days_since("last_order_at"),
        days_since_first_order=days_since("first_order_at"),
        orders_per_30d=pl.when(orders_n > 0).then(
            orders_n * 30 / (days_since("first_order_at").clip(lower_bound=30))
        ),
        orders_30d=orders_n - pl.col("orders_total_before_30d"),
        orders_90d=orders_n - pl.col("orders_total_before_90d"),
        spend_90d=pl.col("spend_gross") - pl.col("spend_gross_before_90d"),
        refunds_total=pl.col("refunds_total"),
        cancellations_total=pl.col("cancellations_total"),
        lunch_share=pl.when(orders_n > 0).then(pl.col("lunch_orders") / orders_n),
        **{
            f"share_via_{s}": pl.when(orders_n > 0).then(pl.col(f"via_{s}") / orders_n)
            for s in SALES_CHANNELS
        },
        **{
            f"share_cat_{c}": pl.when(pl.col("item_total") > 0).then(
                pl.col(f"cat_{c}") / pl.col("item_total")
            )
            for c in cats
        },
        favourite_category=(
            pl.when(pl.col("item_total") > 0).then(
                pl.concat_list([pl.col(f"cat_{c}") for c in cats]).list.arg_max().cast(pl.Float64)
            )
            if cats
            else pl.lit(None, pl.Float64)
        ),
        offers_total=pl.col("offers_total"),
        **{f"offers_{c}": pl.col(f"offers_{c}") for c in CHANNELS},
        accepted_total=pl.col("accepted_total"),
        offer_redemptions=pl.col("offer_redemptions"),
        **{f"redemptions_{c}": pl.col(f"redemptions_{c}") for c in CHANNELS},
        redemptions_any=pl.col("redemptions_any"),
        accept_rate=(pl.col("accepted_total") + 0.35) / (pl.col("offers_total") + 1),
        redeem_rate=(pl.col("offer_redemptions") + 0.2) / (pl.col("offers_total") + 1),
        days_since_last_offer=days_since("last_offer_at"),
        days_since_last_redemption=days_since("last_redemption_at"),
        offers_14d=pl.col("offers_total") - pl.col("offers_total_before_14d"),
        open_offers_14d=(
            pl.col("offers_total")
            - pl.col("offers_total_before_14d")
            - (pl.col("offer_redemptions") - pl.col("offer_redemptions_before_14d"))
        ).clip(lower_bound=0),
        held_out_total=pl.col("held_out_total"),
        delivery_failures=pl.col("delivery_failures"),
        **{f"consent_{c}": pl.col(f"consent_{c}").cast(pl.Float64) for c in CHANNELS},
    )
    return features


def customer_feature_names(categories: tuple[str, ...]) -> list[str]:
    return [
        "tenure_days", "orders_total", "spend_net", "avg_order_value", "days_since_last_order",
        "days_since_first_order", "orders_per_30d", "orders_30d", "orders_90d", "spend_90d",
        "refunds_total", "cancellations_total", "lunch_share",
        *[f"share_via_{s}" for s in SALES_CHANNELS], *[f"share_cat_{c}" for c in categories],
        "favourite_category", "offers_total", *[f"offers_{c}" for c in CHANNELS],
        "accepted_total", "offer_redemptions", *[f"redemptions_{c}" for c in CHANNELS],
        "redemptions_any", "accept_rate", "redeem_rate", "days_since_last_offer",
        "days_since_last_redemption", "offers_14d", "open_offers_14d", "held_out_total",
        "delivery_failures", *[f"consent_{c}" for c in CHANNELS],
    ]  # fmt: skip


OFFER_FEATURES = [
    "voucher_kind", "discount_type", "amount_off", "percent_off", "max_discount",
    "has_product_target", "min_order_amount", "valid_days", "acceptance_required",
    "weekdays_allowed", "holder_only", "new_customers_only", "distribution_mode", "trigger_type",
    "control_share",
]  # fmt: skip
CONTEXT_FEATURES = [
    "offer_channel",
    "offer_weekday",
    "offer_hour",
    "discount_to_aov",
    "min_order_to_aov",
]


def offer_features(rows: pl.DataFrame, campaigns: pl.DataFrame) -> pl.DataFrame:
    """Add the campaign's attributes and the context features to rows with `campaign_id`, `at`,
    `channel` and `avg_order_value`; categorical attributes become integer codes."""
    joined = rows.join(
        campaigns.select("campaign_id", "shape", *OFFER_FEATURES),
        on="campaign_id",
        how="left",
        maintain_order="left",
    ).with_columns(offer_channel=pl.col("channel"))
    aov = pl.col("avg_order_value")
    joined = joined.with_columns(
        offer_weekday=pl.col("at").dt.weekday().cast(pl.Float64),
        offer_hour=pl.col("at").dt.hour().cast(pl.Float64),
        discount_to_aov=pl.when(pl.col("discount_type") == "percent")
        .then(pl.col("percent_off") / 100)
        .when(aov > 0)
        .then(pl.col("amount_off") / aov),
        min_order_to_aov=pl.when(aov > 0).then(pl.col("min_order_amount").fill_null(0) / aov),
    )
    return joined.with_columns(
        [
            pl.col(name)
            .replace_strict(
                {value: float(i) for i, value in enumerate(vocab)},
                default=None,
                return_dtype=pl.Float64,
            )
            .alias(name)
            for name, vocab in CATEGORICAL_VOCAB.items()
        ]
    )


def label_horizon(campaigns: pl.DataFrame, label_days: int) -> pl.DataFrame:
    """Per campaign, how long after publication a redemption still counts: its validity, at most
    `label_days` (and `label_days` when the campaign sets none)."""
    return campaigns.select(
        "campaign_id",
        "active_until",
        horizon_days=pl.min_horizontal(
            pl.col("valid_days").fill_null(label_days), pl.lit(float(label_days))
        ),
    )


def labelled_offers(tables: EventTables, label_days: int) -> pl.DataFrame:
    """Every publication to a customer with `label` (1 if its voucher was redeemed, not rolled
    back, within the horizon) and `horizon_end` (after which the outcome is known)."""
    first_redeemed = tables.redemptions.group_by("voucher_id").agg(redeemed_at=pl.col("at").min())
    return (
        tables.offers.join(
            label_horizon(tables.campaigns, label_days), on="campaign_id", how="left"
        )
        .with_columns(
            horizon_end=pl.min_horizontal(
                pl.col("at")
                + pl.duration(days=pl.col("horizon_days").fill_null(float(label_days))),
                pl.col("active_until").fill_null(pl.col("at") + pl.duration(days=3650)),
            )
        )
        .join(first_redeemed, on="voucher_id", how="left")
        .with_columns(
            label=(
                pl.col("redeemed_at").is_not_null()
                & (pl.col("redeemed_at") > pl.col("at"))
                & (pl.col("redeemed_at") <= pl.col("horizon_end"))
            ).cast(pl.Int64)
        )
        .select("customer_id", "at", "campaign_id", "voucher_id", "channel", "horizon_end", "label")
        .sort(["at", "voucher_id"])
    )


def uplift_assignments(tables: EventTables, label_days: int) -> pl.DataFrame:
    """Treatment assignments in campaigns with a control group: each publication (treated = 1)
    and each hold-out (treated = 0), with `converted` = an order within the campaign's horizon."""
    with_control = tables.held_out["campaign_id"].unique()
    treated = tables.offers.filter(pl.col("campaign_id").is_in(with_control)).select(
        "customer_id", "at", "campaign_id", treated=pl.lit(1)
    )
    control = tables.held_out.select("customer_id", "at", "campaign_id", treated=pl.lit(0))
    rows = (
        pl.concat([treated, control])
        .join(label_horizon(tables.campaigns, label_days), on="campaign_id", how="left")
        .with_columns(
            horizon_end=pl.col("at")
            + pl.duration(days=pl.col("horizon_days").fill_null(float(label_days)))
        )
        .sort(["at", "customer_id", "campaign_id"])
        .with_row_index("row")
    )
    # The first order strictly after the assignment: converted if it falls within the horizon.
    after = (
        rows.select("row", "customer_id", "at")
        .sort("at")
        .join_asof(
            tables.orders.select("customer_id", "at", next_order_at="at").sort("at"),
            on="at",
            by="customer_id",
            strategy="forward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    )
    return (
        rows.join(after.select("row", "next_order_at"), on="row", how="left")
        .with_columns(
            converted=(
                pl.col("next_order_at").is_not_null()
                & (pl.col("next_order_at") <= pl.col("horizon_end"))
            ).cast(pl.Int64)
        )
        .sort("row")
        .select("customer_id", "at", "campaign_id", "treated", "horizon_end", "converted")
    )


# -- every customer as of one moment (scoring) ------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What next best offers need at one moment, from the events strictly before it."""

    profile: pl.DataFrame  # one row per known customer: customer_id, at (the moment), features
    campaigns: pl.DataFrame  # as EventTables.campaigns
    statuses: pl.DataFrame  # campaign_id, at, status
    decided: pl.DataFrame  # publications and hold-outs: customer_id, campaign_id, at, voucher_id
    redeemed: pl.Series  # vouchers redeemed (and not rolled back)


# Event types whose payload the snapshot reads, besides orders (decoded on their own).
_PAYLOAD_TYPES = (
    "campaign_created",
    "campaign_status_changed",
    "consent_changed",
    "customer_created",
    "order_refunded",
)


def customer_snapshot(
    events: pl.DataFrame | pl.LazyFrame,
    as_of: datetime,
    categories: tuple[str, ...],
    orders: pl.LazyFrame | None = None,
) -> Snapshot:
    """Every known customer's features as of `as_of` (UTC), the same values `customer_features`
    gives for a query at `as_of`, computed as one group-by per customer rather than as-of joins.

    `events` may be a lazy scan of the lake: only the event types and columns used are read, and
    the order payloads (the bulk of the bytes) are decoded once, inside the scan. `orders` may
    give the orders already decoded (see `decode_orders`), as of any moment: they are cut here.
    """
    lazy = events.lazy()
    names = lazy.collect_schema().names()
    _check_required(names)
    stamp = as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    before = lazy.filter(pl.col("occurred_at").cast(pl.String) < stamp)
    typed = pl.col("event_type")
    order_rows = decode_orders(before) if orders is None else orders.filter(pl.col("at") < as_of)

    # The other events are small: two scans (with and without payload), run with the orders'.
    ids = ("customer_id", "campaign_id", "voucher_id", "channel", "redemption_id")
    seq = ["seq"] if "seq" in names else []
    plain = before.filter(typed.is_in([t for t in EVENT_TYPES if t not in _PAYLOAD_TYPES])).select(
        *seq, "event_type", *[_text(name) for name in ids], at=_parsed_at()
    )
    with_payload = before.filter(typed.is_in(_PAYLOAD_TYPES)).select(
        *seq,
        "event_type",
        *[_text(name) for name in ("customer_id", "campaign_id", "channel")],
        _text("payload"),
        at=_parsed_at(),
    )
    per_customer_orders = _order_totals(order_rows, as_of, categories)
    try:
        orders_total, plain_rows, payload_rows = pl.collect_all(
            [per_customer_orders, plain, with_payload]
        )
    except pl.exceptions.PolarsError as error:
        raise PersonalisationInputError(
            f"occurred_at must be UTC ISO text like 2026-11-26T10:09:57.612363Z: {error}"
        ) from error
    if orders_total.height == 0 and plain_rows.height == 0 and payload_rows.height == 0:
        raise PersonalisationInputError("the events frame is empty: no events in the window")
    # Order matters only among the few payload events (latest consent, campaign definitions and
    # statuses) and for a voucher's first publication (below): sorted there as prepare_events
    # does, by time and then the ledger's order, not all the events.
    order = ["at", "seq"] if seq else ["at"]
    payload_rows = payload_rows.sort(order, maintain_order=True)
    kind = plain_rows.partition_by("event_type", as_dict=True, include_key=False)
    payload_kind = payload_rows.partition_by("event_type", as_dict=True, include_key=False)

    def rows(table: dict, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        found = table.get((name,))
        return frame.clear() if found is None else found

    plain_empty = plain_rows.drop("event_type").clear()
    payload_empty = payload_rows.drop("event_type").clear()
    customer = pl.col("customer_id").is_not_null()
    offers = rows(kind, "voucher_published", plain_empty).filter(customer)
    rolled_back = rows(kind, "redemption_rolled_back", plain_empty)["redemption_id"].drop_nulls()
    redemptions = rows(kind, "redemption_succeeded", plain_empty).filter(
        customer & ~pl.col("redemption_id").is_in(rolled_back)
    )
    held_out = rows(kind, "customer_held_out", plain_empty).filter(customer)
    created = rows(payload_kind, "customer_created", payload_empty).filter(customer)
    changes = rows(payload_kind, "consent_changed", payload_empty).filter(customer)
    refunds = rows(payload_kind, "order_refunded", payload_empty).filter(customer)

    d14 = as_of - timedelta(days=14)
    offered = offers["voucher_id"].drop_nulls().unique()
    first_channel = (
        offers.filter(pl.col("voucher_id").is_in(redemptions["voucher_id"].drop_nulls()))
        .sort(order, maintain_order=True)
        .unique("voucher_id", keep="first", maintain_order=True)
        .select("voucher_id", "channel")
    )
    totals = [
        orders_total,
        refunds.group_by("customer_id").agg(
            refunds_total=pl.len(),
            refund_amount=pl.col("payload").str.json_path_match("$.amount").cast(pl.Int64).sum(),
        ),
        rows(kind, "order_cancelled", plain_empty)
        .filter(customer)
        .group_by("customer_id")
        .agg(cancellations_total=pl.len()),
        offers.group_by("customer_id").agg(
            offers_total=pl.len(),
            **{f"offers_{c}": pl.col("channel").eq(c).sum() for c in CHANNELS},
            last_offer_at=pl.col("at").max(),
            offers_total_before_14d=(pl.col("at") < d14).sum(),
        ),
        redemptions.select("customer_id", "at", "voucher_id")
        .join(first_channel, on="voucher_id", how="left")
        .with_columns(offered=pl.col("voucher_id").is_in(offered))
        .group_by("customer_id")
        .agg(
            redemptions_any=pl.len(),
            offer_redemptions=pl.col("offered").sum(),
            **{f"redemptions_{c}": pl.col("channel").eq(c).sum() for c in CHANNELS},
            last_redemption_at=pl.col("at").max(),
            offer_redemptions_before_14d=(pl.col("offered") & (pl.col("at") < d14)).sum(),
        ),
        rows(kind, "voucher_accepted", plain_empty)
        .filter(customer)
        .group_by("customer_id")
        .agg(accepted_total=pl.len()),
        held_out.group_by("customer_id").agg(held_out_total=pl.len()),
        rows(kind, "delivery_failed", plain_empty)
        .filter(customer)
        .group_by("customer_id")
        .agg(delivery_failures=pl.len()),
        _latest_consent(created, changes),
        created.group_by("customer_id").agg(
            created_at=pl.col("at").min(),
            signup_at=pl.col("payload")
            .str.json_path_match("$.signup_at")
            .str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=False)
            .min(),
        ),
    ]
    # Known: created before the moment, or ordered before it without a creation event.
    known = (
        pl.concat([created.select("customer_id"), orders_total.select("customer_id")])
        .unique()
        .sort("customer_id")
        .with_columns(at=pl.lit(as_of).cast(pl.Datetime("us", "UTC")))
    )
    wide = known
    for part in totals:
        wide = wide.join(part, on="customer_id", how="left", maintain_order="left")

    campaigns = campaign_definitions(
        rows(payload_kind, "campaign_created", payload_empty).select("campaign_id", "at", "payload")
    )
    statuses = pl.concat(
        [
            campaigns.select("campaign_id", at="created_at", status="initial_status"),
            rows(payload_kind, "campaign_status_changed", payload_empty).select(
                "campaign_id", "at", status=pl.col("payload").str.json_path_match("$.status")
            ),
        ]
    ).sort("at", maintain_order=True)
    decided = pl.concat(
        [
            offers.select("customer_id", "campaign_id", "at", "voucher_id"),
            held_out.select("customer_id", "campaign_id", "at", voucher_id=pl.lit(None, pl.String)),
        ]
    )
    return Snapshot(
        profile=_derived_features(wide, categories),
        campaigns=campaigns,
        statuses=statuses,
        decided=decided,
        redeemed=redemptions["voucher_id"].drop_nulls(),
    )


def decode_orders(events: pl.LazyFrame, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The `order_recorded` events of customers as customer_id, at, amount, lunch, via_* and
    items (category, quantity): the one JSON decode the order features need. `keep`: columns
    passed through as they are."""
    order = pl.col("payload").cast(pl.String).replace("", None).str.json_decode(_ORDER_DTYPE)
    return (
        events.filter(pl.col("event_type") == "order_recorded")
        .select(*keep, _text("customer_id"), _text("sales_channel"), "payload", at=_parsed_at())
        .filter(pl.col("customer_id").is_not_null())
        .select(
            *keep,
            "customer_id",
            "at",
            amount=order.struct.field("amount").fill_null(0),
            lunch=(pl.col("at").dt.hour() < LUNCH_BEFORE_HOUR).cast(pl.Int64),
            **{
                f"via_{name}": pl.col("sales_channel").eq(name).fill_null(False).cast(pl.Int64)
                for name in SALES_CHANNELS
            },
            items=order.struct.field("items"),
        )
    )


def _order_totals(
    orders: pl.LazyFrame, as_of: datetime, categories: tuple[str, ...]
) -> pl.LazyFrame:
    """Per customer: the order totals, category quantities and times `customer_features` reads."""
    item = pl.element()
    quantities = {
        f"cat_{c}": pl.col("items")
        .list.eval(
            pl.when(item.is_not_null() & (item.struct.field("category").fill_null("other") == c))
            .then(item.struct.field("quantity").fill_null(1))
            .otherwise(0)
        )
        .list.sum()
        .fill_null(0)
        for c in categories
    }
    d30, d90 = as_of - timedelta(days=30), as_of - timedelta(days=90)
    return (
        orders.with_columns(**quantities)
        .group_by("customer_id")
        .agg(
            orders_total=pl.len(),
            spend_gross=pl.col("amount").sum(),
            lunch_orders=pl.col("lunch").sum(),
            **{f"via_{s}": pl.col(f"via_{s}").sum() for s in SALES_CHANNELS},
            **{name: pl.col(name).sum() for name in quantities},
            last_order_at=pl.col("at").max(),
            first_order_at=pl.col("at").min(),
            orders_total_before_30d=(pl.col("at") < d30).sum(),
            spend_gross_before_30d=pl.col("amount").filter(pl.col("at") < d30).sum(),
            orders_total_before_90d=(pl.col("at") < d90).sum(),
            spend_gross_before_90d=pl.col("amount").filter(pl.col("at") < d90).sum(),
        )
    )


def consent_events(created: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """Every grant or withdrawal in time order: one per channel at each customer's creation,
    then the changes (customer_id, at, channel, granted)."""
    at_creation = [
        created.select(
            "customer_id",
            "at",
            channel=pl.lit(name),
            granted=pl.col("payload").str.json_path_match(f"$.consent.{name}").eq("true"),
        )
        for name in CHANNELS
    ]
    changed = changes.select(
        "customer_id",
        "at",
        channel=pl.coalesce(pl.col("channel"), pl.col("payload").str.json_path_match("$.channel")),
        granted=pl.col("payload").str.json_path_match("$.granted").eq("true"),
    )
    return pl.concat([*at_creation, changed]).sort("at", maintain_order=True)


def _latest_consent(created: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """Per customer, consent_<channel>: the latest grant or withdrawal (creation, then changes)."""
    latest = (
        consent_events(created, changes)
        .filter(pl.col("channel").is_in(CHANNELS))
        .group_by("customer_id", "channel")
        .agg(pl.col("granted").last().cast(pl.Int64))
    )
    wide = latest.pivot("channel", index="customer_id", values="granted", on_columns=CHANNELS)
    return wide.select(
        "customer_id", *[pl.col(c).alias(f"consent_{c}") for c in CHANNELS if c in wide.columns]
    ).with_columns(
        [pl.lit(None, pl.Int64).alias(f"consent_{c}") for c in CHANNELS if c not in wide.columns]
    )


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).replace("", None).alias(name)


def _parsed_at() -> pl.Expr:
    return (
        pl.col("occurred_at")
        .cast(pl.String)
        .str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=True)
    )


def _check_required(names: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise PersonalisationInputError(
            f"the events frame lacks column(s) {', '.join(missing)}: pass the lake's events "
            f"(columns {', '.join(REQUIRED_COLUMNS)}, ...)"
        )
