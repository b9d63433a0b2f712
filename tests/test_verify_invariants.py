"""`promo ledger verify` checks the ledger's invariants, not only that a replay gives the same
projection: each breach below is an event written straight into the ledger (the SQLite file, or
the PostgreSQL events table as the application role may append), bypassing the engine (as a
careless tool or a hand edit would), and verify names that event by its seq and event id with
the reason code. Every test runs on both ledgers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from builders import (
    NOW,
    Clock,
    add_customers,
    campaign_def,
    gift_def,
    order,
    redeem,
    unique_def,
)
from reliability_helpers import ledger_of_store

from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.hashing import ContextHasher
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.dialect import to_pyformat
from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.rows import INSERT_EVENT, event_row
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import Difference, verify_ledger

LATER = NOW + timedelta(minutes=10)


def write_behind_the_engines_back(engine: RedemptionEngine, event: Event) -> tuple[int, str]:
    """Append `event` to the ledger with plain SQL; returns its (seq, event_id)."""
    engine.flush()
    store = engine.store
    if isinstance(store, PostgresLedgerStore):
        with psycopg.connect(store.url, autocommit=True) as pg:
            [(seq,)] = pg.execute(
                to_pyformat(INSERT_EVENT) + " RETURNING seq", event_row(event)
            ).fetchall()
        return seq, event.event_id
    db = sqlite3.connect(store.path)  # type: ignore[attr-defined]
    try:
        with db:
            seq = db.execute(INSERT_EVENT, event_row(event)).lastrowid
    finally:
        db.close()
    return seq, event.event_id  # type: ignore[return-value]


def findings(engine: RedemptionEngine) -> list[Difference]:
    report = verify_ledger(ledger_of_store(engine.store))
    return [d for d in report.differences if d.code is not None]


def redemption(
    engine: RedemptionEngine, code: str, *, campaign_id: str | None = None, **payload: Any
) -> Event:
    """A redemption of `code` by cust-1 as the engine writes one (10.00 off an order of
    40.00), with `payload` changes; charged to its voucher's campaign unless told otherwise."""
    with engine.store.read() as tx:
        voucher = tx.voucher_by_code(code)
    assert voucher is not None
    body = {"code": code, "order": order(4000).to_dict(), "discount": 1000, "gift_amount": 0,
            "currency": "EUR", **payload}  # fmt: skip
    return Event(
        EventType.REDEMPTION_SUCCEEDED, LATER, body,
        campaign_id=campaign_id or voucher.campaign_id, voucher_id=voucher.voucher_id,
        customer_id="cust-1", redemption_id=new_id("r"),
    )  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]) -> RedemptionEngine:
    engine = RedemptionEngine(ledger_store(tmp_path), ContextHasher(b"k" * 32), clock=Clock())
    add_customers(engine, "cust-1")
    return engine


def test_a_second_use_of_a_single_use_voucher_is_named(engine: RedemptionEngine) -> None:
    engine.create_from_definition(unique_def())
    [code] = engine.generate_codes("welcome", 1)
    engine.publish(code, "cust-1")
    assert redeem(engine, code, customer_id="cust-1").ok

    key = write_behind_the_engines_back(engine, redemption(engine, code))

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "quantity_exceeded")]


@pytest.mark.parametrize(
    "limits, code",
    [
        ({"per_customer": 1}, "customer_limit_exceeded"),
        ({"campaign_total": 1}, "campaign_limit_exceeded"),
        ({"budget": 1500}, "campaign_budget_exceeded"),
    ],
)
def test_a_customer_or_campaign_beyond_its_limit_or_budget_is_named(
    engine: RedemptionEngine, limits: dict, code: str
) -> None:
    engine.create_from_definition(campaign_def(limits=limits))
    assert redeem(engine, "SPRING10", customer_id="cust-1").ok

    key = write_behind_the_engines_back(engine, redemption(engine, "SPRING10"))

    assert [(d.key, d.code) for d in findings(engine)] == [(key, code)]


def test_a_gift_card_spent_below_zero_is_named_with_its_negative_balance(
    engine: RedemptionEngine,
) -> None:
    engine.create_from_definition(gift_def(5000))
    [code] = engine.generate_codes("giftcards", 1)
    engine.publish(code, "cust-1")

    key = write_behind_the_engines_back(
        engine,
        redemption(engine, code, discount=0, gift_amount=7000, order={**order(9000).to_dict()}),
    )

    found = findings(engine)
    assert [(d.key, d.code) for d in found] == [
        (key, "gift_amount_exceeded"),
        (key, "counter_negative"),
    ]
    assert "-2000" in str(found[1])


def rolled_back(engine: RedemptionEngine, **changes: Any) -> tuple[int, str]:
    engine.create_from_definition(campaign_def())
    result = redeem(engine, "SPRING10", customer_id="cust-1")
    engine.rollback(result.redemption_id or "")
    [done] = [e for e in engine.store.events() if e.event_type is EventType.REDEMPTION_ROLLED_BACK]
    again = Event(
        EventType.REDEMPTION_ROLLED_BACK, LATER, {**done.payload, **changes},
        campaign_id=done.campaign_id, voucher_id=done.voucher_id, customer_id=done.customer_id,
        redemption_id=done.redemption_id,
    )  # fmt: skip
    return write_behind_the_engines_back(engine, again)


def test_a_second_rollback_of_one_redemption_is_named(engine: RedemptionEngine) -> None:
    key = rolled_back(engine)

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "already_rolled_back")]


def test_a_rollback_giving_back_more_than_its_redemption_took_is_named(
    engine: RedemptionEngine,
) -> None:
    engine.create_from_definition(campaign_def(id="other", voucher={"kind": "standalone", "code": "OTHER"}))  # fmt: skip
    result = redeem(engine, "OTHER", customer_id="cust-1")
    with engine.store.read() as tx:
        standing = tx.redemption(result.redemption_id or "")
    assert standing is not None
    too_much = Event(
        EventType.REDEMPTION_ROLLED_BACK, LATER, {"discount": 99_000, "gift_amount": 0},
        campaign_id="other", voucher_id=standing.voucher_id, customer_id="cust-1",
        redemption_id=standing.redemption_id,
    )  # fmt: skip

    key = write_behind_the_engines_back(engine, too_much)

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "state_mismatch")]


def test_a_redemption_charged_to_a_campaign_its_voucher_is_not_in_is_named(
    engine: RedemptionEngine,
) -> None:
    engine.create_from_definition(campaign_def())
    engine.create_from_definition(campaign_def(id="other", voucher={"kind": "standalone", "code": "OTHER"}))  # fmt: skip
    wrong = redemption(engine, "SPRING10", campaign_id="other")

    key = write_behind_the_engines_back(engine, wrong)

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "voucher_not_in_campaign")]


def test_amounts_in_a_currency_that_does_not_exist_are_named(engine: RedemptionEngine) -> None:
    unknown = Event(
        EventType.ORDER_RECORDED, LATER, {"amount": 100, "currency": "XXX", "items": []},
        customer_id="cust-1", order_id="o-x",
    )  # fmt: skip

    key = write_behind_the_engines_back(engine, unknown)

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "unknown_currency")]


def test_a_refund_beyond_what_the_customer_paid_is_named(engine: RedemptionEngine) -> None:
    engine.create_from_definition(campaign_def())
    engine.record_order(order(2000, id="o-1"), customer_id="cust-1")
    assert redeem(engine, "SPRING10", order(2000, id="o-1"), customer_id="cust-1").ok
    refund = Event(
        EventType.ORDER_REFUNDED, LATER, {"amount": 2000, "reason": "", "refund_id": "rf-x"},
        customer_id="cust-1", order_id="o-1",
    )  # fmt: skip

    key = write_behind_the_engines_back(engine, refund)

    assert [(d.key, d.code) for d in findings(engine)] == [(key, "refund_exceeds_paid")]


def test_a_ledger_written_by_the_engine_alone_breaks_no_invariant(engine: RedemptionEngine) -> None:
    engine.create_from_definition(campaign_def(limits={"per_customer": 2, "budget": 5000}))
    for _ in range(3):
        redeem(engine, "SPRING10", customer_id="cust-1")

    assert verify_ledger(ledger_of_store(engine.store)).clean
