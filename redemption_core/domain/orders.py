"""What a checkout sends with a validation or redemption: the order and the request context.

Constructors check their own fields, so a malformed order can never reach the rules or the
ledger, whether it came from JSON, the CLI or Python code.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.money import MAX_AMOUNT, check_amount, check_currency

MAX_ITEMS = 500
MAX_QUANTITY = 100_000


@dataclass(frozen=True, slots=True)
class OrderItem:
    product_id: str
    quantity: int
    unit_price: int
    category: str | None = None

    def check(self, field: str) -> None:
        p.identifier(self.product_id, f"{field}.product_id")
        p.integer(self.quantity, f"{field}.quantity", minimum=1, maximum=MAX_QUANTITY)
        check_amount(self.unit_price, f"{field}.unit_price")
        p.optional_identifier(self.category, f"{field}.category")

    @property
    def total(self) -> int:
        return self.quantity * self.unit_price

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "category": self.category,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
        }


@dataclass(frozen=True, slots=True)
class Order:
    """amount is the order total in minor units; items, when given, must not exceed it."""

    amount: int
    currency: str
    items: tuple[OrderItem, ...] = ()
    id: str | None = None

    def __post_init__(self) -> None:
        check_amount(self.amount, "order.amount")
        check_currency(self.currency, "order.currency")
        p.optional_identifier(self.id, "order.id")
        if not isinstance(self.items, tuple):
            raise InvalidInput("order.items", "must be a tuple of OrderItem")
        if len(self.items) > MAX_ITEMS:
            raise InvalidInput("order.items", f"more than {MAX_ITEMS} lines")
        total = 0
        for i, item in enumerate(self.items):
            if not isinstance(item, OrderItem):
                raise InvalidInput(f"order.items[{i}]", "must be an OrderItem")
            item.check(f"order.items[{i}]")
            total += item.total
        if total > self.amount:
            raise InvalidInput("order.amount", f"{self.amount} is less than its items' sum {total}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "amount": self.amount,
            "currency": self.currency,
            "items": [item.to_dict() for item in self.items],
        }


ITEM_FIELDS = frozenset(("product_id", "category", "quantity", "unit_price"))


def items_total(raw_items: object, field: str) -> int:
    """Order lines as the ledger stores them (dicts), checked like OrderItem; their total.

    For the import of recorded orders, which needs the lines as they are, not as objects.
    """
    if not isinstance(raw_items, list):
        raise InvalidInput(field, "must be a list")
    if len(raw_items) > MAX_ITEMS:
        raise InvalidInput(field, f"more than {MAX_ITEMS} lines")
    total = 0
    for i, item in enumerate(raw_items):
        if _plain_item(item):  # the common case in one expression
            total += item["quantity"] * item["unit_price"]
            continue
        where = f"{field}[{i}]"  # anything else is named by the checks OrderItem uses
        p.reject_unknown(p.mapping(item, where), set(ITEM_FIELDS), where)
        p.identifier(item.get("product_id"), f"{where}.product_id")
        p.optional_identifier(item.get("category"), f"{where}.category")
        quantity = p.integer(
            item.get("quantity"), f"{where}.quantity", minimum=1, maximum=MAX_QUANTITY
        )
        total += quantity * check_amount(item.get("unit_price"), f"{where}.unit_price")
    return total


def _plain_item(item: object) -> bool:
    """A line that passes every check of items_total, tested at once."""
    if type(item) is not dict or not item.keys() <= ITEM_FIELDS:
        return False
    product, category = item.get("product_id"), item.get("category")
    quantity, price = item.get("quantity"), item.get("unit_price")
    return (
        type(quantity) is int
        and 1 <= quantity <= MAX_QUANTITY
        and type(price) is int
        and 0 <= price <= MAX_AMOUNT
        and type(product) is str
        and p.ID_PATTERN.fullmatch(product) is not None
        and len(product) <= p.MAX_ID_LENGTH
        and (
            category is None
            or (
                type(category) is str
                and p.ID_PATTERN.fullmatch(category) is not None
                and len(category) <= p.MAX_ID_LENGTH
            )
        )
    )


def order_from_dict(data: object, field: str = "order") -> Order:
    d = p.mapping(data, field)
    p.reject_unknown(d, {"id", "amount", "currency", "items"}, field)
    raw_items = d.get("items") or []
    if not isinstance(raw_items, list):
        raise InvalidInput(f"{field}.items", "must be a list")
    if len(raw_items) > MAX_ITEMS:
        raise InvalidInput(f"{field}.items", f"more than {MAX_ITEMS} lines")
    items = []
    for i, raw in enumerate(raw_items):
        item_field = f"{field}.items[{i}]"
        item = p.mapping(raw, item_field)
        p.reject_unknown(item, {"product_id", "category", "quantity", "unit_price"}, item_field)
        items.append(
            OrderItem(
                product_id=p.identifier(item.get("product_id"), f"{item_field}.product_id"),
                category=p.optional_identifier(item.get("category"), f"{item_field}.category"),
                quantity=p.integer(
                    item.get("quantity", 1),
                    f"{item_field}.quantity",
                    minimum=1,
                    maximum=MAX_QUANTITY,
                ),
                unit_price=check_amount(item.get("unit_price"), f"{item_field}.unit_price"),
            )
        )
    amount = d.get("amount")
    if amount is None and items:
        amount = sum(item.total for item in items)
    return Order(
        amount=check_amount(amount, f"{field}.amount"),
        currency=check_currency(d.get("currency"), f"{field}.currency"),
        items=tuple(items),
        id=p.optional_identifier(d.get("id"), f"{field}.id"),
    )


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who and where: raw device, IP and payment fingerprint are hashed before storage."""

    device_id: str | None = None
    ip: str | None = None
    payment_fingerprint: str | None = None
    store_id: str | None = None
    staff_id: str | None = None
    sales_channel: str | None = None

    def __post_init__(self) -> None:
        for name in ("device_id", "payment_fingerprint"):
            value = getattr(self, name)
            if value is not None:
                p.text(value, f"context.{name}", max_length=256)
                if not value:
                    raise InvalidInput(f"context.{name}", "must not be empty")
        if self.ip is not None:
            if not isinstance(self.ip, str) or len(self.ip) > 64 or not self.ip.isascii():
                raise InvalidInput("context.ip", "must be an IP address")
            canonical = _canonical_ip(self.ip)
            if canonical is None:
                raise InvalidInput("context.ip", f"not an IP address: {p.short(self.ip)}")
            # One spelling per address, so that its hash joins across requests.
            object.__setattr__(self, "ip", canonical)
        for name in ("store_id", "staff_id", "sales_channel"):
            p.optional_identifier(getattr(self, name), f"context.{name}")


@functools.lru_cache(maxsize=65_536)
def _canonical_ip(text: str) -> str | None:
    """The address's one spelling, or None. Cached: parsing costs microseconds and the same
    addresses come back request after request (bounded, like the context hasher's cache)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


CONTEXT_FIELDS = ("device_id", "ip", "payment_fingerprint", "store_id", "staff_id", "sales_channel")


def context_from_dict(data: object, field: str = "context") -> RequestContext:
    if data is None:
        return RequestContext()
    d: Mapping[str, Any] = p.mapping(data, field)
    p.reject_unknown(d, set(CONTEXT_FIELDS), field)
    return RequestContext(**{name: d.get(name) for name in CONTEXT_FIELDS})
