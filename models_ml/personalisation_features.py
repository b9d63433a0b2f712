"""Point-in-time features for personalisation, at the grain a merchant decides on: a customer and
a voucher (an offer), from the ledger's events (lake schema).

Every feature of a row published at `t` is computed from events strictly before `t`, so a
training row sees what the platform knew when the voucher went out, and nothing of the
redemption it is labelled with. Counts are over windows (30, 90, 365 days) and histories are
summed up as rates, never as totals since the ledger's start, which would only tell a model how
old the ledger is.

Four families:
- customer (customer, t): orders, spend and their recency over windows, category and sales
  channel shares, offers and redemptions over windows and the redemption rate, vouchers still
  open, consent per channel, and the merchant's declared customer attributes, read as numbers
  or labels (`customer_attributes_declared`);
- offer (campaign, contents, channel, t): the discount (type, value, minimum order), the
  voucher's kind and rules, its validity, and its contents (what `applies_to` names: products,
  categories, brands, collections, and how many catalogue products that covers, at what price);
  the campaign's and the same contents' past redemption rates;
- pair (customer, contents, t): the overlap between what the customer bought or redeemed before
  and what the voucher offers, per level (product, category, brand, collection); how often
  they were offered or redeemed the same contents before; the share of their purchases in the
  offer's categories;
- row: how many vouchers of the campaign the customer received at the same instant.

The events are read by personalisation_events (contents, catalogue, labels); the pair family
is personalisation_contents'. Each family is computed once per distinct key and joined.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from models_ml.personalisation_contents import contents_part, covered_products
from models_ml.personalisation_events import (
    CATEGORICAL_VOCAB,
    CHANNELS,
    LEVELS,
    ROW,
    SALES_CHANNELS,
    WINDOWS,
    EventTables,
    Vocabulary,
    labelled_offers,
    order_lines,
    read_attribute,
    with_horizon,
)

# -- features ----------------------------------------------------------------------------------


def customer_feature_names(vocab: Vocabulary) -> list[str]:
    return [
        *[f"orders_{w}d" for w in WINDOWS],
        "spend_90d", "spend_365d", "avg_order_value", "days_since_last_order",
        "refunds_365d", "cancellations_365d", "lunch_share",
        *[f"share_via_{s}" for s in SALES_CHANNELS], *[f"share_cat_{c}" for c in vocab.categories],
        "offers_90d", "offers_365d", "redemptions_90d", "redemptions_365d", "redeem_rate",
        "accept_rate", "days_since_last_offer", "days_since_last_redemption", "vouchers_open",
        "accepted_open", "overdue",
        "held_out_365d", "delivery_failures_365d", *[f"consent_{c}" for c in CHANNELS],
        *attribute_feature_names(vocab),
    ]  # fmt: skip


def attribute_feature_names(vocab: Vocabulary) -> list[str]:
    return [f"attr_{name}" for name in vocab.attribute_types]


OFFER_FEATURES = [
    "voucher_kind", "discount_type", "amount_off", "percent_off", "max_discount", "fixed_price",
    "min_order_amount", "validity_days", "acceptance_required", "weekdays_allowed", "holder_only",
    "new_customers_only", "distribution_mode", "trigger_type", "control_share", "offer_channel",
    "whole_order", "listed_products", "listed_categories", "listed_brands", "listed_collections",
    "contents_products", "contents_price_median", "discount_to_price", "discount_to_aov",
    "min_order_to_aov", "expected_orders_in_validity", "campaign_rate_before",
    "contents_rate_before", "shape_rate_before",
]  # fmt: skip
PAIR_FEATURES = [
    *[f"bought_{level}_overlap" for level in LEVELS],
    *[f"redeemed_{level}_overlap" for level in LEVELS],
    "same_contents_offered_before", "same_contents_redeemed_before", "share_in_offer_categories",
    "campaign_vouchers_at_once",
]  # fmt: skip


def feature_names(vocab: Vocabulary) -> list[str]:
    return [*customer_feature_names(vocab), *OFFER_FEATURES, *PAIR_FEATURES]


def categorical_features(vocab: Vocabulary) -> list[str]:
    """The features that are codes, not quantities (LightGBM splits them as categories)."""
    return [
        *CATEGORICAL_VOCAB,
        *[f"attr_{name}" for name, kind in vocab.attribute_types.items() if kind == "categorical"],
    ]


def offer_features(tables: EventTables, rows: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """`rows` (customer_id, at, campaign_id, channel, contents, ...) with every feature of
    `feature_names(vocab)` added, from events strictly before each row's `at`. Same rows, same
    order."""
    rows = rows.with_row_index("_row")
    customers = customer_features(tables, rows.select("customer_id", "at").unique(), vocab)
    offer_keys = rows.select("campaign_id", "contents", "at").unique()
    offers = _offer_part(tables, offer_keys)
    pairs = contents_part(tables, rows.select("customer_id", "contents", "at").unique(), vocab)
    wide = (
        rows.join(customers, on=["customer_id", "at"], how="left")
        .join(offers, on=["campaign_id", "contents", "at"], how="left")
        .join(pairs, on=["customer_id", "contents", "at"], how="left")
        .with_columns(
            campaign_vouchers_at_once=pl.len()
            .over("customer_id", "campaign_id", "at")
            .cast(pl.Float64),
            offer_channel=pl.col("channel"),
        )
    )
    aov = pl.col("avg_order_value")
    wide = wide.with_columns(
        discount_to_aov=pl.when(pl.col("discount_type") == "percent")
        .then(pl.col("percent_off") / 100)
        .when(aov > 0)
        .then(pl.col("amount_off") / aov),
        min_order_to_aov=pl.when(aov > 0).then(pl.col("min_order_amount").fill_null(0) / aov),
        # will the customer even shop before the voucher expires, at their recent pace?
        expected_orders_in_validity=pl.col("orders_90d") / 90 * pl.col("validity_days"),
    )
    coded = wide.with_columns(
        [
            pl.col(name)
            .replace_strict(
                {value: float(i) for i, value in enumerate(values)},
                default=None,
                return_dtype=pl.Float64,
            )
            .alias(name)
            for name, values in CATEGORICAL_VOCAB.items()
        ]
    )
    return coded.sort("_row").drop("_row")


# -- customer part -----------------------------------------------------------------------------


def customer_features(
    tables: EventTables, queries: pl.DataFrame, vocab: Vocabulary
) -> pl.DataFrame:
    """One row per (customer_id, at) of `queries` with the customer features as of `at`."""
    queries = queries.select("customer_id", "at").with_row_index("row")
    t = _timelines(tables, vocab)
    parts = [
        _as_of(queries, t["orders"]),
        _as_of(queries, t["offers_last"]),
        _as_of(queries, t["redemptions_last"]),
    ]
    for days in WINDOWS:
        parts.append(_as_of(queries, t["orders_short"], timedelta(days=days), f"_{days}d"))
    for days in (90, 365):
        parts.append(_as_of(queries, t["engagement"], timedelta(days=days), f"_{days}d"))
    parts.append(_as_of(queries, t["engagement"]))
    parts.append(_as_of(queries, t["lifetime"], timedelta(days=365), "_365d"))
    parts.append(_as_of(queries, t["lifetime"]))
    for channel in CHANNELS:
        timeline = tables.consent.filter(pl.col("channel") == channel).select(
            "customer_id", "at", pl.col("granted").cast(pl.Int64).alias(f"consent_{channel}")
        )
        parts.append(_as_of(queries, timeline))
    parts.append(_as_of(queries, t["attributes"]))
    wide = pl.concat([queries, *[part.drop("row") for part in parts]], how="horizontal")
    return _derived_customer_features(wide, vocab).drop("row")


def _timelines(tables: EventTables, vocab: Vocabulary) -> dict[str, pl.DataFrame]:
    """Running per-customer totals the customer features join to, computed once per tables."""
    key = f"timelines:{vocab.categories}:{sorted(vocab.attribute_types.items())}"
    if key in tables.cache:
        return tables.cache[key]
    one, zero = pl.lit(1, pl.Int64), pl.lit(0, pl.Int64)
    orders = tables.orders.with_row_index("_order")
    lines = order_lines(orders)
    per_order = (
        lines.filter(pl.col("category").is_in(list(vocab.categories)))
        .group_by("_order", "category")
        .agg(pl.col("quantity").sum())
    )
    if per_order.height and vocab.categories:
        category_units = per_order.pivot(
            "category", index="_order", values="quantity", on_columns=list(vocab.categories)
        )
        orders = orders.join(category_units, on="_order", how="left", maintain_order="left")
    units = lines.group_by("_order").agg(units=pl.col("quantity").sum())
    orders = orders.join(units, on="_order", how="left", maintain_order="left")
    for category in vocab.categories:
        if category not in orders.columns:
            orders = orders.with_columns(pl.lit(0, pl.Int64).alias(category))
    order_sums = {
        "orders_total": ROW,
        "spend_gross": pl.col("amount"),
        "lunch_orders": pl.col("lunch"),
        "units_total": pl.col("units").fill_null(0),
        **{f"via_{s}": pl.col(f"via_{s}") for s in SALES_CHANNELS},
        **{f"cat_{c}": pl.col(c).fill_null(0) for c in vocab.categories},
    }
    order_timeline = _cumulative(orders, order_sums, last="last_order_at")
    engagement = pl.concat(
        [
            tables.offers.select("customer_id", "at", offers=one, redemptions=zero),
            tables.redemptions.select("customer_id", "at", offers=zero, redemptions=one),
            # a rolled-back redemption counts until its rollback
            tables.redemptions.filter(pl.col("rolled_back_at").is_not_null()).select(
                "customer_id", at="rolled_back_at", offers=zero, redemptions=pl.lit(-1, pl.Int64)
            ),
        ]
    )
    engagement = _cumulative(
        engagement, {"offers_n": pl.col("offers"), "redemptions_n": pl.col("redemptions")}
    )
    offers_last = _cumulative(tables.offers, {"_seen": ROW}, last="last_offer_at").drop("_seen")
    redemptions_last = _cumulative(
        tables.redemptions, {"_seen": ROW}, last="last_redemption_at"
    ).drop("_seen")
    # Vouchers open at a moment: +1 at publication, -1 when redeemed or at their horizon.
    offered = labelled_offers(tables).join(
        tables.redemptions.group_by("voucher_id").agg(first_use=pl.col("at").min()),
        on="voucher_id",
        how="left",
    )
    closes = pl.min_horizontal("horizon_end", pl.col("first_use").fill_null(pl.col("horizon_end")))
    # Of those, the ones the customer accepted (in the wallet, likely used first): +1 at the
    # acceptance, -1 when they close.
    accepted = offered.join(
        tables.accepted.group_by("voucher_id").agg(accepted_at=pl.col("at").min()),
        on="voucher_id",
    ).filter(pl.col("accepted_at") < closes)
    open_changes = pl.concat(
        [
            offered.select("customer_id", "at", change=one, accepted_change=zero),
            offered.select(
                "customer_id", at=closes, change=pl.lit(-1, pl.Int64), accepted_change=zero
            ),
            accepted.select("customer_id", at="accepted_at", change=zero, accepted_change=one),
            accepted.select(
                "customer_id", at=closes, change=zero, accepted_change=pl.lit(-1, pl.Int64)
            ),
        ]
    )
    counted = (
        "change", "accepted_change", "refunds", "cancels", "accepted", "held_out", "failures",
    )  # fmt: skip

    def part(frame: pl.DataFrame, name: str, value: pl.Expr = one) -> pl.DataFrame:
        return frame.select(
            "customer_id", "at", **{c: value if c == name else zero for c in counted}
        )

    lifetime_parts = [
        open_changes.select(
            "customer_id", "at", "change", "accepted_change", **{c: zero for c in counted[2:]}
        ),
        part(tables.refunds, "refunds"),
        part(tables.cancellations, "cancels"),
        part(tables.accepted, "accepted"),
        part(tables.held_out, "held_out"),
        part(tables.delivery_failures, "failures"),
    ]
    lifetime = _cumulative(
        pl.concat(lifetime_parts),
        {
            "vouchers_open_n": pl.col("change"),
            "accepted_open_n": pl.col("accepted_change"),
            "refunds_n": pl.col("refunds"),
            "cancels_n": pl.col("cancels"),
            "accepted_n": pl.col("accepted"),
            "held_out_n": pl.col("held_out"),
            "failures_n": pl.col("failures"),
        },
    )
    attributes = tables.attributes.select(
        "customer_id",
        "at",
        *[read_attribute(name, kind).alias(f"attr_{name}") for name, kind in
          vocab.attribute_types.items()],
    )  # fmt: skip
    found = {
        "orders": order_timeline,
        "orders_short": order_timeline.select("customer_id", "at", "orders_total", "spend_gross"),
        "offers_last": offers_last,
        "redemptions_last": redemptions_last,
        "engagement": engagement,
        "lifetime": lifetime,
        "attributes": attributes,
    }
    tables.cache[key] = found
    return found


def _derived_customer_features(wide: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    cats = vocab.categories
    sums = [
        "orders_total", "spend_gross", "lunch_orders", "units_total",
        *[f"via_{s}" for s in SALES_CHANNELS], *[f"cat_{c}" for c in cats],
        *[f"orders_total_{w}d" for w in WINDOWS], *[f"spend_gross_{w}d" for w in WINDOWS],
        "offers_n", "redemptions_n", "offers_n_90d", "redemptions_n_90d", "offers_n_365d",
        "redemptions_n_365d", "vouchers_open_n", "accepted_open_n", "refunds_n", "cancels_n",
        "accepted_n",
        "held_out_n", "failures_n", "refunds_n_365d", "cancels_n_365d", "held_out_n_365d",
        "failures_n_365d",
    ]  # fmt: skip
    wide = wide.with_columns([pl.col(c).fill_null(0).cast(pl.Float64) for c in sums])
    orders_n = pl.col("orders_total")
    units = pl.col("units_total")

    def days_since(column: str) -> pl.Expr:
        return (pl.col("at") - pl.col(column)).dt.total_seconds() / 86_400

    def within(name: str, days: int) -> pl.Expr:
        return pl.col(name) - pl.col(f"{name}_{days}d")

    attribute_codes = []
    for name, kind in vocab.attribute_types.items():
        column = pl.col(f"attr_{name}")
        if kind == "categorical":
            codes = {v: float(i) for i, v in enumerate(vocab.attribute_values.get(name, ()))}
            attribute_codes.append(
                column.replace_strict(codes, default=None, return_dtype=pl.Float64).alias(
                    f"attr_{name}"
                )
            )
        else:
            attribute_codes.append(column.cast(pl.Float64).alias(f"attr_{name}"))
    return wide.select(
        "row",
        "customer_id",
        "at",
        *attribute_codes,
        **{f"orders_{w}d": within("orders_total", w) for w in WINDOWS},
        spend_90d=within("spend_gross", 90),
        spend_365d=within("spend_gross", 365),
        avg_order_value=pl.when(orders_n > 0).then(pl.col("spend_gross") / orders_n),
        days_since_last_order=days_since("last_order_at"),
        refunds_365d=pl.col("refunds_n") - pl.col("refunds_n_365d"),
        cancellations_365d=pl.col("cancels_n") - pl.col("cancels_n_365d"),
        lunch_share=pl.when(orders_n > 0).then(pl.col("lunch_orders") / orders_n),
        **{
            f"share_via_{s}": pl.when(orders_n > 0).then(pl.col(f"via_{s}") / orders_n)
            for s in SALES_CHANNELS
        },
        **{f"share_cat_{c}": pl.when(units > 0).then(pl.col(f"cat_{c}") / units) for c in cats},
        offers_90d=within("offers_n", 90),
        offers_365d=within("offers_n", 365),
        redemptions_90d=within("redemptions_n", 90),
        redemptions_365d=within("redemptions_n", 365),
        # smoothed towards a low rate, so one offer redeemed once is not a certainty
        redeem_rate=(pl.col("redemptions_n") + 0.2) / (pl.col("offers_n") + 1),
        accept_rate=(pl.col("accepted_n") + 0.35) / (pl.col("offers_n") + 1),
        days_since_last_offer=days_since("last_offer_at"),
        days_since_last_redemption=days_since("last_redemption_at"),
        vouchers_open=pl.col("vouchers_open_n"),
        accepted_open=pl.col("accepted_open_n"),
        # how overdue the next order is, against the customer's own recent pace
        overdue=pl.when(within("orders_total", 90) > 0).then(
            days_since("last_order_at") * within("orders_total", 90) / 90
        ),
        held_out_365d=pl.col("held_out_n") - pl.col("held_out_n_365d"),
        delivery_failures_365d=pl.col("failures_n") - pl.col("failures_n_365d"),
        **{f"consent_{c}": pl.col(f"consent_{c}").cast(pl.Float64) for c in CHANNELS},
    )


# -- offer part --------------------------------------------------------------------------------


def _offer_part(tables: EventTables, keys: pl.DataFrame) -> pl.DataFrame:
    """Per (campaign_id, contents, at): the campaign's terms, the contents' size and prices as of
    `at`, and the campaign's and the contents' past redemption rates."""
    terms = tables.campaigns.select(
        "campaign_id", "voucher_kind", "discount_type", "amount_off", "percent_off",
        "max_discount", "fixed_price", "min_order_amount", "acceptance_required",
        "weekdays_allowed", "holder_only", "new_customers_only", "distribution_mode",
        "trigger_type", "control_share",
    )  # fmt: skip
    rows = with_horizon(tables, keys).join(terms, on="campaign_id", how="left")
    rows = rows.with_columns(
        validity_days=(pl.col("horizon_end") - pl.col("at")).dt.total_seconds() / 86_400
    ).drop("horizon_end")
    listed = tables.contents.select(
        "contents",
        "whole_order",
        listed_products=pl.col("products").list.len().cast(pl.Float64),
        listed_categories=pl.col("categories").list.len().cast(pl.Float64),
        listed_brands=pl.col("brands").list.len().cast(pl.Float64),
        listed_collections=pl.col("collections").list.len().cast(pl.Float64),
    )
    covered = covered_products(tables, keys.select("contents", "at").unique())
    rows = (
        rows.join(listed, on="contents", how="left")
        .join(covered, on=["contents", "at"], how="left")
        .with_columns(
            contents_products=pl.when(pl.col("whole_order") == 0).then(
                pl.col("contents_products").fill_null(0).cast(pl.Float64)
            ),
        )
        .with_columns(
            discount_to_price=pl.when(pl.col("contents_price_median") > 0).then(
                pl.when(pl.col("discount_type") == "percent")
                .then(pl.col("percent_off") / 100)
                .otherwise(pl.col("amount_off") / pl.col("contents_price_median"))
            )
        )
    )
    history = _past_rates(tables, keys)
    return rows.join(history, on=["campaign_id", "contents", "at"], how="left")


def _past_rates(tables: EventTables, keys: pl.DataFrame) -> pl.DataFrame:
    """Per (campaign_id, contents, at): the redemptions per voucher published before `at` of the
    campaign, of the same contents and of the same offer shape (a monthly promotion's earlier
    editions), smoothed towards the rate of all vouchers before `at` (missing when none was
    published before: a one-shot campaign's only send, a first edition)."""
    shapes = tables.campaigns.select("campaign_id", "shape")
    published = tables.offers.select("campaign_id", "contents", "at", n=pl.lit(1), r=pl.lit(0))
    used = tables.redemptions.join(
        tables.offers.select("voucher_id", "contents").unique("voucher_id"),
        on="voucher_id",
        how="inner",
    ).select("campaign_id", "contents", "at", n=pl.lit(0), r=pl.lit(1))
    events = (
        pl.concat([published, used])
        .join(shapes, on="campaign_id", how="left")
        .sort("at", maintain_order=True)
    )
    queries = keys.join(shapes, on="campaign_id", how="left").with_row_index("row")
    out = queries
    overall = (
        events.select("at", n_all=pl.col("n").cum_sum(), r_all=pl.col("r").cum_sum())
        .unique("at", keep="last")
        .sort("at")
    )
    out = out.sort("at").join_asof(
        overall, on="at", strategy="backward", allow_exact_matches=False, check_sortedness=False
    )
    for by, name in (("campaign_id", "campaign"), ("contents", "contents"), ("shape", "shape")):
        running = (
            events.select(
                by,
                "at",
                **{
                    f"n_{name}": pl.col("n").cum_sum().over(by),
                    f"r_{name}": pl.col("r").cum_sum().over(by),
                },
            )
            .unique([by, "at"], keep="last")
            .sort("at")
        )
        out = out.sort("at").join_asof(
            running,
            on="at",
            by=by,
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
    prior = pl.when(pl.col("n_all") > 0).then(pl.col("r_all") / pl.col("n_all")).otherwise(0.0)
    rates = {}
    for name in ("campaign", "contents", "shape"):
        n, r = pl.col(f"n_{name}").fill_null(0), pl.col(f"r_{name}").fill_null(0)
        rates[f"{name}_rate_before"] = pl.when(n > 0).then((r + 10 * prior) / (n + 10))
    return out.sort("row").select("campaign_id", "contents", "at", **rates)


# -- helpers ---------------------------------------------------------------------------------------


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
