"""What a voucher offers against what a customer did: the catalogue products a voucher's contents
cover at a moment (and at what price), and per customer and contents, the overlap between what
they bought or redeemed before that moment and what the voucher covers then, at each level
(product, category, brand, collection); the same contents offered and redeemed before; the share
of their purchases in the contents' categories.

The catalogue is read as of each moment: a version of a product holds from its upsert (strictly
before the moment) until the next one.
"""

from __future__ import annotations

import polars as pl

from models_ml.personalisation_events import (
    LEVELS,
    NEVER,
    SINCE_EVER,
    WHOLE_ORDER,
    EventTables,
    Vocabulary,
    order_lines,
)


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


def covered_products(tables: EventTables, keys: pl.DataFrame) -> pl.DataFrame:
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


# -- pair part ---------------------------------------------------------------------------------


def contents_part(tables: EventTables, pairs: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """Per (customer_id, contents, at): what the customer bought or redeemed before `at` that
    the contents covers then (distinct products, categories, brands, collections), the same
    contents offered and redeemed before, and their purchases' share in its categories."""
    contents = pairs["contents"].unique()
    customers = pairs["customer_id"].unique()
    keys = _contents_keys(tables, contents.filter(contents != WHOLE_ORDER))
    touches = _touches(tables, customers, keys.select("level", "key").unique())
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
        else pl.DataFrame(
            schema={"customer_id": pl.String, "contents": pl.String, "at": pl.Datetime("us", "UTC")}
        )
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


def _touches(tables: EventTables, customers: pl.Series, wanted: pl.DataFrame) -> pl.DataFrame:
    """(customer_id, source, level, key, first_at): the first time each customer bought
    (`bought`, an order line) or redeemed (`redeemed`, a voucher covering it) each of the
    `wanted` (level, key) pairs: products, categories, brands and collections."""
    schema = {"customer_id": pl.String, "source": pl.String, "level": pl.String,
              "key": pl.String, "first_at": pl.Datetime("us", "UTC")}  # fmt: skip
    if wanted.height == 0:  # every offer is on the whole order: nothing to overlap with
        return pl.DataFrame(schema=schema)

    def of(level: str) -> pl.Series:
        return wanted.filter(pl.col("level") == level)["key"].implode()

    cat = tables.catalogue
    lines = order_lines(tables.orders.filter(pl.col("customer_id").is_in(customers.implode())))
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
    # each level kept to the keys some offer covers before anything is stacked: a customer's
    # lines times four levels would be most of the memory at scale
    bought = pl.concat(
        [
            lines.select("customer_id", "at", level=pl.lit("product"), key="product_id").filter(
                pl.col("key").is_in(of("product"))
            ),
            lines.select(
                "customer_id",
                "at",
                level=pl.lit("category"),
                key=pl.coalesce("category", "cat_category"),
            ).filter(pl.col("key").is_in(of("category"))),
            lines.select(
                "customer_id", "at", level=pl.lit("brand"), key=pl.coalesce("brand", "cat_brand")
            ).filter(pl.col("key").is_in(of("brand"))),
            lines.select("customer_id", "at", level=pl.lit("collection"), key="collections")
            .explode("key")
            .filter(pl.col("key").is_in(of("collection"))),
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
        .join(wanted, on=["level", "key"], how="semi")
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
    that fall in the categories the contents covers then (missing for the whole order, for
    contents of no known category, and before any purchase)."""
    offer_categories = keys.filter(pl.col("level") == "category").select(
        "contents", "valid_from", "valid_to", category="key"
    )
    listed = pairs.filter(pl.col("contents").is_in(offer_categories["contents"].unique().implode()))
    lines = order_lines(
        tables.orders.filter(pl.col("customer_id").is_in(listed["customer_id"].unique().implode()))
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
        lines.filter(pl.col("category").is_in(offer_categories["category"].unique().implode()))
        .sort("at")
        .with_columns(units_in=pl.col("quantity").cum_sum().over("customer_id", "category"))
        .unique(["customer_id", "category", "at"], keep="last")
        .select("customer_id", "category", "at", "units_in")
        .sort("at")
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
