"""The product catalogue and what a voucher offers.

A product (`product_upserted`) has an id and, as far as the merchant knows them, a name, a
category, a brand, a price (integer minor units of its currency) and the collections it belongs
to (a retailer's coupon families, a menu section, a sale). A discount's `applies_to` names
products, categories, brands or collections; a voucher may carry its own `applies_to`, which
replaces its campaign's (one coupon of a campaign's booklet, say). Matching an order item reads
the catalogue for what the item does not state itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import Discount, DiscountType, ItemFilter
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.money import check_amount, check_currency
from redemption_core.domain.orders import Order

PRODUCT_FIELDS = {"id", "name", "category", "brand", "price", "currency", "collections"}
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str | None = None
    category: str | None = None
    brand: str | None = None
    price: int | None = None  # minor units of `currency`
    currency: str | None = None
    collections: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """The normalised form written to the ledger (fields not known are left out)."""
        data: dict[str, Any] = {"id": self.id}
        for name in ("name", "category", "brand", "price", "currency"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.collections:
            data["collections"] = sorted(self.collections)
        return data


def product_from_dict(data: object, field: str = "product") -> Product:
    """Parse and check a product; errors name the offending field."""
    d = p.mapping(data, field)
    p.reject_unknown(d, PRODUCT_FIELDS, field)
    price = d.get("price")
    currency = d.get("currency")
    if price is not None and currency is None:
        raise InvalidInput(f"{field}.currency", "required with a price")
    name = d.get("name")
    return Product(
        id=p.identifier(d.get("id"), f"{field}.id"),
        name=None if name is None else p.text(name, f"{field}.name", max_length=MAX_NAME_LENGTH),
        category=p.optional_identifier(d.get("category"), f"{field}.category"),
        brand=p.optional_identifier(d.get("brand"), f"{field}.brand"),
        price=None if price is None else check_amount(price, f"{field}.price"),
        currency=None if currency is None else check_currency(currency, f"{field}.currency"),
        collections=p.id_set(d.get("collections"), f"{field}.collections"),
    )


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """What matching an order item against a discount's `applies_to` reads from the catalogue."""

    category: str | None
    brand: str | None
    collections: frozenset[str]


def voucher_contents_allowed(discount: Discount | None, field: str) -> None:
    """A voucher may name what it applies to only where its campaign's discount applies to items."""
    if discount is None:
        raise InvalidInput(field, "a gift card has no discount to apply to products")
    if discount.type is DiscountType.FREE_ITEM:
        raise InvalidInput(field, "a free item applies to its product only")


def effective_discount(discount: Discount | None, applies_to: ItemFilter | None) -> Discount | None:
    """The campaign's discount, applied to the voucher's own contents when it has some."""
    if discount is None or applies_to is None:
        return discount
    return replace(discount, applies_to=applies_to)


def matching_items(
    target: ItemFilter, order: Order, catalogue: Mapping[str, ProductFacts]
) -> list[bool]:
    """Per order item, whether the filter takes it: the item's own category first, then the
    catalogue's category, brand and collections for its product."""
    found = []
    for item in order.items:
        facts = catalogue.get(item.product_id)
        category = item.category or (facts.category if facts else None)
        brand = item.brand or (facts.brand if facts else None)
        collections = facts.collections if facts else frozenset()
        found.append(target.matches(item.product_id, category, brand, collections))
    return found
