"""Discount arithmetic in integer minor units, percent parsing, and gift card balances."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from builders import codes, engine_at, gift_card, item, order, redeem, voucher

from redemption_core.domain.campaigns import Discount, DiscountType, ItemFilter
from redemption_core.domain.discounts import compute_discount
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.money import parse_percent, percent_of
from redemption_core.domain.reasons import Code

SHOES = ItemFilter(categories=frozenset({"shoes"}))
BOOTS = ItemFilter(products=frozenset({"boot-1"}))


def amount_off(value: int, applies_to: ItemFilter | None = None) -> Discount:
    return Discount(DiscountType.AMOUNT, amount_off=value, applies_to=applies_to)


def percent_off(
    basis_points: int, *, cap: int | None = None, applies_to: ItemFilter | None = None
) -> Discount:
    return Discount(
        DiscountType.PERCENT, percent_off_bp=basis_points, max_discount=cap, applies_to=applies_to
    )


def fixed_price(price: int, applies_to: ItemFilter | None = None) -> Discount:
    return Discount(DiscountType.FIXED_PRICE, fixed_price=price, applies_to=applies_to)


def free_item(product: str) -> Discount:
    return Discount(DiscountType.FREE_ITEM, free_product=product)


@pytest.mark.parametrize(
    ("amount", "basis_points", "expected"),
    [
        (333, 1500, 50),  # 49.95 rounds up
        (1, 1250, 0),  # 0.125 rounds down
        (4, 1250, 1),  # 0.5 rounds half up
        (3, 5000, 2),  # 1.5 rounds half up
        (10_000, 1, 1),  # 0.01% of 100.00
        (0, 5000, 0),
        (12_345, 10_000, 12_345),
    ],
)
def test_percent_of_rounds_half_up_to_a_whole_minor_unit(
    amount: int, basis_points: int, expected: int
) -> None:
    result = percent_of(amount, basis_points)

    assert result == expected


def test_amount_off_is_taken_from_the_order() -> None:
    discount, reason = compute_discount(amount_off(1000), order(5000))

    assert (discount, reason) == (1000, None)


def test_amount_off_is_capped_at_the_order_amount() -> None:
    discount, reason = compute_discount(amount_off(1000), order(600))

    assert (discount, reason) == (600, None)


def test_amount_off_on_items_is_capped_at_the_matching_items() -> None:
    lines = [item("boot-1", 700, category="shoes"), item("hat-1", 5000, category="hats")]

    discount, _ = compute_discount(amount_off(1000, applies_to=SHOES), order(items=lines))

    assert discount == 700


def test_percent_discount_is_rounded_half_up() -> None:
    discount, reason = compute_discount(percent_off(1500), order(333))

    assert (discount, reason) == (50, None)


def test_percent_discount_is_capped_by_max_discount() -> None:
    uncapped, _ = compute_discount(percent_off(2000), order(100_000))
    capped, _ = compute_discount(percent_off(2000, cap=5000), order(100_000))
    under_cap, _ = compute_discount(percent_off(2000, cap=5000), order(10_000))

    assert uncapped == 20_000
    assert capped == 5000
    assert under_cap == 2000


def test_percent_that_rounds_to_zero_has_no_applicable_items() -> None:
    discount, reason = compute_discount(percent_off(1250), order(1))

    assert discount == 0
    assert reason is not None
    assert reason.code is Code.NO_APPLICABLE_ITEMS


def test_fixed_price_on_the_order_discounts_the_difference() -> None:
    discount, _ = compute_discount(fixed_price(3000), order(5000))

    assert discount == 2000


def test_fixed_price_above_the_order_amount_comes_to_nothing() -> None:
    discount, reason = compute_discount(fixed_price(6000), order(5000))

    assert discount == 0
    assert reason is not None
    assert reason.code is Code.NO_APPLICABLE_ITEMS


def test_fixed_price_on_items_sets_each_matching_unit_to_the_price() -> None:
    lines = [
        item("boot-1", 8000, quantity=2, category="shoes"),  # 2 x (80.00 - 50.00)
        item("sandal-1", 3000, category="shoes"),  # already below the price: nothing
        item("hat-1", 9000, category="hats"),  # not matching
    ]

    discount, _ = compute_discount(fixed_price(5000, applies_to=SHOES), order(items=lines))

    assert discount == 6000


def test_free_item_discounts_one_unit_of_the_cheapest_line() -> None:
    lines = [
        item("sock-1", 900, quantity=3),
        item("sock-1", 700, quantity=1),
        item("boot-1", 8000),
    ]

    discount, reason = compute_discount(free_item("sock-1"), order(items=lines))

    assert (discount, reason) == (700, None)


def test_free_item_missing_from_the_order_is_required_product_missing() -> None:
    discount, reason = compute_discount(free_item("sock-1"), order(items=[item("boot-1", 8000)]))

    assert discount == 0
    assert reason is not None
    assert reason.code is Code.REQUIRED_PRODUCT_MISSING


def test_item_filter_by_product_discounts_only_that_product() -> None:
    lines = [item("boot-1", 8000), item("boot-2", 8000)]

    discount, _ = compute_discount(percent_off(1000, applies_to=BOOTS), order(items=lines))

    assert discount == 800


def test_item_filter_by_category_discounts_every_product_in_it() -> None:
    lines = [
        item("boot-1", 8000, category="shoes"),
        item("sandal-1", 2000, category="shoes"),
        item("hat-1", 5000, category="hats"),
        item("gift-wrap", 500),  # no category at all
    ]

    discount, _ = compute_discount(percent_off(1000, applies_to=SHOES), order(items=lines))

    assert discount == 1000


def test_item_filter_matches_a_product_or_a_category() -> None:
    either = ItemFilter(products=frozenset({"hat-1"}), categories=frozenset({"shoes"}))
    lines = [
        item("boot-1", 8000, category="shoes"),
        item("hat-1", 5000, category="hats"),
        item("scarf-1", 3000, category="scarves"),
    ]

    discount, _ = compute_discount(percent_off(1000, applies_to=either), order(items=lines))

    assert discount == 1300


def test_item_discount_without_matching_items_has_no_applicable_items() -> None:
    discount, reason = compute_discount(
        amount_off(1000, applies_to=SHOES), order(items=[item("hat-1", 5000, category="hats")])
    )

    assert discount == 0
    assert reason is not None
    assert reason.code is Code.NO_APPLICABLE_ITEMS


@pytest.mark.parametrize(
    "discount",
    [
        amount_off(10**9),
        percent_off(10_000),
        percent_off(10_000, cap=10**9),
        fixed_price(0),
        fixed_price(10**9),
        amount_off(10**9, applies_to=SHOES),
        fixed_price(0, applies_to=SHOES),
        free_item("boot-1"),
    ],
    ids=lambda d: f"{d.type}-{'items' if d.applies_to else 'order'}",
)
@pytest.mark.parametrize("amount", [0, 1, 999, 7000, 123_457])
def test_discount_is_never_negative_nor_above_its_base(discount: Discount, amount: int) -> None:
    lines = [item("boot-1", min(amount, 999), category="shoes")] if amount else []
    the_order = order(amount, items=lines)
    base = sum(line.total for line in lines) if discount.applies_to else amount

    value, reason = compute_discount(discount, the_order)

    assert 0 <= value <= base
    assert (value == 0) == (reason is not None)


def test_gift_card_is_used_in_part_and_keeps_the_rest(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = gift_card(engine, balance=5000, holder="cust-1")

    first = redeem(engine, code, order(3000), customer_id="cust-1")
    second = redeem(engine, code, order(3000), customer_id="cust-1")
    empty = redeem(engine, code, order(3000), customer_id="cust-1")

    assert (first.gift_amount, first.amount_to_pay) == (3000, 0)
    assert (second.gift_amount, second.amount_to_pay) == (2000, 1000)
    assert codes(empty) == {Code.GIFT_AMOUNT_EXCEEDED}
    assert voucher(engine, code).gift_balance == 0


def test_gift_card_pays_only_the_requested_amount(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = gift_card(engine, balance=5000, holder="cust-1")

    result = redeem(engine, code, order(4000), customer_id="cust-1", gift_amount=1500)

    assert (result.gift_amount, result.amount_to_pay) == (1500, 2500)
    assert voucher(engine, code).gift_balance == 3500


def test_topped_up_gift_card_can_be_used_again(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = gift_card(engine, balance=1000, holder="cust-1")
    assert redeem(engine, code, order(1000), customer_id="cust-1").ok

    new_balance = engine.top_up(code, 2500)
    result = redeem(engine, code, order(4000), customer_id="cust-1")

    assert new_balance == 2500
    assert (result.gift_amount, result.amount_to_pay) == (2500, 1500)
    assert voucher(engine, code).gift_balance == 0


@pytest.mark.parametrize(
    ("value", "basis_points"),
    [(15, 1500), ("12.5", 1250), (12.5, 1250), ("0.01", 1), (100, 10_000), ("99.99", 9999)],
)
def test_parse_percent_reads_up_to_two_decimals_exactly(value: object, basis_points: int) -> None:
    result = parse_percent(value, "discount.percent_off")

    assert result == basis_points


@pytest.mark.parametrize(
    "value",
    [
        "12.345",  # three decimals
        0.001,
        0,
        "0",
        -5,
        100.01,
        101,
        math.nan,
        "NaN",
        math.inf,
        True,
        False,
        None,
        "fifteen",
        [15],
    ],
    ids=repr,
)
def test_parse_percent_refuses_anything_but_a_percentage(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_percent(value, "discount.percent_off")

    assert refused.value.field == "discount.percent_off"
