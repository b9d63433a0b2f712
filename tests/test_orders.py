"""Orders: recorded with or without a customer or a voucher, refunded, cancelled.

A customer's order count, net spend and first and last order dates follow their orders.
Cancelling an order rolls back every open redemption on it in the same transaction, and
the customer's figures come back from the orders still standing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import (
    Clock,
    campaign,
    codes,
    engine_at,
    events,
    gift_card,
    item,
    moment,
    order,
    redeem,
    standalone,
    voucher,
)

from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import EventType
from redemption_core.domain.reasons import Code
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.verify import verify_ledger


def order_row(engine: RedemptionEngine, order_id: str) -> tuple:
    with engine.store.read() as tx:
        [row] = tx.query(
            "SELECT customer_id, amount, refunded, cancelled_at FROM orders WHERE order_id = :id",
            {"id": order_id},
        )
    return row


def order_lines(engine: RedemptionEngine, order_id: str) -> list[tuple]:
    with engine.store.read() as tx:
        return tx.query(
            "SELECT line, customer_id, product_id, category, quantity, amount FROM order_lines"
            " WHERE order_id = :id ORDER BY line",
            {"id": order_id},
        )


def test_orders_recorded_for_a_customer_keep_their_count_spend_and_dates(tmp_path: Path) -> None:
    clock = Clock(moment(1, 10))
    engine = engine_at(tmp_path, clock)
    engine.add_customer({"id": "ann"})

    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    clock.set(moment(2, 10))
    engine.record_order(
        order(
            4500,
            [item("sku-1", 1500, 2, "shoes"), item("sku-2", 1000, 1, "socks")],
            id="o-2",
        ),
        customer_id="ann",
    )

    ann = engine.customer("ann")
    assert (ann.orders, ann.spend) == (2, 9500)
    assert (ann.first_order_at, ann.last_order_at) == (moment(1, 10), moment(2, 10))
    assert order_lines(engine, "o-2") == [
        (0, "ann", "sku-1", "shoes", 2, 3000),
        (1, "ann", "sku-2", "socks", 1, 1000),
    ]
    recorded = events(engine, EventType.ORDER_RECORDED)
    assert [(e.order_id, e.customer_id, e.payload["amount"]) for e in recorded] == [
        ("o-1", "ann", 5000),
        ("o-2", "ann", 4500),
    ]
    assert verify_ledger(engine.store.path).clean


def test_a_guest_order_is_recorded_without_touching_any_customer(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})

    engine.record_order(order(items=[item("sku-9", 2500, 2, "toys")], id="g-1"))

    assert order_row(engine, "g-1") == (None, 5000, 0, None)
    assert order_lines(engine, "g-1") == [(0, None, "sku-9", "toys", 2, 5000)]
    [recorded] = events(engine, EventType.ORDER_RECORDED)
    assert recorded.customer_id is None
    assert engine.customer("ann").orders == 0
    assert verify_ledger(engine.store.path).clean


def test_recording_an_order_id_twice_is_a_conflict_and_writes_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.record_order(order(7000, id="o-1"), customer_id="ann")

    assert refused.value.field == "order.id"
    assert events(engine) == before
    assert (engine.customer("ann").orders, engine.customer("ann").spend) == (1, 5000)


def test_an_order_for_an_unknown_customer_is_not_found_and_writes_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(NotFound) as refused:
        engine.record_order(order(5000, id="o-1"), customer_id="nobody")

    assert refused.value.field == "customer_id"
    assert events(engine) == []
    with engine.store.read() as tx:
        assert tx.order("o-1") is None


def test_an_order_without_an_id_cannot_be_recorded(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(InvalidInput) as refused:
        engine.record_order(order(5000))

    assert refused.value.field == "order.id"
    assert events(engine) == []


def test_partial_refunds_lower_the_spend_until_the_order_is_fully_refunded(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    engine.record_order(order(2000, id="o-2"), customer_id="ann")

    left_after_first = engine.refund_order("o-1", 1500, reason="one item returned")
    spend_after_first = engine.customer("ann").spend
    left_after_second = engine.refund_order("o-1", 3500)

    assert (left_after_first, left_after_second) == (3500, 0)
    assert (spend_after_first, engine.customer("ann").spend) == (5500, 2000)
    assert engine.customer("ann").orders == 2  # a refunded order still happened
    assert order_row(engine, "o-1") == ("ann", 5000, 5000, None)
    refunds = events(engine, EventType.ORDER_REFUNDED)
    assert [(e.customer_id, e.payload["amount"]) for e in refunds] == [("ann", 1500), ("ann", 3500)]
    assert refunds[0].payload["reason"] == "one item returned"
    assert verify_ledger(engine.store.path).clean


@pytest.mark.parametrize("amount", [5001, 0, -100])
def test_a_refund_beyond_what_is_left_is_refused_naming_amount_and_writes_nothing(
    tmp_path: Path, amount: int
) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    before = events(engine)

    with pytest.raises(InvalidInput) as refused:
        engine.refund_order("o-1", amount)

    assert refused.value.field == "amount"
    assert events(engine) == before
    assert engine.customer("ann").spend == 5000


def test_a_fully_refunded_order_refuses_one_more_cent(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.record_order(order(5000, id="g-1"))
    engine.refund_order("g-1", 5000)

    with pytest.raises(InvalidInput) as refused:
        engine.refund_order("g-1", 1)

    assert refused.value.field == "amount"
    assert order_row(engine, "g-1") == (None, 5000, 5000, None)


def discounted_order(tmp_path: Path) -> tuple[RedemptionEngine, str]:
    """An order of 20.00 for ann with a 5.00-off voucher on it (budget 5.00): she paid 15.00."""
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    code = standalone(
        engine, discount={"type": "amount", "amount_off": 500}, limits={"budget": 500}
    )
    result = redeem(engine, code, order(2000, id="o-1"), customer_id="ann")
    engine.record_order(order(2000, id="o-1"), customer_id="ann")
    assert result.ok and result.discount == 500
    return engine, code


def test_an_order_is_never_refunded_beyond_what_the_customer_paid_while_a_discount_stands(
    tmp_path: Path,
) -> None:
    engine, _ = discounted_order(tmp_path)
    before = events(engine)

    with pytest.raises(InvalidInput) as refused:
        engine.refund_order("o-1", 2000)

    assert refused.value.field == "amount"
    assert "1500 left to refund" in refused.value.problem
    assert events(engine) == before


def test_a_partial_refund_leaves_the_redemption_standing(tmp_path: Path) -> None:
    engine, code = discounted_order(tmp_path)

    left = engine.refund_order("o-1", 600, reason="a side dish was cold")

    assert left == 900
    assert events(engine, EventType.REDEMPTION_ROLLED_BACK) == []
    assert (campaign(engine, "spring").budget_used, voucher(engine, code).redemptions) == (500, 1)


def test_a_refund_of_everything_paid_rolls_back_the_redemption_and_nothing_more_can_be_refunded(
    tmp_path: Path,
) -> None:
    engine, code = discounted_order(tmp_path)
    engine.refund_order("o-1", 600)

    left = engine.refund_order("o-1", 900, reason="returned")

    assert left == 0
    [rolled] = events(engine, EventType.REDEMPTION_ROLLED_BACK)
    assert (rolled.order_id, rolled.payload["cause"], rolled.payload["discount"]) == ("o-1", "order_refunded", 500)  # fmt: skip
    state = campaign(engine, "spring")
    assert (state.redemptions, state.budget_used, voucher(engine, code).redemptions) == (0, 0, 0)
    with pytest.raises(InvalidInput):
        engine.refund_order("o-1", 1)
    assert engine.customer("ann").spend == 500  # the order's 20.00, less the 15.00 refunded
    assert redeem(engine, code, order(2000), customer_id="ann").ok  # the budget came back
    assert verify_ledger(engine.store.path).clean


def test_a_voided_redemption_does_not_lower_what_can_be_refunded(tmp_path: Path) -> None:
    engine, _ = discounted_order(tmp_path)
    [redemption] = events(engine, EventType.REDEMPTION_SUCCEEDED)
    engine.rollback(redemption.redemption_id or "", reason="voided at the till")

    left = engine.refund_order("o-1", 2000)

    assert left == 0
    assert verify_ledger(engine.store.path).clean


def test_a_cancelled_order_cannot_be_refunded(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    engine.cancel_order("o-1")
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.refund_order("o-1", 1000)

    assert refused.value.field == "order_id"
    assert events(engine) == before
    assert engine.customer("ann").spend == 0


def test_refunding_or_cancelling_an_unknown_order_is_not_found(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)

    with pytest.raises(NotFound) as refund:
        engine.refund_order("o-404", 100)
    with pytest.raises(NotFound) as cancel:
        engine.cancel_order("o-404")

    assert refund.value.field == cancel.value.field == "order_id"
    assert events(engine) == []


def test_cancelling_an_order_rolls_back_every_open_redemption_on_it(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    engine.add_customer({"id": "ann"})
    spring = standalone(engine)
    extra = standalone(
        engine,
        id="extra",
        voucher={"kind": "standalone", "code": "EXTRA5"},
        discount={"type": "amount", "amount_off": 500},
    )
    gift = gift_card(engine, 5000, holder="ann")
    basket = order(8000, id="o-1")
    on_spring = redeem(engine, spring, basket, customer_id="ann")
    on_extra = redeem(engine, extra, basket, customer_id="ann")
    on_gift = redeem(engine, gift, basket, customer_id="ann", gift_amount=2000)
    rolled_back_before = redeem(engine, spring, basket, customer_id="ann")
    engine.rollback(rolled_back_before.redemption_id or "")
    elsewhere = redeem(engine, spring, order(3000, id="o-2"), customer_id="ann")
    engine.record_order(basket, customer_id="ann")
    clock.advance(hours=2)

    cancelled = engine.cancel_order("o-1", reason="customer changed their mind")

    assert all(r.ok for r in (on_spring, on_extra, on_gift, rolled_back_before, elsewhere))
    open_ones = {on_spring.redemption_id, on_extra.redemption_id, on_gift.redemption_id}
    assert set(cancelled) == open_ones
    assert (engine.customer("ann").orders, engine.customer("ann").spend) == (0, 0)
    assert (voucher(engine, spring).redemptions, voucher(engine, extra).redemptions) == (1, 0)
    assert voucher(engine, gift).gift_balance == 5000
    spring_state, extra_state = campaign(engine, "spring"), campaign(engine, "extra")
    assert (spring_state.redemptions, spring_state.budget_used) == (1, 1000)
    assert (extra_state.redemptions, extra_state.budget_used) == (0, 0)
    rollbacks = [
        e
        for e in events(engine, EventType.REDEMPTION_ROLLED_BACK)
        if e.redemption_id != rolled_back_before.redemption_id
    ]
    assert {e.redemption_id for e in rollbacks} == open_ones
    assert {e.payload["cause"] for e in rollbacks} == {"order_cancelled"}
    assert {e.occurred_at for e in rollbacks} == {clock.now}
    assert elsewhere.redemption_id not in {e.redemption_id for e in rollbacks}
    with engine.store.read() as tx:
        assert tx.open_redemptions_of_order("o-1") == []
        assert [r.redemption_id for r in tx.open_redemptions_of_order("o-2")] == [
            elsewhere.redemption_id
        ]
        assert tx.customer_campaign_redemptions("spring", "ann") == 1
    assert verify_ledger(engine.store.path).clean


def test_the_rollbacks_of_a_cancellation_are_written_together_with_it(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    code = standalone(engine)
    first = redeem(engine, code, order(8000, id="o-1"), customer_id="ann")
    second = redeem(engine, code, order(8000, id="o-1"), customer_id="ann")
    engine.record_order(order(8000, id="o-1"), customer_id="ann")
    before = len(events(engine))

    engine.cancel_order("o-1")

    written = events(engine)[before:]
    assert [e.event_type for e in written] == [
        EventType.REDEMPTION_ROLLED_BACK,
        EventType.REDEMPTION_ROLLED_BACK,
        EventType.ORDER_CANCELLED,
    ]
    assert [e.redemption_id for e in written[:2]] == [first.redemption_id, second.redemption_id]
    assert len({e.recorded_at for e in written}) == 1
    assert [e.seq for e in written] == list(range(written[0].seq or 0, (written[0].seq or 0) + 3))


def test_a_cancellation_recomputes_the_customers_figures_from_the_orders_still_standing(
    tmp_path: Path,
) -> None:
    clock = Clock(moment(1, 10))
    engine = engine_at(tmp_path, clock)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(3000, id="o-1"), customer_id="ann")
    clock.set(moment(2, 10))
    engine.record_order(order(5000, id="o-2"), customer_id="ann")
    clock.set(moment(3, 10))
    engine.record_order(order(2000, id="o-3"), customer_id="ann")
    clock.set(moment(3, 12))
    engine.refund_order("o-2", 1000)
    clock.set(moment(3, 20))

    engine.cancel_order("o-3")
    after_last = engine.customer("ann")
    engine.cancel_order("o-1")
    after_first = engine.customer("ann")
    engine.cancel_order("o-2")
    after_all = engine.customer("ann")

    assert (after_last.orders, after_last.spend) == (2, 7000)
    assert (after_last.first_order_at, after_last.last_order_at) == (moment(1, 10), moment(2, 10))
    assert (after_first.orders, after_first.spend) == (1, 4000)
    assert (after_first.first_order_at, after_first.last_order_at) == (
        moment(2, 10),
        moment(2, 10),
    )
    assert (after_all.orders, after_all.spend) == (0, 0)
    assert (after_all.first_order_at, after_all.last_order_at) == (None, None)
    assert order_row(engine, "o-2") == ("ann", 5000, 1000, "2026-03-20T12:00:00.000000Z")
    assert verify_ledger(engine.store.path).clean


def test_cancelling_an_order_twice_is_a_conflict_and_writes_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    engine.record_order(order(2000, id="o-2"), customer_id="ann")
    engine.cancel_order("o-1")
    before = events(engine)

    with pytest.raises(Conflict) as refused:
        engine.cancel_order("o-1")

    assert refused.value.field == "order_id"
    assert events(engine) == before
    assert (engine.customer("ann").orders, engine.customer("ann").spend) == (1, 2000)
    assert verify_ledger(engine.store.path).clean


def test_a_guest_order_can_be_cancelled(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="g-1"))

    engine.cancel_order("g-1")

    assert order_row(engine, "g-1")[3] is not None
    assert engine.customer("ann").orders == 0
    assert verify_ledger(engine.store.path).clean


def newcomers(engine: RedemptionEngine) -> str:
    """A campaign for customers who have never ordered; returns its shared code."""
    return standalone(
        engine,
        id="newcomers",
        voucher={"kind": "standalone", "code": "WELCOME"},
        rules={"new_customers_only": True},
    )


def test_a_customer_with_a_recorded_order_is_not_new(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = newcomers(engine)
    engine.add_customer({"id": "ann"})
    engine.add_customer({"id": "bob"})

    engine.record_order(order(5000, id="o-1"), customer_id="ann")

    assert codes(engine.validate(code, order(), customer_id="ann")) == {Code.CUSTOMER_NOT_NEW}
    assert engine.validate(code, order(), customer_id="bob").valid


def test_a_guest_order_does_not_make_anyone_old(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = newcomers(engine)
    engine.add_customer({"id": "ann"})

    engine.record_order(order(5000, id="g-1"))

    assert engine.validate(code, order(), customer_id="ann").valid


def test_a_customer_whose_only_order_was_cancelled_is_new_again(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = newcomers(engine)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    engine.record_order(order(2000, id="o-2"), customer_id="ann")
    engine.cancel_order("o-1")
    one_left = engine.validate(code, order(), customer_id="ann")

    engine.cancel_order("o-2")

    assert codes(one_left) == {Code.CUSTOMER_NOT_NEW}
    assert engine.validate(code, order(), customer_id="ann").valid
    assert verify_ledger(engine.store.path).clean


def test_a_customer_whose_only_order_used_a_welcome_voucher_is_new_again_once_it_is_cancelled(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    code = newcomers(engine)
    engine.add_customer({"id": "ann"})
    welcome = redeem(engine, code, order(5000, id="o-1"), customer_id="ann")
    engine.record_order(order(5000, id="o-1"), customer_id="ann")
    while_standing = engine.validate(code, order(), customer_id="ann")

    engine.cancel_order("o-1")

    assert welcome.ok
    assert codes(while_standing) == {Code.CUSTOMER_NOT_NEW}
    assert engine.customer("ann").orders == 0
    assert engine.validate(code, order(), customer_id="ann").valid
    assert verify_ledger(engine.store.path).clean


def test_new_customers_only_is_checked_again_at_redemption(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    code = newcomers(engine)
    engine.add_customer({"id": "ann"})
    engine.record_order(order(5000, id="o-1"), customer_id="ann")

    refused = redeem(engine, code, order(3000, id="o-2"), customer_id="ann")

    assert not refused.ok
    assert codes(refused) == {Code.CUSTOMER_NOT_NEW}
    assert voucher(engine, code).redemptions == 0
