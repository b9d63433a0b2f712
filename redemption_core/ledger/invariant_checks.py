"""The invariants `promo ledger verify` checks of every event while it replays the ledger, each
against the state the events before it left: no voucher, customer or campaign beyond its
limits, no budget beyond its cap, no gift card below zero, no counter below zero, a rollback
only of a standing redemption and with its own amounts (so at most one per redemption), every
redemption's voucher in its campaign, every amount in a known currency, no refund beyond what
was paid.

The rules are the domain's own (domain/rules.py, domain/invariants.py), read through the store
port like the engine reads them; a replay that only compared the projection with itself would
find nothing wrong in a ledger whose events broke them.
"""

from __future__ import annotations

from collections.abc import Callable

from redemption_core.domain.events import Event, EventType
from redemption_core.domain.invariants import (
    Breach,
    refund_breach,
    rollback_breaches,
    rollback_reason,
)
from redemption_core.domain.money import CURRENCY_EXPONENTS
from redemption_core.domain.reasons import LedgerCode
from redemption_core.domain.rules import (
    budget_reason,
    campaign_limit_reason,
    customer_limit_reason,
    gift_balance_reason,
    voucher_limit_reason,
)
from redemption_core.ledger.store import LedgerTransaction

ROLLBACK_IDS = ("campaign_id", "voucher_id", "customer_id", "order_id")


def _currency(value: object, field: str) -> list[Breach]:
    if value not in CURRENCY_EXPONENTS:
        return [Breach(field, LedgerCode.UNKNOWN_CURRENCY, f"unknown currency {value!r}")]
    return []


def _redemption(tx: LedgerTransaction, event: Event) -> list[Breach]:
    payload = event.payload
    order = payload.get("order") or {}
    breaches = _currency(payload.get("currency"), "payload.currency")
    breaches += _currency(order.get("currency"), "payload.order.currency")
    voucher = tx.voucher_by_id(event.voucher_id or "")
    if voucher is None:
        return [*breaches, Breach("voucher_id", LedgerCode.REFERENCE_NOT_FOUND, "no such voucher")]
    if voucher.campaign_id != event.campaign_id:
        breaches.append(
            Breach(
                "campaign_id",
                LedgerCode.VOUCHER_NOT_IN_CAMPAIGN,
                f"voucher {voucher.voucher_id!r} belongs to campaign {voucher.campaign_id!r}",
            )
        )
        return breaches
    state = tx.campaign_state(voucher.campaign_id)
    if state is None:
        return breaches
    limits = state.campaign.limits
    reasons = [
        voucher_limit_reason(limits, voucher, 0),
        campaign_limit_reason(limits, state),
        budget_reason(limits, state, payload.get("discount") or 0),
    ]
    if event.customer_id is not None and limits.per_customer is not None:
        used = tx.customer_campaign_redemptions(voucher.campaign_id, event.customer_id)
        reasons.append(customer_limit_reason(limits, used))
    gift = payload.get("gift_amount") or 0
    if gift:
        reasons.append(gift_balance_reason(voucher.gift_balance or 0, gift))
    return breaches + [
        Breach("redemption_id", reason.code, reason.message) for reason in reasons if reason
    ]


def _rollback(tx: LedgerTransaction, event: Event) -> list[Breach]:
    redemption = tx.redemption(event.redemption_id or "")
    refused = rollback_reason(redemption)
    if refused is not None:
        code = LedgerCode.REFERENCE_NOT_FOUND if redemption is None else refused.code
        return [Breach("redemption_id", code, refused.message)]
    assert redemption is not None
    ids = {name: getattr(event, name) for name in ROLLBACK_IDS}
    return rollback_breaches(redemption, ids, event.payload)


def _order(tx: LedgerTransaction, event: Event) -> list[Breach]:
    return _currency(event.payload.get("currency"), "payload.currency")


def _refund(tx: LedgerTransaction, event: Event) -> list[Breach]:
    order = tx.order(event.order_id or "")
    if order is None:
        return [Breach("order_id", LedgerCode.REFERENCE_NOT_FOUND, "no such order")]
    breach = refund_breach(order, event.payload.get("amount") or 0)
    return [] if breach is None else [breach]


BEFORE: dict[EventType, Callable[[LedgerTransaction, Event], list[Breach]]] = {
    EventType.REDEMPTION_SUCCEEDED: _redemption,
    EventType.REDEMPTION_ROLLED_BACK: _rollback,
    EventType.ORDER_RECORDED: _order,
    EventType.ORDER_REFUNDED: _refund,
}


def breaches_before(tx: LedgerTransaction, event: Event) -> list[Breach]:
    """What `event` breaks, against the state the events before it left."""
    check = BEFORE.get(event.event_type)
    return [] if check is None else check(tx, event)


def counters_after(tx: LedgerTransaction, event: Event) -> list[Breach]:
    """The counters an event lowers, none below zero once it is applied."""
    if event.event_type not in (EventType.REDEMPTION_ROLLED_BACK, EventType.REDEMPTION_SUCCEEDED):
        return []
    counters: list[tuple[str, int | None]] = []
    voucher = tx.voucher_by_id(event.voucher_id or "")
    if voucher is not None:
        counters += [("voucher uses", voucher.redemptions), ("gift balance", voucher.gift_balance)]
    state = tx.campaign_state(event.campaign_id or "")
    if state is not None:
        counters += [
            ("campaign redemptions", state.redemptions),
            ("budget used", state.budget_used),
        ]
    if event.customer_id is not None:
        used = tx.customer_campaign_redemptions(event.campaign_id or "", event.customer_id)
        counters.append(("the customer's redemptions in the campaign", used))
    return [
        Breach("row", LedgerCode.COUNTER_NEGATIVE, f"{name} fall to {value}")
        for name, value in counters
        if value is not None and value < 0
    ]
