"""Discount arithmetic, in integer minor units (rounding: see money.py).

The base of a discount is the whole order amount, or the sum of the matching items when the
discount applies to items. A discount is never negative and never exceeds its base.
"""

from __future__ import annotations

from collections.abc import Mapping

from redemption_core.domain.campaigns import Discount, DiscountType
from redemption_core.domain.catalogue import ProductFacts, matching_items
from redemption_core.domain.money import percent_of
from redemption_core.domain.orders import Order
from redemption_core.domain.reasons import Code, Reason


def discount_base(
    discount: Discount, order: Order, catalogue: Mapping[str, ProductFacts] | None = None
) -> int:
    if discount.applies_to is None:
        return order.amount
    taken = matching_items(discount.applies_to, order, catalogue or {})
    return sum(item.total for item, hit in zip(order.items, taken, strict=True) if hit)


def compute_discount(
    discount: Discount, order: Order, catalogue: Mapping[str, ProductFacts] | None = None
) -> tuple[int, Reason | None]:
    """The discount this order earns, or zero and the reason it earns none. `catalogue`: what
    the product catalogue says of the order's products (see catalogue.matching_items)."""
    if discount.type is DiscountType.UNSPECIFIED:
        return 0, Reason(Code.NO_APPLICABLE_ITEMS, "the campaign's discount is not specified here")
    if discount.type is DiscountType.FREE_ITEM:
        prices = [
            item.unit_price for item in order.items if item.product_id == discount.free_product
        ]
        if not prices:
            return 0, Reason(
                Code.REQUIRED_PRODUCT_MISSING,
                f"the free item {discount.free_product} is not in the order",
            )
        # One unit is free; with several lines of the product, the cheapest one.
        amount = min(prices)
    else:
        base = discount_base(discount, order, catalogue)
        if discount.type is DiscountType.AMOUNT:
            amount = min(discount.amount_off or 0, base)
        elif discount.type is DiscountType.PERCENT:
            amount = percent_of(base, discount.percent_off_bp or 0)
            if discount.max_discount is not None:
                amount = min(amount, discount.max_discount)
        else:  # FIXED_PRICE: the order, or each matching unit, costs fixed_price
            fixed = discount.fixed_price or 0
            if discount.applies_to is None:
                amount = max(0, base - fixed)
            else:
                taken = matching_items(discount.applies_to, order, catalogue or {})
                amount = sum(
                    item.quantity * max(0, item.unit_price - fixed)
                    for item, hit in zip(order.items, taken, strict=True)
                    if hit
                )
        amount = min(amount, base)
    if amount <= 0:
        what = "the order" if discount.applies_to is None else "the matching items"
        return 0, Reason(Code.NO_APPLICABLE_ITEMS, f"the discount comes to zero on {what}")
    return amount, None
