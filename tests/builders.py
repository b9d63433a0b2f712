"""Small builders for the redemption tests: definitions, orders and an engine on a real ledger.

Each builder gives a valid default that a test overrides only where its point lies, so a test
reads as the one condition it is about.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redemption_core.distribution.channels import Channel, ChannelKind, DeliveryError, Message
from redemption_core.distribution.distributor import (
    ContactBook,
    Distributor,
    RetryPolicy,
    SyntheticContactBook,
)
from redemption_core.domain.clock import SettableClock
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.domain.reasons import Code
from redemption_core.domain.state import CampaignState, VoucherState
from redemption_core.engine.redemption import (
    RedeemRequest,
    RedemptionEngine,
    RedemptionResult,
    RollbackResult,
    ValidationResult,
)
from redemption_core.ledger.sqlite import SqliteLedgerStore

# A Wednesday, noon UTC. Tests that care about the weekday or the hour say so explicitly.
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
STANDALONE_CODE = "SPRING10"


class Clock(SettableClock):
    """A clock the test moves by hand, starting at NOW."""

    def __init__(self, now: datetime = NOW) -> None:
        super().__init__(now)

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


def cart(amount: int = 5000, currency: str = "EUR") -> Order:
    """An order with one line of `amount`: what a hold needs (a cart, not just a total)."""
    return order(items=[item("sku-cart", amount)], currency=currency)


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


# -- customers, orders and segments -------------------------------------------------------------


def moment(month: int, day: int, hour: int = 12) -> datetime:
    """An instant of 2026, UTC: the customer and segment tests tell their stories in 2026."""
    return datetime(2026, month, day, hour, tzinfo=UTC)


PROFILE_COLUMNS = (
    "email_hash", "email_masked", "phone_hash", "phone_masked",
    "birthday", "anniversary", "attributes", "metadata",
)  # fmt: skip


def customer_row(engine: RedemptionEngine, customer_id: str) -> dict[str, Any]:
    """The customer's row of the projection, with the contact hashes CustomerState leaves out."""
    with engine.store.read() as tx:
        [row] = tx.query(
            f"SELECT {', '.join(PROFILE_COLUMNS)} FROM customers WHERE customer_id = :id",
            {"id": customer_id},
        )
    return dict(zip(PROFILE_COLUMNS, row, strict=True))


def ledger_bytes(engine: RedemptionEngine) -> bytes:
    """Every byte of the ledger's files (database, WAL, shared memory), as a disk would hold."""
    path = Path(engine.store.path)
    return b"".join(part.read_bytes() for part in sorted(path.parent.glob(f"{path.name}*")))


def rule(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def segment_def(segment_id: str, *rules: dict[str, Any], match: str = "all") -> dict[str, Any]:
    return {"id": segment_id, "match": match, "rules": list(rules)}


# -- distribution: promotions, autopilots, channels that record what they are given -------------

EVERYONE = "everyone"
NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, max_delay_s=0)


def everyone(engine: RedemptionEngine, segment_id: str = EVERYONE) -> str:
    """Define a segment every signed-up customer belongs to; returns its id."""
    engine.define_segment(segment_def(segment_id, rule("days_since_signup", ">=", 0)))
    return segment_id


def promotion_def(
    campaign_id: str = "promo",
    *,
    segment: str = EVERYONE,
    channels: Iterable[str] = ("email",),
    control_share: float = 0.0,
    **overrides: Any,
) -> dict[str, Any]:
    """An active unique-code campaign sent once to `segment`, default over email."""
    distribution = {
        "mode": "promotion",
        "segment": segment,
        "channels": list(channels),
        "control_share": control_share,
        "message": {"subject": "A voucher for {campaign}", "body": "Your code: {code}"},
    }
    return unique_def(id=campaign_id, name=campaign_id, distribution=distribution, **overrides)


def autopilot_def(
    campaign_id: str = "auto",
    trigger: dict[str, Any] | None = None,
    *,
    channels: Iterable[str] = ("email",),
    control_share: float = 0.0,
    segment: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """An active unique-code autopilot; the default trigger is a spend of 10.00 or more."""
    distribution: dict[str, Any] = {
        "mode": "autopilot",
        "channels": list(channels),
        "control_share": control_share,
        "trigger": trigger or {"type": "spend_threshold", "amount": 1000},
    }
    if segment is not None:
        distribution["segment"] = segment
    return unique_def(id=campaign_id, name=campaign_id, distribution=distribution, **overrides)


def add_customers(
    engine: RedemptionEngine, *customer_ids: str, consent: Iterable[str] = ("email",), **fields: Any
) -> None:
    """Customers consenting to the listed channels (and no other), signed up now."""
    granted = set(consent)
    for customer_id in customer_ids:
        engine.add_customer(
            {
                "id": customer_id,
                "consent": {channel: channel in granted for channel in ("email", "sms", "push")},
                **fields,
            }
        )


def place_order(
    engine: RedemptionEngine, customer_id: str, amount: int = 5000, order_id: str | None = None
) -> str:
    """Record an order of `amount` for the customer at the engine's now; returns its id."""
    order_id = order_id or f"o-{customer_id}-{engine.now():%Y%m%d%H%M%S}-{amount}"
    engine.record_order(order(amount, id=order_id), customer_id=customer_id)
    return order_id


class RecordingChannel(Channel):
    """A channel that keeps every message it was given; it can fail as a test needs.

    `crash_on` sends: the n-th send (1-based) raises `crash` instead of a delivery result,
    like a process killed mid-batch. `failure`: every send raises this delivery error.
    """

    def __init__(
        self,
        channel: ChannelKind = "email",
        *,
        crash_on: Iterable[int] = (),
        crash: BaseException | None = None,
        failure: DeliveryError | None = None,
        log: list[Message] | None = None,
    ) -> None:
        self.name = f"recording-{channel}"
        self.channel = channel
        self.sent: list[Message] = [] if log is None else log
        self.calls = 0
        self._crash_on = set(crash_on)
        self._crash = crash or RuntimeError("the process was killed")
        self.failure = failure

    def send(self, message: Message) -> None:
        self._check(message)
        self.calls += 1
        if self.calls in self._crash_on:
            raise self._crash
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)


def recording_channels(*kinds: ChannelKind) -> dict[str, RecordingChannel]:
    """One RecordingChannel per kind (default: email, sms and push)."""
    return {kind: RecordingChannel(kind) for kind in kinds or ("email", "sms", "push")}


def distributor(
    engine: RedemptionEngine,
    channels: Mapping[str, Channel] | None = None,
    contacts: ContactBook | None = None,
    retry: RetryPolicy = NO_WAIT,
) -> Distributor:
    """A Distributor whose retries never wait; synthetic contacts unless given."""
    return Distributor(
        engine,
        recording_channels() if channels is None else channels,
        contacts or SyntheticContactBook(),
        retry=retry,
        rng=random.Random(7),
    )


def ledger_rows(engine: RedemptionEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on the projection (offers, audience, triggers, deliveries, ...)."""
    with engine.store.read() as tx:
        return tx.query(sql, params)
