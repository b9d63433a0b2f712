"""The engine's customer side: profiles, consent, orders (with refunds and cancellations) and
segments. Mixed into RedemptionEngine, so that every act shares its ledger transactions.

Orders are recorded whether or not a voucher was used: lifetime value, win-back triggers and
campaign profitability need the orders without vouchers too. Cancelling an order rolls back
every redemption on it, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.customers import (
    CustomerProfile,
    check_channel,
    mask_email,
    mask_phone,
    month_day,
    normalize_email,
    normalize_phone,
    profile_from_dict,
    profile_to_dict,
)
from redemption_core.domain.errors import Conflict, InvalidInput, NotFound
from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.invariants import (
    REFUND_CAUSE,
    refund_breach,
    refundable,
    standing_order_breach,
)
from redemption_core.domain.money import check_amount
from redemption_core.domain.orders import Order, RequestContext
from redemption_core.domain.segments import Segment, segment_from_dict
from redemption_core.domain.state import CustomerState, OrderState, RedemptionState
from redemption_core.ledger.segment_query import compile_members_query
from redemption_core.ledger.store import LedgerStore, LedgerTransaction


def rollback_event(
    redemption: RedemptionState, now: datetime, payload: dict[str, Any], **columns: Any
) -> Event:
    """The event that gives back what `redemption` took (its use, budget and gift amount)."""
    return Event(
        EventType.REDEMPTION_ROLLED_BACK,
        now,
        payload={
            **payload,
            "rollback_id": new_id("rb"),
            "discount": redemption.discount,
            "gift_amount": redemption.gift_amount,
        },
        redemption_id=redemption.redemption_id,
        campaign_id=redemption.campaign_id,
        voucher_id=redemption.voucher_id,
        customer_id=redemption.customer_id,
        order_id=redemption.order_id,
        **columns,
    )


def _standing_order(tx: LedgerTransaction, order_id: str) -> OrderState:
    """The order, if it exists and is not cancelled."""
    order = tx.order(order_id)
    if order is None:
        raise NotFound("order_id", order_id)
    breach = standing_order_breach(order)
    if breach is not None:
        raise breach.conflict()
    return order


class CustomerOperations:
    """Requires of its host: store, now(), _hasher, _transaction(), _hash_context()."""

    store: LedgerStore
    _hasher: ContextHasher
    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]
    _hash_context: Callable[[RequestContext], Any]

    # -- customers ---------------------------------------------------------------------------
    def add_customer(self, profile: CustomerProfile | Mapping[str, Any]) -> None:
        self.add_customers([profile])

    def add_customers(self, profiles: Sequence[CustomerProfile | Mapping[str, Any]]) -> int:
        """Add customers in one transaction: all of them, or none if any is refused."""
        # Profile objects are checked and normalised exactly like dicts: one path for both.
        checked = [
            profile_from_dict(
                profile_to_dict(profile) if isinstance(profile, CustomerProfile) else profile,
                f"customers[{i}]" if len(profiles) > 1 else "customer",
            )
            for i, profile in enumerate(profiles)
        ]
        now = self.now()
        events = [
            Event(
                EventType.CUSTOMER_CREATED,
                now,
                payload={
                    "signup_at": p.iso(profile.signup_at or now),
                    "birthday": profile.birthday,
                    "anniversary": profile.anniversary,
                    "attributes": dict(profile.attributes),
                    "metadata": dict(profile.metadata),
                    "consent": dict(profile.consent),
                    **self._contact_fields(profile.email, profile.phone),
                },
                customer_id=profile.id,
            )
            for profile in checked
        ]
        seen: set[str] = set()
        with self._transaction() as tx:
            for i, profile in enumerate(checked):
                where = f"customers[{i}].id" if len(checked) > 1 else "customer.id"
                if profile.id in seen or tx.customer(profile.id) is not None:
                    raise Conflict(where, f"{profile.id!r} already exists")
                seen.add(profile.id)
            tx.append_many(events)
        return len(events)

    def _contact_fields(self, email: str | None, phone: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if email is not None:
            fields.update(email_hash=self._hasher.hash(email), email_masked=mask_email(email))
        if phone is not None:
            fields.update(phone_hash=self._hasher.hash(phone), phone_masked=mask_phone(phone))
        return fields

    def update_customer(self, customer_id: str, changes: Mapping[str, Any]) -> None:
        """Change personal dates, attributes (replaced whole), metadata, email or phone."""
        customer_id = p.identifier(customer_id, "customer_id")
        allowed = {"birthday", "anniversary", "attributes", "metadata", "email", "phone"}
        p.reject_unknown(p.mapping(changes, "changes"), allowed, "changes")
        checked = profile_from_dict({"id": customer_id, **changes}, "changes")
        payload: dict[str, Any] = {}
        for name in ("birthday", "anniversary"):
            if name in changes:
                payload[name] = (
                    None if changes[name] is None else month_day(changes[name], f"changes.{name}")
                )
        for name in ("attributes", "metadata"):
            if name in changes:
                payload[name] = dict(getattr(checked, name))
        payload.update(
            self._contact_fields(
                normalize_email(changes["email"], "changes.email")
                if changes.get("email")
                else None,
                normalize_phone(changes["phone"], "changes.phone")
                if changes.get("phone")
                else None,
            )
        )
        if not payload:
            raise InvalidInput("changes", "nothing to change")
        with self._transaction() as tx:
            if tx.customer(customer_id) is None:
                raise NotFound("customer_id", customer_id)
            tx.append(
                Event(
                    EventType.CUSTOMER_UPDATED, self.now(), payload=payload, customer_id=customer_id
                )
            )

    def set_consent(
        self, customer_id: str, channel: str, granted: bool, *, source: str = ""
    ) -> bool:
        """Record a consent change; False when the consent already was so (nothing recorded)."""
        customer_id = p.identifier(customer_id, "customer_id")
        channel = check_channel(channel, "channel")
        granted = p.boolean(granted, "granted")
        source = p.text(source, "source", max_length=200)
        with self._transaction() as tx:
            customer = tx.customer(customer_id)
            if customer is None:
                raise NotFound("customer_id", customer_id)
            if customer.consent[channel] == granted:
                return False
            tx.append(
                Event(
                    EventType.CONSENT_CHANGED,
                    self.now(),
                    payload={"channel": channel, "granted": granted, "source": source},
                    customer_id=customer_id,
                    channel=channel,
                )
            )
        return True

    def customer(self, customer_id: str) -> CustomerState:
        with self.store.read() as tx:
            customer = tx.customer(p.identifier(customer_id, "customer_id"))
        if customer is None:
            raise NotFound("customer_id", customer_id)
        return customer

    # -- orders ------------------------------------------------------------------------------
    def record_order(
        self,
        order: Order,
        *,
        customer_id: str | None = None,
        context: RequestContext | None = None,
    ) -> None:
        """Record a placed order, with or without a voucher. The order needs its id."""
        self.record_orders([(order, customer_id, context)])

    def record_orders(
        self, orders: Sequence[tuple[Order, str | None, RequestContext | None]]
    ) -> int:
        """Record orders in one transaction: all, or none if any is refused."""
        now = self.now()
        events = []
        for i, (order, customer_id, context) in enumerate(orders):
            where = "order" if len(orders) == 1 else f"orders[{i}]"
            if not isinstance(order, Order):
                raise InvalidInput(where, "must be an Order")
            if order.id is None:
                raise InvalidInput(f"{where}.id", "required to record an order")
            p.optional_identifier(customer_id, "customer_id")
            hashed = self._hash_context(context or RequestContext())
            items = [item.to_dict() for item in order.items]
            events.append(
                Event(
                    EventType.ORDER_RECORDED,
                    now,
                    payload={"amount": order.amount, "currency": order.currency, "items": items},
                    customer_id=customer_id,
                    order_id=order.id,
                    **hashed.columns(),
                )
            )
        seen: set[str] = set()
        with self._transaction() as tx:
            # Two queries for the whole batch, not two per order.
            recorded = tx.existing_ids("orders", [event.order_id or "" for event in events])
            named = sorted({event.customer_id for event in events if event.customer_id})
            profiles = tx.existing_ids("customers", named)
            for i, event in enumerate(events):
                where = "order" if len(events) == 1 else f"orders[{i}]"
                assert event.order_id is not None
                if event.order_id in seen or event.order_id in recorded:
                    raise Conflict(f"{where}.id", f"{event.order_id!r} was recorded before")
                seen.add(event.order_id)
                if event.customer_id is not None and event.customer_id not in profiles:
                    raise NotFound("customer_id", event.customer_id)
            tx.append_many(events)
        return len(events)

    def refund_order(self, order_id: str, amount: int, *, reason: str = "") -> int:
        """Refund part or all of what the customer paid for an order; returns what remains
        refundable.

        The cap is what the customer paid (invariants.refundable): the order's amount less the
        discounts given on it and earlier refunds, so a refund never gives back a discount.
        A refund of everything left undoes the purchase: the order's standing redemptions are
        rolled back in the same transaction (payload `cause: order_refunded`), giving back
        their voucher uses, budget and per-customer counts; their discounts still count as
        not paid, so nothing more can be refunded.
        """
        order_id = p.identifier(order_id, "order_id")
        amount = check_amount(amount, "amount", allow_zero=False)
        reason = p.text(reason, "reason")
        with self._transaction() as tx:
            order = _standing_order(tx, order_id)
            breach = refund_breach(order, amount)
            if breach is not None:
                raise InvalidInput(breach.field, breach.message)
            left = refundable(order) - amount
            now = self.now()
            events = []
            if left == 0:
                cause = {"reason": reason or "order refunded in full", "cause": REFUND_CAUSE}
                events += [
                    rollback_event(redemption, now, cause)
                    for redemption in tx.open_redemptions_of_order(order_id)
                ]
            events.append(
                Event(
                    EventType.ORDER_REFUNDED,
                    now,
                    payload={"amount": amount, "reason": reason, "refund_id": new_id("rf")},
                    customer_id=order.customer_id,
                    order_id=order_id,
                )
            )
            tx.append_many(events)
        return left

    def cancel_order(self, order_id: str, *, reason: str = "") -> list[str]:
        """Cancel an order and roll back every redemption on it; returns their ids."""
        order_id = p.identifier(order_id, "order_id")
        reason = p.text(reason, "reason")
        with self._transaction() as tx:
            order = _standing_order(tx, order_id)
            now = self.now()
            redemptions = tx.open_redemptions_of_order(order_id)
            cause = {"reason": reason or "order cancelled", "cause": "order_cancelled"}
            events = [rollback_event(redemption, now, cause) for redemption in redemptions]
            events.append(
                Event(
                    EventType.ORDER_CANCELLED,
                    now,
                    payload={"reason": reason},
                    customer_id=order.customer_id,
                    order_id=order_id,
                )
            )
            tx.append_many(events)
        return [redemption.redemption_id for redemption in redemptions]

    # -- segments ----------------------------------------------------------------------------
    def define_segment(self, definition: Segment | Mapping[str, Any]) -> None:
        """Create a segment, or replace its rules (the ledger keeps every version)."""
        # A Segment object is checked like a definition before it can reach the ledger.
        document = definition.to_dict() if isinstance(definition, Segment) else definition
        segment = segment_from_dict(document)
        self._write_events(
            [
                Event(
                    EventType.SEGMENT_DEFINED,
                    self.now(),
                    payload={"definition": segment.to_dict()},
                )
            ]
        )

    def _write_events(self, events: list[Event]) -> None:
        with self._transaction() as tx:
            tx.append_many(events)

    def segment_members(self, segment_id: str, *, at: datetime | None = None) -> list[str]:
        """The customer ids in the segment at `at` (default: now), in id order."""
        segment_id = p.identifier(segment_id, "segment_id")
        moment = self.now() if at is None else p.timestamp(at, "at")
        with self.store.read() as tx:
            definition = tx.segment_definition(segment_id)
            if definition is None:
                raise NotFound("segment_id", segment_id)
            sql, params = compile_members_query(segment_from_dict(definition), dialect=tx.dialect)
            rows = tx.query(sql, {**params, "at": p.iso(moment)})
        return [row[0] for row in rows]
