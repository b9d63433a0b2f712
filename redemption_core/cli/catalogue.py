"""`promo catalogue` (products upserted, shown) and `promo attributes` (the merchant's
declaration of how its customer attributes are read)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from redemption_core.cli.common import Output, engine_command, load_definition
from redemption_core.domain.errors import InvalidInput, NotFound
from redemption_core.engine.redemption import RedemptionEngine


def register(commands: Any) -> None:
    catalogue = commands.add_parser("catalogue", help="the product catalogue")
    catalogue_cmd = catalogue.add_subparsers(dest="action", required=True)
    upsert = catalogue_cmd.add_parser(
        "upsert", help="add or change products from a YAML/JSON list (unchanged ones are skipped)"
    )
    upsert.add_argument(
        "file",
        type=Path,
        help="a list of {id, name, category, brand, price, currency, collections} (or "
        "{products: [...]})",
    )
    catalogue_cmd.add_parser("show", help="a product as the catalogue holds it").add_argument(
        "product_id", help="the product's id"
    )
    catalogue.set_defaults(handler=_catalogue)

    attributes = commands.add_parser(
        "attributes", help="declare how customer attributes are read: NAME=numeric|categorical"
    )
    attributes.add_argument(
        "declarations",
        nargs="*",
        metavar="NAME=TYPE",
        help="e.g. age=numeric tier=categorical; a declared name keeps its type; none: list them",
    )
    attributes.set_defaults(handler=_attributes)


@engine_command
def _catalogue(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if args.action == "upsert":
        document = load_definition(args.file)
        products = document.get("products") if isinstance(document, dict) else document
        if not isinstance(products, list):
            raise InvalidInput("file", "give a list of products (or {products: [...]})")
        written = engine.upsert_products(products)
        out.emit(
            {"products": len(products), "changed": written},
            f"{written} of {len(products)} products added or changed",
        )
        return 0
    with engine.store.read() as tx:
        product = tx.product(args.product_id)
    if product is None:
        raise NotFound("product_id", args.product_id)
    document = product.to_dict()
    out.emit(document, json.dumps(document, indent=2))
    return 0


@engine_command
def _attributes(engine: RedemptionEngine, args: argparse.Namespace, out: Output) -> int:
    if not args.declarations:
        with engine.store.read() as tx:
            declared = tx.customer_attribute_types()
    else:
        wanted = {}
        for text in args.declarations:
            name, sign, kind = text.partition("=")
            if not sign:
                raise InvalidInput(text, "write NAME=numeric or NAME=categorical")
            wanted[name] = kind
        declared = engine.declare_customer_attributes(wanted)
    lines = [f"{name:<24} {kind}" for name, kind in declared.items()]
    out.emit(declared, "\n".join(lines) or "no customer attributes declared")
    return 0
