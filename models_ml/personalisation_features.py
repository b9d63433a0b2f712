"""Point-in-time features for personalisation, at the grain a merchant decides on: a customer and
a voucher (an offer), from the ledger's events (lake schema).

Every feature of a row published at `t` is computed from events strictly before `t`, so a
training row sees what the platform knew when the voucher went out, and nothing of the
redemption it is labelled with. Counts are over windows (30, 90, 365 days) and histories are
summed up as rates, never as totals since the ledger's start, which would only tell a model how
old the ledger is.

Four families, each computed once per distinct key and joined to the rows:
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

A voucher's contents are its own `applies_to` (voucher_created) or else its campaign's; the
catalogue (`product_upserted`) is read as of `t`: a product counts from its first upsert, with
the category, brand and collections it had then.
"""

from __future__ import annotations

import json
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
# The event types read: loading only these keeps memory to what is used.
EVENT_TYPES = (
    "campaign_created",
    "campaign_status_changed",
    "consent_changed",
    "customer_attributes_declared",
    "customer_created",
    "customer_held_out",
    "customer_updated",
    "delivery_failed",
    "order_cancelled",
    "order_recorded",
    "order_refunded",
    "product_upserted",
    "redemption_rolled_back",
    "redemption_succeeded",
    "voucher_accepted",
    "voucher_created",
    "voucher_published",
)
CHANNELS = ("email", "sms", "push")
SALES_CHANNELS = ("app", "web", "pos")
WINDOWS = (30, 90, 365)
MAX_CATEGORIES = 12
MAX_ATTRIBUTE_VALUES = 50  # a categorical attribute's most frequent labels; the rest: missing
LUNCH_BEFORE_HOUR = 15  # orders before 15:00 UTC count as lunch, later ones as dinner
# A voucher with no validity, no campaign end and no finish: how long its outcome is awaited.
OPEN_HORIZON_DAYS = 90
LEVELS = ("product", "category", "brand", "collection")
WHOLE_ORDER = "order"  # the contents key of a discount on the whole order
NEVER = datetime(9999, 1, 1)
SINCE_EVER = datetime(1900, 1, 1)

# Categorical offer features are integer codes over these vocabularies (unknown → missing).
CATEGORICAL_VOCAB: dict[str, tuple[str, ...]] = {
    "voucher_kind": ("unique", "gift", "standalone"),
    "discount_type": ("amount", "percent", "fixed_price", "free_item", "unspecified"),
    "distribution_mode": ("promotion", "autopilot"),
    "trigger_type": ("gone_quiet", "personal_date", "first_order", "nth_order", "segment_entered"),
    "offer_channel": CHANNELS,
}

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
# One per event row, for running counts (a literal 1 would not broadcast inside cum_sum).
ROW = pl.col("at").is_not_null().cast(pl.Int64)
_UTC = pl.Datetime("us", "UTC")
_ITEM = pl.Struct(
    {"product_id": pl.String, "category": pl.String, "brand": pl.String, "quantity": pl.Int64}
)
_ORDER_DTYPE = pl.Struct({"amount": pl.Int64, "items": pl.List(_ITEM)})
_CONTENTS_DTYPE = pl.Struct({level: pl.List(pl.String) for level in ("products", "categories",
                             "brands", "collections")})  # fmt: skip
_PRODUCT_DTYPE = pl.Struct(
    {
        "id": pl.String,
        "category": pl.String,
        "brand": pl.String,
        "price": pl.Int64,
        "collections": pl.List(pl.String),
    }
)


class PersonalisationInputError(ValueError):
    """Events that personalisation cannot learn from or score; the message names the problem."""


# -- reading the events ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventTables:
    """The events split into the timelines the features are built from."""

    orders: pl.DataFrame  # customer_id, at, order_id, amount, lunch, via_*, items
    refunds: pl.DataFrame  # customer_id, at, amount
    cancellations: pl.DataFrame  # customer_id, at
    offers: pl.DataFrame  # customer_id, at, campaign_id, voucher_id, channel, contents
    accepted: pl.DataFrame  # customer_id, at, voucher_id
    redemptions: pl.DataFrame  # customer_id, at, voucher_id, campaign_id, rolled_back_at
    held_out: pl.DataFrame  # customer_id, at, campaign_id
    delivery_failures: pl.DataFrame  # customer_id, at
    consent: pl.DataFrame  # customer_id, at, channel, granted
    attributes: pl.DataFrame  # customer_id, at, payload (a profile's attributes from then on)
    attribute_types: dict[str, str]  # declared: name -> numeric | categorical
    campaigns: pl.DataFrame  # one row per campaign: its definition's attributes and contents
    statuses: pl.DataFrame  # campaign_id, at, status
    contents: pl.DataFrame  # contents, whole_order, products, categories, brands, collections
    catalogue: pl.DataFrame  # product versions: product_id, valid_from, valid_to, attributes
    end: datetime  # the last event's time: outcomes later than this are unknown
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Vocabulary:
    """What a trained model fixes about its inputs: item categories and customer attributes."""

    categories: tuple[str, ...]
    attribute_types: dict[str, str]
    attribute_values: dict[str, tuple[str, ...]]  # categorical attribute -> its labels


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
    seq = ["seq"] if "seq" in events.columns else []
    frame = events.select(
        *seq,
        *[pl.col(name).cast(pl.String).replace("", None).alias(name) for name in REQUIRED_COLUMNS],
    )
    try:
        frame = frame.with_columns(at=_parsed("occurred_at"))
    except pl.exceptions.PolarsError as error:
        raise PersonalisationInputError(
            f"occurred_at must be UTC ISO text like 2026-11-26T10:09:57.612363Z: {error}"
        ) from error
    return frame.drop("occurred_at").sort(["at", *seq], maintain_order=True)


def build_tables(events: pl.DataFrame, orders: pl.LazyFrame | None = None) -> EventTables:
    """Parse the events once. `orders`: the orders already decoded (`decode_orders`), when they
    are kept elsewhere (the nightly order cache); the events' own orders are used otherwise."""
    frame = prepare_events(events)
    typed = pl.col("event_type")
    customer = pl.col("customer_id").is_not_null()

    def of(kind: str) -> pl.DataFrame:
        return frame.filter(typed == kind)

    end = frame["at"].max()
    decoded = decode_orders(events.lazy()) if orders is None else orders
    order_rows = decoded.filter(pl.col("at") <= end).collect()

    campaigns = campaign_definitions(of("campaign_created"))
    statuses = pl.concat(
        [
            campaigns.select("campaign_id", at="created_at", status="initial_status"),
            of("campaign_status_changed").select(
                "campaign_id", "at", status=pl.col("payload").str.json_path_match("$.status")
            ),
        ]
    ).sort("at", maintain_order=True)

    # A voucher's own contents, else its campaign's.
    overrides = (
        of("voucher_created")
        .select("voucher_id", applies_to=pl.col("payload").str.json_path_match("$.applies_to"))
        .filter(pl.col("applies_to").is_not_null() & pl.col("voucher_id").is_not_null())
        .unique("voucher_id", keep="first")
    )
    canonical = {text: contents_key(json.loads(text)) for text in overrides["applies_to"].unique()}
    overrides = overrides.select(
        "voucher_id",
        own=pl.col("applies_to").replace_strict(canonical, return_dtype=pl.String),
    )
    offers = (
        of("voucher_published")
        .filter(customer)
        .select("customer_id", "at", "campaign_id", "voucher_id", "channel")
        .join(overrides, on="voucher_id", how="left", maintain_order="left")
        .join(
            campaigns.select("campaign_id", campaign_contents="contents"),
            on="campaign_id",
            how="left",
            maintain_order="left",
        )
        .with_columns(contents=pl.coalesce("own", "campaign_contents", pl.lit(WHOLE_ORDER)))
        .drop("own", "campaign_contents")
    )
    rolled_back = (
        of("redemption_rolled_back")
        .group_by("redemption_id")
        .agg(rolled_back_at=pl.col("at").min())
    )
    redemptions = (
        of("redemption_succeeded")
        .filter(customer)
        .select("customer_id", "at", "voucher_id", "campaign_id", "redemption_id")
        .join(rolled_back, on="redemption_id", how="left", maintain_order="left")
        .drop("redemption_id")
    )
    created = of("customer_created").filter(customer)
    attributes = pl.concat([created, of("customer_updated").filter(customer)]).filter(
        pl.col("payload").str.json_path_match("$.attributes").is_not_null()
    )
    declared: dict[str, str] = {}
    for payload in of("customer_attributes_declared")["payload"].to_list():
        for name, kind in (json.loads(payload).get("attributes") or {}).items():
            declared.setdefault(name, kind)  # a declared attribute keeps its type
    keys = list({*campaigns["contents"].to_list(), *offers["contents"].unique().to_list()})
    return EventTables(
        orders=order_rows,
        refunds=of("order_refunded")
        .filter(customer)
        .select(
            "customer_id",
            "at",
            amount=pl.col("payload").str.json_path_match("$.amount").cast(pl.Int64, strict=False),
        ),
        cancellations=of("order_cancelled").filter(customer).select("customer_id", "at"),
        offers=offers,
        accepted=of("voucher_accepted").filter(customer).select("customer_id", "at", "voucher_id"),
        redemptions=redemptions,
        held_out=of("customer_held_out")
        .filter(customer)
        .select("customer_id", "at", "campaign_id"),
        delivery_failures=of("delivery_failed").filter(customer).select("customer_id", "at"),
        consent=consent_events(created, of("consent_changed").filter(customer)),
        attributes=attributes.select(
            "customer_id", "at", payload=pl.col("payload").str.json_path_match("$.attributes")
        ),
        attribute_types=dict(sorted(declared.items())),
        campaigns=campaigns,
        statuses=statuses,
        contents=contents_table(keys),
        catalogue=catalogue_versions(of("product_upserted")),
        end=end,  # type: ignore[arg-type]
    )


def decode_orders(events: pl.LazyFrame, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """The `order_recorded` events of customers as customer_id, at, amount, lunch, via_* and
    items (product_id, category, brand, quantity): the one JSON decode the order features need.
    `keep`: columns passed through as they are."""
    order = pl.col("payload").cast(pl.String).replace("", None).str.json_decode(_ORDER_DTYPE)
    return (
        events.filter(pl.col("event_type") == "order_recorded")
        .select(*keep, _text("customer_id"), _text("sales_channel"), "payload", at=_parsed())
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


def campaign_definitions(created: pl.DataFrame) -> pl.DataFrame:
    """One row per campaign from its `campaign_created` definition (the latest if repeated)."""
    rows: list[dict[str, Any]] = []
    for campaign_id, at, payload in created.select("campaign_id", "at", "payload").iter_rows():
        definition = json.loads(payload).get("definition", {})
        rows.append(_campaign_row(campaign_id or definition.get("id"), at, definition))
    schema = {
        "campaign_id": pl.String,
        "created_at": _UTC,
        "initial_status": pl.String,
        "active_from": _UTC,
        "active_until": _UTC,
        "channels": pl.List(pl.String),
        "contents": pl.String,
        "voucher_kind": pl.String,
        "discount_type": pl.String,
        "amount_off": pl.Float64,
        "percent_off": pl.Float64,
        "max_discount": pl.Float64,
        "fixed_price": pl.Float64,
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
    contents, conditions, validity and distribution, not the name or the dates."""
    parts = [
        "voucher_kind", "discount_type", "amount_off", "percent_off", "max_discount",
        "fixed_price", "contents", "min_order_amount", "valid_days", "weekdays_allowed",
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
    if discount.get("type") == "free_item" and discount.get("product"):
        contents = contents_key({"products": [discount["product"]]})
    else:
        contents = contents_key(discount.get("applies_to"))
    return {
        "campaign_id": campaign_id,
        "created_at": at,
        "initial_status": d.get("status", "active"),
        "active_from": when(d.get("active_from")),
        "active_until": when(d.get("active_until")),
        "channels": list(distribution.get("channels") or []) if distribution else None,
        "contents": contents,
        "voucher_kind": voucher.get("kind", "unique"),
        "discount_type": discount.get("type"),
        "amount_off": number(discount.get("amount_off")),
        "percent_off": number(discount.get("percent_off")),
        "max_discount": number(discount.get("max_discount")),
        "fixed_price": number(discount.get("fixed_price")),
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


def contents_key(applies_to: Any) -> str:
    """One text per distinct contents: sorted JSON of the non-empty lists, or `order`."""
    if not isinstance(applies_to, dict):
        return WHOLE_ORDER
    lists = {
        name: sorted({str(v) for v in applies_to.get(name) or []})
        for name in ("products", "categories", "brands", "collections")
    }
    lists = {name: values for name, values in lists.items() if values}
    return json.dumps(lists, sort_keys=True, separators=(",", ":")) if lists else WHOLE_ORDER


def contents_table(keys: list[str]) -> pl.DataFrame:
    """Per contents key: whether it is the whole order, and its lists."""
    frame = pl.DataFrame({"contents": sorted(set(keys))}, schema={"contents": pl.String})
    decoded = (
        pl.when(pl.col("contents") != WHOLE_ORDER)
        .then(pl.col("contents"))
        .str.json_decode(_CONTENTS_DTYPE)
    )
    return frame.select(
        "contents",
        whole_order=(pl.col("contents") == WHOLE_ORDER).cast(pl.Int64),
        **{
            name: decoded.struct.field(name).fill_null(pl.lit([], pl.List(pl.String)))
            for name in ("products", "categories", "brands", "collections")
        },
    )


def catalogue_versions(upserts: pl.DataFrame) -> pl.DataFrame:
    """Each product's versions: valid from its upsert to the next one."""
    product = pl.col("payload").str.json_path_match("$.product").str.json_decode(_PRODUCT_DTYPE)
    return (
        upserts.select(
            "at",
            product_id=product.struct.field("id"),
            category=product.struct.field("category"),
            brand=product.struct.field("brand"),
            price=product.struct.field("price"),
            collections=product.struct.field("collections").fill_null(
                pl.lit([], pl.List(pl.String))
            ),
        )
        .filter(pl.col("product_id").is_not_null())
        .sort("product_id", "at", maintain_order=True)
        .select(
            "product_id",
            valid_from="at",
            valid_to=pl.col("at")
            .shift(-1)
            .over("product_id")
            .fill_null(pl.lit(NEVER).dt.replace_time_zone("UTC")),
            category="category",
            brand="brand",
            price="price",
            collections="collections",
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


def vocabulary(tables: EventTables, attribute_types: dict[str, str] | None = None) -> Vocabulary:
    """The most frequent item categories and categorical attribute labels in the events, and the
    attribute types (the declared ones, or `attribute_types` to read them otherwise)."""
    lines = _order_lines(tables.orders)
    ranked = (
        lines.group_by("category")
        .agg(pl.col("quantity").sum())
        .sort(["quantity", "category"], descending=[True, False])
    )
    categories = tuple(sorted(ranked["category"].head(MAX_CATEGORIES).to_list()))
    types = dict(sorted((attribute_types or tables.attribute_types).items()))
    bad = {name: kind for name, kind in types.items() if kind not in ("numeric", "categorical")}
    if bad:
        raise PersonalisationInputError(
            f"attribute types must be numeric or categorical: {', '.join(map(str, bad))}"
        )
    values = {}
    for name, kind in types.items():
        if kind != "categorical":
            continue
        found = (
            tables.attributes.select(value=_attribute(name))
            .drop_nulls()
            .group_by("value")
            .len()
            .sort(["len", "value"], descending=[True, False])
        )
        values[name] = tuple(sorted(found["value"].head(MAX_ATTRIBUTE_VALUES).to_list()))
    return Vocabulary(categories, types, values)


def undeclared_attributes(tables: EventTables) -> list[str]:
    """Attribute names found in profiles that no declaration covers (they are not read)."""
    names: set[str] = set()
    for text in tables.attributes["payload"].unique().head(10_000).to_list():
        try:
            names.update(json.loads(text))
        except (TypeError, ValueError):
            continue
    return sorted(names - set(tables.attribute_types))


# -- offers and their outcome ------------------------------------------------------------------


def campaign_ends(tables: EventTables) -> pl.DataFrame:
    """Per campaign, when its vouchers stop being redeemable: its active_until, or the first
    time it was finished, whichever comes first (per publication, see `horizons`)."""
    finished = (
        tables.statuses.filter(pl.col("status") == "finished")
        .group_by("campaign_id")
        .agg(finished_at=pl.col("at").min())
    )
    return tables.campaigns.select("campaign_id", "active_until", "valid_days").join(
        finished, on="campaign_id", how="left"
    )


def with_horizon(tables: EventTables, rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` (campaign_id, at) with `horizon_end`: the end of the voucher's own validity (its
    publication plus the campaign's valid days), the campaign's end or its finishing, whichever
    comes first; OPEN_HORIZON_DAYS after publication when none of them exists."""
    ends = campaign_ends(tables)
    joined = rows.join(ends, on="campaign_id", how="left", maintain_order="left")
    finish_after = pl.when(pl.col("finished_at") > pl.col("at")).then(pl.col("finished_at"))
    return joined.with_columns(
        horizon_end=pl.coalesce(
            pl.min_horizontal(
                pl.col("at") + pl.duration(days=pl.col("valid_days")),
                pl.col("active_until"),
                finish_after,
            ),
            pl.col("at") + pl.duration(days=OPEN_HORIZON_DAYS),
        )
    ).drop("active_until", "valid_days", "finished_at")


def labelled_offers(tables: EventTables) -> pl.DataFrame:
    """Every publication to a customer with `horizon_end` (see `with_horizon`) and `label`: 1 if
    the voucher was redeemed from its publication to its horizon and never rolled back."""
    first_redeemed = (
        tables.redemptions.filter(pl.col("rolled_back_at").is_null())
        .group_by("voucher_id")
        .agg(redeemed_at=pl.col("at").min())
    )
    return (
        with_horizon(tables, tables.offers)
        .join(first_redeemed, on="voucher_id", how="left", maintain_order="left")
        .with_columns(
            label=(
                pl.col("redeemed_at").is_not_null()
                & (pl.col("redeemed_at") >= pl.col("at"))
                & (pl.col("redeemed_at") <= pl.col("horizon_end"))
            ).cast(pl.Int64)
        )
        .select(
            "customer_id",
            "at",
            "campaign_id",
            "voucher_id",
            "channel",
            "contents",
            "horizon_end",
            "label",
        )
        .sort(["at", "voucher_id"])
    )


def uplift_assignments(tables: EventTables) -> pl.DataFrame:
    """Treatment assignments in campaigns with a control group: each publication (treated = 1)
    and each hold-out (treated = 0), with `converted` = an order by the voucher's horizon."""
    with_control = tables.held_out["campaign_id"].unique()
    campaign_contents = tables.campaigns.select("campaign_id", "contents")
    treated = tables.offers.filter(pl.col("campaign_id").is_in(with_control.implode())).select(
        "customer_id", "at", "campaign_id", "channel", "contents", treated=pl.lit(1)
    )
    control = (
        tables.held_out.join(campaign_contents, on="campaign_id", how="left")
        .with_columns(pl.col("contents").fill_null(WHOLE_ORDER))
        .select(
            "customer_id",
            "at",
            "campaign_id",
            channel=pl.lit(None, pl.String),
            contents="contents",
            treated=pl.lit(0),
        )
    )
    rows = with_horizon(tables, pl.concat([treated, control])).sort(
        ["at", "customer_id", "campaign_id"]
    )
    rows = rows.with_row_index("row")
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
        .select(
            "customer_id",
            "at",
            "campaign_id",
            "channel",
            "contents",
            "treated",
            "horizon_end",
            "converted",
        )
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
    pairs = _pair_part(tables, rows.select("customer_id", "contents", "at").unique(), vocab)
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
    lines = _order_lines(orders)
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
        *[_read_attribute(name, kind).alias(f"attr_{name}") for name, kind in
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


def _read_attribute(name: str, kind: str) -> pl.Expr:
    value = _attribute(name)
    if kind == "numeric":
        return value.str.strip_chars().cast(pl.Float64, strict=False)
    return value


def _attribute(name: str) -> pl.Expr:
    return pl.col("payload").str.json_path_match(f"$['{name}']")


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
    covered = _covered_products(tables, keys.select("contents", "at").unique())
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


def _membership(tables: EventTables, contents: pl.Series) -> pl.DataFrame:
    """(contents, product_id, valid_from, valid_to): which catalogue products each contents
    covers, and when; a listed product is covered always, known to the catalogue or not."""
    cat = tables.catalogue
    wanted = tables.contents.filter(pl.col("contents").is_in(contents.implode()))
    always = {
        "valid_from": pl.lit(SINCE_EVER).dt.replace_time_zone("UTC"),
        "valid_to": pl.lit(NEVER).dt.replace_time_zone("UTC"),
    }
    parts = [
        wanted.select("contents", product_id="products").explode("product_id").drop_nulls()
        .select("contents", "product_id", **always)
    ]  # fmt: skip
    for level, column in (("categories", "category"), ("brands", "brand")):
        parts.append(
            wanted.select("contents", value=level)
            .explode("value")
            .drop_nulls()
            .join(cat.select("product_id", "valid_from", "valid_to", value=column), on="value")
            .select("contents", "product_id", "valid_from", "valid_to")
        )
    parts.append(
        wanted.select("contents", value="collections")
        .explode("value")
        .drop_nulls()
        .join(
            cat.select("product_id", "valid_from", "valid_to", value="collections").explode(
                "value"
            ),
            on="value",
        )
        .select("contents", "product_id", "valid_from", "valid_to")
    )
    return pl.concat(parts).unique()


def _covered_products(tables: EventTables, keys: pl.DataFrame) -> pl.DataFrame:
    """Per (contents, at): how many catalogue products the contents covers then, and their
    median price (listed products unknown to the catalogue count, without a price)."""
    member = _membership(tables, keys["contents"].unique())
    at_time = (
        keys.join(member, on="contents")
        .filter((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
        .select("contents", "at", "product_id")
        .unique()
    )
    # The price of each covered product then: its catalogue version valid at `at`.
    priced = at_time.join(
        tables.catalogue.select("product_id", "valid_from", "valid_to", "price"),
        on="product_id",
        how="left",
    ).filter(
        pl.col("valid_from").is_null()
        | ((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
    )
    return priced.group_by("contents", "at").agg(
        contents_products=pl.col("product_id").n_unique(),
        contents_price_median=pl.col("price").median().cast(pl.Float64),
    )


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


# -- pair part ---------------------------------------------------------------------------------


def _pair_part(tables: EventTables, pairs: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """Per (customer_id, contents, at): what the customer bought or redeemed before `at` that
    the contents covers then (distinct products, categories, brands, collections), the same
    contents offered and redeemed before, and their purchases' share in its categories."""
    contents = pairs["contents"].unique()
    customers = pairs["customer_id"].unique()
    keys = _contents_keys(tables, contents.filter(contents != WHOLE_ORDER))
    touches = _touches(tables, customers)
    out = pairs
    joined = (
        touches.join(keys, on=["level", "key"])
        .join(pairs, on=["customer_id", "contents"])
        .filter(
            (pl.col("first_at") < pl.col("at"))
            & (pl.col("valid_from") < pl.col("at"))
            & (pl.col("at") <= pl.col("valid_to"))
        )
        .group_by("customer_id", "contents", "at", "source", "level")
        .agg(found=pl.col("key").n_unique())
    )
    names = [f"{source}_{level}_overlap" for source in ("bought", "redeemed") for level in LEVELS]
    wide = (
        joined.with_columns(
            name=pl.concat_str("source", pl.lit("_"), "level", pl.lit("_overlap"))
        ).pivot("name", index=["customer_id", "contents", "at"], values="found", on_columns=names)
        if joined.height
        else pl.DataFrame(schema={"customer_id": pl.String, "contents": pl.String, "at": _UTC})
    )
    for name in names:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.UInt32).alias(name))
    out = out.join(wide, on=["customer_id", "contents", "at"], how="left").with_columns(
        [
            pl.when(pl.col("contents") != WHOLE_ORDER)
            .then(pl.col(n).fill_null(0))
            .cast(pl.Float64)
            .alias(n)
            for n in names
        ]
    )
    out = out.join(_same_contents(tables, pairs), on=["customer_id", "contents", "at"], how="left")
    return out.join(
        _category_share(tables, pairs, keys), on=["customer_id", "contents", "at"], how="left"
    )


def _contents_keys(tables: EventTables, contents: pl.Series) -> pl.DataFrame:
    """(contents, level, key, valid_from, valid_to): every product a contents covers, with its
    category, brand and collections while it does, and the categories, brands and collections
    it lists itself."""
    member = _membership(tables, contents)
    cat = tables.catalogue
    versions = (
        member.join(
            cat.rename({"valid_from": "from_", "valid_to": "to_"}), on="product_id", how="left"
        )
        .with_columns(
            valid_from=pl.max_horizontal(
                "valid_from", pl.col("from_").fill_null(pl.col("valid_from"))
            ),
            valid_to=pl.min_horizontal("valid_to", pl.col("to_").fill_null(pl.col("valid_to"))),
        )
        .filter(pl.col("valid_from") < pl.col("valid_to"))
    )
    span = ["contents", "valid_from", "valid_to"]
    always = {
        "valid_from": pl.lit(SINCE_EVER).dt.replace_time_zone("UTC"),
        "valid_to": pl.lit(NEVER).dt.replace_time_zone("UTC"),
    }
    listed = tables.contents.filter(pl.col("contents").is_in(contents.implode()))
    parts = [
        versions.select(*span, level=pl.lit("product"), key="product_id"),
        listed.select("contents", key="products").explode("key")
        .select("contents", **always, level=pl.lit("product"), key="key"),
        versions.select(*span, level=pl.lit("category"), key="category"),
        versions.select(*span, level=pl.lit("brand"), key="brand"),
        versions.select(*span, level=pl.lit("collection"), key="collections").explode("key"),
        *[
            listed.select("contents", key=column).explode("key")
            .select("contents", **always, level=pl.lit(level), key="key")
            for column, level in (("categories", "category"), ("brands", "brand"),
                                  ("collections", "collection"))
        ],
    ]  # fmt: skip
    return (
        pl.concat([p.select("contents", "valid_from", "valid_to", "level", "key") for p in parts])
        .drop_nulls("key")
        .unique()
    )


def _touches(tables: EventTables, customers: pl.Series) -> pl.DataFrame:
    """(customer_id, source, level, key, first_at): the first time each customer bought
    (`bought`, an order line) or redeemed (`redeemed`, a voucher covering it) each product,
    category, brand and collection."""
    cat = tables.catalogue
    lines = _order_lines(tables.orders.filter(pl.col("customer_id").is_in(customers.implode())))
    # What the catalogue said of each product when it was bought fills what the line omits.
    lines = lines.join(
        cat.select("product_id", "valid_from", "valid_to", cat_category="category",
                   cat_brand="brand", collections="collections"),
        on="product_id",
        how="left",
    ).filter(
        pl.col("valid_from").is_null()
        | ((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
    )  # fmt: skip
    bought = pl.concat(
        [
            lines.select("customer_id", "at", level=pl.lit("product"), key="product_id"),
            lines.select(
                "customer_id",
                "at",
                level=pl.lit("category"),
                key=pl.coalesce("category", "cat_category"),
            ),
            lines.select(
                "customer_id", "at", level=pl.lit("brand"), key=pl.coalesce("brand", "cat_brand")
            ),
            lines.select(
                "customer_id", "at", level=pl.lit("collection"), key="collections"
            ).explode("key"),
        ]
    ).with_columns(source=pl.lit("bought"))
    redeemed_contents = (
        tables.redemptions.filter(pl.col("customer_id").is_in(customers.implode()))
        .join(tables.offers.select("voucher_id", "contents").unique("voucher_id"), on="voucher_id")
        .filter(pl.col("contents") != WHOLE_ORDER)
        .select("customer_id", "at", "contents")
    )
    keys = _contents_keys(tables, redeemed_contents["contents"].unique())
    redeemed = (
        redeemed_contents.join(keys, on="contents")
        .filter((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
        .select("customer_id", "at", "level", "key", source=pl.lit("redeemed"))
    )
    return (
        pl.concat([bought.select("customer_id", "at", "level", "key", "source"), redeemed])
        .drop_nulls("key")
        .group_by("customer_id", "source", "level", "key")
        .agg(first_at=pl.col("at").min())
    )


def _same_contents(tables: EventTables, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per (customer_id, contents, at): vouchers with these contents the customer was offered,
    and redeemed, before `at`."""
    offered = tables.offers.select("customer_id", "contents", "at", o=pl.lit(1), r=pl.lit(0))
    redeemed = tables.redemptions.join(
        tables.offers.select("voucher_id", "contents").unique("voucher_id"), on="voucher_id"
    ).select("customer_id", "contents", "at", o=pl.lit(0), r=pl.lit(1))
    running = (
        pl.concat([offered, redeemed])
        .sort("at", maintain_order=True)
        .with_columns(
            same_contents_offered_before=pl.col("o").cum_sum().over("customer_id", "contents"),
            same_contents_redeemed_before=pl.col("r").cum_sum().over("customer_id", "contents"),
        )
        .unique(["customer_id", "contents", "at"], keep="last")
        .select("customer_id", "contents", "at", "same_contents_offered_before",
                "same_contents_redeemed_before")
        .sort("at")
    )  # fmt: skip
    found = (
        pairs.sort("at")
        .join_asof(
            running,
            on="at",
            by=["customer_id", "contents"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .with_columns(
            pl.col("same_contents_offered_before", "same_contents_redeemed_before")
            .fill_null(0)
            .cast(pl.Float64)
        )
    )
    return found


def _category_share(tables: EventTables, pairs: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Per (customer_id, contents, at): the share of the units the customer bought before `at`
    that fall in the categories the contents covers then (missing for the whole order, or before
    any purchase)."""
    lines = _order_lines(
        tables.orders.filter(pl.col("customer_id").is_in(pairs["customer_id"].unique().implode()))
    )
    lines = (
        lines.join(
            tables.catalogue.select(
                "product_id", "valid_from", "valid_to", cat_category="category"
            ),
            on="product_id",
            how="left",
        )
        .filter(
            pl.col("valid_from").is_null()
            | ((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
        )
        .select("customer_id", "at", "quantity", category=pl.coalesce("category", "cat_category"))
    )
    total = (
        lines.sort("at")
        .with_columns(units=pl.col("quantity").cum_sum().over("customer_id"))
        .unique(["customer_id", "at"], keep="last")
        .select("customer_id", "at", "units")
        .sort("at")
    )
    per_category = (
        lines.drop_nulls("category")
        .sort("at")
        .with_columns(units_in=pl.col("quantity").cum_sum().over("customer_id", "category"))
        .unique(["customer_id", "category", "at"], keep="last")
        .select("customer_id", "category", "at", "units_in")
        .sort("at")
    )
    offer_categories = keys.filter(pl.col("level") == "category").select(
        "contents", "valid_from", "valid_to", category="key"
    )
    asked = (
        pairs.join(offer_categories, on="contents")
        .filter((pl.col("valid_from") < pl.col("at")) & (pl.col("at") <= pl.col("valid_to")))
        .select("customer_id", "contents", "at", "category")
        .unique()
        .sort("at")
        .join_asof(
            per_category,
            on="at",
            by=["customer_id", "category"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .group_by("customer_id", "contents", "at")
        .agg(units_in=pl.col("units_in").fill_null(0).sum())
    )
    return (
        pairs.sort("at")
        .join_asof(
            total,
            on="at",
            by="customer_id",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .join(asked, on=["customer_id", "contents", "at"], how="left")
        .select(
            "customer_id",
            "contents",
            "at",
            share_in_offer_categories=pl.when(
                (pl.col("contents") != WHOLE_ORDER) & (pl.col("units") > 0)
            ).then(pl.col("units_in").fill_null(0) / pl.col("units")),
        )
    )


# -- helpers -----------------------------------------------------------------------------------


def _order_lines(orders: pl.DataFrame) -> pl.DataFrame:
    """One row per order line: _order (the order's row), customer_id, at, product_id,
    category, brand, quantity."""
    with_id = orders if "_order" in orders.columns else orders.with_row_index("_order")
    return (
        with_id.select("_order", "customer_id", "at", "items")
        .explode("items")
        .drop_nulls("items")
        .select(
            "_order",
            "customer_id",
            "at",
            product_id=pl.col("items").struct.field("product_id"),
            category=pl.col("items").struct.field("category"),
            brand=pl.col("items").struct.field("brand"),
            quantity=pl.col("items").struct.field("quantity").fill_null(1),
        )
    )


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


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).replace("", None).alias(name)


def _parsed(name: str = "occurred_at") -> pl.Expr:
    return (
        pl.col(name)
        .cast(pl.String)
        .str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=True)
    )
