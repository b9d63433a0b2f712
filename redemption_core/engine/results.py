"""What the engine's callers send and get back: a redemption request, and the answers of
validate, redeem and rollback (with their JSON form, the same for the CLI and the API)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.orders import Order, RequestContext
from redemption_core.domain.reasons import Code, Reason


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    code: str
    order: Order
    customer_id: str | None = None
    context: RequestContext = field(default_factory=RequestContext)
    idempotency_key: str | None = None
    session_id: str | None = None
    gift_amount: int | None = None
    actor: str | None = None  # who asks (an API key id); recorded as the event's actor


@dataclass(frozen=True, slots=True, kw_only=True)
class _PricedAnswer:
    """What validate and redeem both answer: the code, its campaign, and the money."""

    code: str
    voucher_id: str | None
    campaign_id: str | None
    currency: str
    order_amount: int
    discount: int
    gift_amount: int
    reasons: tuple[Reason, ...]
    event_id: str

    @property
    def amount_to_pay(self) -> int:
        return self.order_amount - self.discount - self.gift_amount

    def _priced_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "voucher_id": self.voucher_id,
            "campaign_id": self.campaign_id,
            "currency": self.currency,
            "order_amount": self.order_amount,
            "discount": self.discount,
            "gift_amount": self.gift_amount,
            "amount_to_pay": self.amount_to_pay,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult(_PricedAnswer):
    valid: bool
    session_id: str | None = None
    session_expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        expires = p.iso(self.session_expires_at) if self.session_expires_at else None
        return {
            "valid": self.valid,
            **self._priced_dict(),
            "session_id": self.session_id,
            "session_expires_at": expires,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RedemptionResult(_PricedAnswer):
    ok: bool
    redemption_id: str | None
    replayed: bool = False  # True: an idempotent retry answered from the ledger, not re-run
    rolled_back: bool = False  # on a replay: the redemption was rolled back since

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "redemption_id": self.redemption_id,
            **self._priced_dict(),
            "replayed": self.replayed,
            "rolled_back": self.rolled_back,
        }


@dataclass(frozen=True, slots=True)
class RollbackResult:
    ok: bool
    redemption_id: str
    rollback_id: str | None
    discount: int
    gift_amount: int
    reasons: tuple[Reason, ...]
    event_id: str
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "redemption_id": self.redemption_id,
            "rollback_id": self.rollback_id,
            "discount": self.discount,
            "gift_amount": self.gift_amount,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "event_id": self.event_id,
            "replayed": self.replayed,
        }


def reasons_from(payload: Mapping[str, Any]) -> tuple[Reason, ...]:
    return tuple(Reason(Code(r["code"]), r["message"]) for r in payload.get("reasons", ()))


def reasons_payload(reasons: Iterable[Reason]) -> list[dict[str, str]]:
    return [{"code": str(r.code), "message": r.message} for r in reasons]


def hash_request(document: Mapping[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class HashedContext:
    device_hash: str | None
    ip_hash: str | None
    payment_hash: str | None
    store_id: str | None
    staff_id: str | None
    sales_channel: str | None

    def columns(self) -> dict[str, str | None]:
        return {
            "device_hash": self.device_hash,
            "ip_hash": self.ip_hash,
            "payment_hash": self.payment_hash,
            "store_id": self.store_id,
            "staff_id": self.staff_id,
            "sales_channel": self.sales_channel,
        }


def redemption_result(
    event: Event, *, replayed: bool, rolled_back: bool = False
) -> RedemptionResult:
    payload = event.payload
    return RedemptionResult(
        ok=event.event_type is EventType.REDEMPTION_SUCCEEDED,
        code=payload["code"],
        redemption_id=event.redemption_id,
        voucher_id=event.voucher_id,
        campaign_id=event.campaign_id,
        currency=payload["currency"],
        order_amount=payload["order"]["amount"],
        discount=payload["discount"],
        gift_amount=payload["gift_amount"],
        reasons=reasons_from(payload),
        event_id=event.event_id,
        replayed=replayed,
        rolled_back=rolled_back,
    )


def rollback_result(event: Event, *, replayed: bool) -> RollbackResult:
    payload = event.payload
    return RollbackResult(
        ok=event.event_type is EventType.REDEMPTION_ROLLED_BACK,
        redemption_id=event.redemption_id or "",
        rollback_id=payload.get("rollback_id"),
        discount=payload.get("discount", 0),
        gift_amount=payload.get("gift_amount", 0),
        reasons=reasons_from(payload),
        event_id=event.event_id,
        replayed=replayed,
    )
