"""Small builders for the redemption tests: definitions, orders and an engine on a real ledger.

Each builder gives a valid default that a test overrides only where its point lies, so a test
reads as the one condition it is about.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redemption_core.engine import (
    RedeemRequest,
    RedemptionEngine,
    RedemptionResult,
    RollbackResult,
    ValidationResult,
)
from redemption_core.events import Event, EventType
from redemption_core.hashing import ContextHasher
from redemption_core.orders import Order, OrderItem, RequestContext
from redemption_core.reasons import Code
from redemption_core.sqlite_store import SqliteLedgerStore
from redemption_core.state import CampaignState, VoucherState

# A Wednesday, noon UTC. Tests that care about the weekday or the hour say so explicitly.
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
STANDALONE_CODE = "SPRING10"


class Clock:
    """A clock the test moves by hand; the engine calls it for every `now`."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def set(self, moment: datetime) -> None:
        self.now = moment


def engine_at(tmp_path: Path, now: datetime | Clock = NOW) -> RedemptionEngine:
    """An engine on a fresh SQLite ledger in tmp_path; pass a Clock to move time later."""
    clock = now if isinstance(now, Clock) else Clock(now)
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    return RedemptionEngine(store, ContextHasher(b"k" * 32), clock=clock)


def campaign_def(**overrides: Any) -> dict[str, Any]:
    """An active EUR campaign with one shared code and 10.00 EUR off; override any field."""
    definition: dict[str, Any] = {
        "id": "spring",
        "name": "Spring sale",
        "currency": "EUR",
        "status": "active",
        "voucher": {"kind": "standalone", "code": STANDALONE_CODE},
        "discount": {"type": "amount", "amount_off": 1000},
    }
    definition.update(overrides)
    return definition


def unique_def(**overrides: Any) -> dict[str, Any]:
    """An active EUR campaign of single-use unique codes (holder-only by default)."""
    return campaign_def(**{"id": "welcome", "voucher": {"kind": "unique"}, **overrides})


def gift_def(balance: int = 5000, **overrides: Any) -> dict[str, Any]:
    definition = campaign_def(
        id="giftcards", voucher={"kind": "gift", "gift_balance": balance}, **overrides
    )
    del definition["discount"]
    return definition


def item(
    product_id: str = "sku-1",
    unit_price: int = 1000,
    quantity: int = 1,
    category: str | None = None,
) -> OrderItem:
    return OrderItem(product_id, quantity, unit_price, category)


def order(
    amount: int | None = None,
    items: Iterable[OrderItem] = (),
    currency: str = "EUR",
    id: str | None = None,
) -> Order:
    """An order of `amount` minor units (default: its items' sum, or 50.00 without items)."""
    lines = tuple(items)
    if amount is None:
        amount = sum(line.total for line in lines) if lines else 5000
    return Order(amount=amount, currency=currency, items=lines, id=id)


def standalone(engine: RedemptionEngine, **overrides: Any) -> str:
    """Create a standalone campaign; returns its shared code."""
    definition = campaign_def(**overrides)
    engine.create_from_definition(definition)
    return definition["voucher"]["code"]


def unique_voucher(
    engine: RedemptionEngine, holder: str | None = "cust-1", **overrides: Any
) -> str:
    """Create a unique-code campaign with one code, published to `holder` unless None."""
    definition = unique_def(**overrides)
    engine.create_from_definition(definition)
    [code] = engine.generate_codes(definition["id"], 1)
    if holder is not None:
        engine.publish(code, holder)
    return code


def gift_card(
    engine: RedemptionEngine, balance: int = 5000, holder: str = "cust-1", **overrides: Any
) -> str:
    definition = gift_def(balance, **overrides)
    engine.create_from_definition(definition)
    [code] = engine.generate_codes(definition["id"], 1)
    engine.publish(code, holder)
    return code


def redeem(
    engine: RedemptionEngine,
    code: str,
    on: Order | None = None,
    *,
    customer_id: str | None = None,
    context: RequestContext | None = None,
    session_id: str | None = None,
    gift_amount: int | None = None,
) -> RedemptionResult:
    return engine.redeem(
        RedeemRequest(
            code=code,
            order=on if on is not None else order(),
            customer_id=customer_id,
            context=context or RequestContext(),
            session_id=session_id,
            gift_amount=gift_amount,
        )
    )


def codes(result: ValidationResult | RedemptionResult | RollbackResult) -> set[Code]:
    """The reason codes of a result, as a set (their order is not part of the contract)."""
    return {reason.code for reason in result.reasons}


def voucher(engine: RedemptionEngine, code: str) -> VoucherState:
    with engine.store.read() as tx:
        state = tx.voucher_by_code(code)
    assert state is not None, f"no voucher {code}"
    return state


def campaign(engine: RedemptionEngine, campaign_id: str) -> CampaignState:
    with engine.store.read() as tx:
        state = tx.campaign_state(campaign_id)
    assert state is not None, f"no campaign {campaign_id}"
    return state


def events(engine: RedemptionEngine, *types: EventType) -> list[Event]:
    """Committed events, optionally only those of the given types."""
    return [e for e in engine.store.events() if not types or e.event_type in types]
