"""Reading the ledger's events (lake schema) for personalisation: the timelines features are
built from, what each voucher offers (its contents), the product catalogue as it stood at each
moment, the merchant's declared customer attributes, and every published voucher with its
outcome (labels) or every treatment assignment with its conversion (uplift).

A voucher's contents are its own `applies_to` (voucher_created) or else its campaign's, kept as
one text key per distinct contents. Its outcome is known at its horizon: the end of its own
validity (publication plus the campaign's valid days), the campaign's end or its finishing,
whichever comes first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
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
    redemptions: pl.DataFrame  # customer_id, at, voucher_id, campaign_id, discount, rolled_back_at
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
        .select(
            "customer_id",
            "at",
            "voucher_id",
            "campaign_id",
            "redemption_id",
            discount=pl.col("payload")
            .str.json_path_match("$.discount")
            .cast(pl.Int64, strict=False),
        )
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
        "currency": pl.String,
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
        "currency": d.get("currency"),
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
    lines = order_lines(tables.orders)
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
            tables.attributes.select(value=attribute_value(name))
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
    and each hold-out (treated = 0), with `converted` = an order by the voucher's horizon,
    `revenue` = the amount of the customer's orders after the assignment up to the horizon, and
    `discount` = what the voucher's standing redemptions in that time gave away (0 held out)."""
    with_control = tables.held_out["campaign_id"].unique()
    campaign_contents = tables.campaigns.select("campaign_id", "contents")
    treated = tables.offers.filter(pl.col("campaign_id").is_in(with_control.implode())).select(
        "customer_id", "at", "campaign_id", "voucher_id", "channel", "contents", treated=pl.lit(1)
    )
    control = (
        tables.held_out.join(campaign_contents, on="campaign_id", how="left")
        .with_columns(pl.col("contents").fill_null(WHOLE_ORDER))
        .select(
            "customer_id",
            "at",
            "campaign_id",
            voucher_id=pl.lit(None, pl.String),
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
        .join(_revenue_after(tables, rows), on="row", how="left")
        .join(_discount_given(tables, rows), on="row", how="left")
        .with_columns(
            converted=(
                pl.col("next_order_at").is_not_null()
                & (pl.col("next_order_at") <= pl.col("horizon_end"))
            ).cast(pl.Int64),
            revenue=pl.col("revenue").fill_null(0),
            discount=pl.col("discount").fill_null(0),
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
            "revenue",
            "discount",
        )
    )


def _revenue_after(tables: EventTables, rows: pl.DataFrame) -> pl.DataFrame:
    """Per row: the amount of the customer's orders in (at, horizon_end], as the difference of
    their running spend at the two instants."""
    spend = (
        tables.orders.group_by("customer_id", "at")  # one row per instant: no ties to pick from
        .agg(pl.col("amount").sum())
        .sort("customer_id", "at")
        .select("customer_id", "at", spent=pl.col("amount").cum_sum().over("customer_id"))
        .sort("at")
    )

    def spent_by(moment: str) -> pl.DataFrame:
        return (
            rows.select("row", "customer_id", at=moment)
            .sort("at")
            .join_asof(spend, on="at", by="customer_id", check_sortedness=False)
            .select("row", pl.col("spent").fill_null(0).alias(moment))
        )

    return (
        spent_by("horizon_end")
        .join(spent_by("at"), on="row")
        .select("row", revenue=pl.col("horizon_end") - pl.col("at"))
    )


def _discount_given(tables: EventTables, rows: pl.DataFrame) -> pl.DataFrame:
    """Per treated row: the discount of its voucher's standing redemptions up to the horizon."""
    standing = tables.redemptions.filter(pl.col("rolled_back_at").is_null()).select(
        "voucher_id", used_at="at", given=pl.col("discount").fill_null(0)
    )
    return (
        rows.filter(pl.col("voucher_id").is_not_null())
        .select("row", "voucher_id", "at", "horizon_end")
        .join(standing, on="voucher_id")
        .filter((pl.col("used_at") >= pl.col("at")) & (pl.col("used_at") <= pl.col("horizon_end")))
        .group_by("row")
        .agg(discount=pl.col("given").sum())
    )


# -- helpers ---------------------------------------------------------------------------------------


def order_lines(orders: pl.DataFrame) -> pl.DataFrame:
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


def read_attribute(name: str, kind: str) -> pl.Expr:
    value = attribute_value(name)
    if kind == "numeric":
        return value.str.strip_chars().cast(pl.Float64, strict=False)
    return value


def attribute_value(name: str) -> pl.Expr:
    return pl.col("payload").str.json_path_match(f"$['{name}']")


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String).replace("", None).alias(name)


def _parsed(name: str = "occurred_at") -> pl.Expr:
    return (
        pl.col(name)
        .cast(pl.String)
        .str.to_datetime(_TIME_FORMAT, time_unit="us", time_zone="UTC", strict=True)
    )
