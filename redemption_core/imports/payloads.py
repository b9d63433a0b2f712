"""The payload of each event type, checked on its own: every field the core reads is there, of
its type, and every value the core parses as one of a closed set (a status, a kind, a channel,
a source, an outcome, a reason code) is one of them. Fields the core does not read may be
anything JSON (another system's extra details are kept as they are).

Each check raises RowInvalid naming the field (`payload.…`) and a reason code; a redemption's
check returns its order, parsed, for the rules that come after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import (
    CampaignStatus,
    VoucherKind,
    campaign_from_dict,
    main_campaign_from_dict,
)
from redemption_core.domain.codes import normalize_code
from redemption_core.domain.customers import CHANNELS, consent_from, json_mapping, month_day
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import EventType
from redemption_core.domain.invariants import REFUND_CAUSE
from redemption_core.domain.money import CURRENCY_EXPONENTS, MAX_AMOUNT
from redemption_core.domain.offers import (
    DELIVERY_OUTCOMES,
    OFFER_SOURCES,
    SKIP_REASONS,
    TRIGGER_FAILURES,
    TRIGGER_OUTCOMES,
    TRIGGER_TYPES,
)
from redemption_core.domain.orders import Order, items_total, order_from_dict
from redemption_core.domain.reasons import Code, LedgerCode
from redemption_core.domain.segments import segment_from_dict
from redemption_core.engine.engagement import MAX_URL_LENGTH, SURFACES
from redemption_core.engine.reviews import DECISIONS, ENTITY_TYPES

BACKOFF_SUBJECTS = ("device", "ip", "customer")
VOUCHER_SOURCES = ("generated", "import", "definition", *OFFER_SOURCES)
PUBLICATION_SOURCES = ("import", *OFFER_SOURCES)
ROLLBACK_CAUSES = ("order_cancelled", REFUND_CAUSE)
REASON_CODES = frozenset(code.value for code in Code)
CUSTOMER_UPDATABLE = frozenset(
    ("birthday", "anniversary", "attributes", "metadata", "email_hash", "email_masked",
     "phone_hash", "phone_masked")
)  # fmt: skip


class RowInvalid(InvalidInput):
    """A row that cannot be what it says, with the reason code of the refusal."""

    def __init__(self, field: str, code: str, problem: str) -> None:
        super().__init__(field, problem)
        self.code = code


def one_of(value: object, choices: tuple[str, ...] | frozenset[str], field: str) -> str:
    if value not in choices:
        listed = ", ".join(sorted(choices)) if len(choices) <= 12 else f"{len(choices)} values"
        raise RowInvalid(
            field, LedgerCode.UNKNOWN_VALUE, f"must be one of {listed}, got {p.short(value)}"
        )
    return value  # type: ignore[return-value]


def _optional_one_of(payload: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> None:
    if payload.get(name) is not None:
        one_of(payload[name], choices, f"payload.{name}")


def _money(payload: Mapping[str, Any], name: str, *, positive: bool = False) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidInput(f"payload.{name}", f"must be an integer amount from 0 to {MAX_AMOUNT}")
    if positive and value == 0:
        raise InvalidInput(f"payload.{name}", "must be greater than zero")
    return value


def currency(value: object, field: str) -> str:
    if not isinstance(value, str) or value not in CURRENCY_EXPONENTS:
        raise RowInvalid(field, LedgerCode.UNKNOWN_CURRENCY, f"unknown currency {p.short(value)}")
    return value


def _text(payload: Mapping[str, Any], name: str, *, required: bool = True) -> None:
    value = payload.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"payload.{name}", "required text")
    p.text(value, f"payload.{name}", max_length=1000)


def _id(payload: Mapping[str, Any], name: str, *, required: bool = True) -> None:
    value = payload.get(name)
    if value is not None or required:
        p.identifier(value, f"payload.{name}")


def _int(payload: Mapping[str, Any], name: str, minimum: int = 0) -> None:
    p.integer(payload.get(name), f"payload.{name}", minimum=minimum, maximum=10**9)


def code(payload: Mapping[str, Any], *, required: bool = True) -> str | None:
    """The voucher code as the core stores it (upper case): another spelling is refused, not
    rewritten, so that the file and the ledger say the same."""
    value = payload.get("code")
    if value is None and not required:
        return None
    normal = normalize_code(value, "payload.code")
    if normal != value:
        raise InvalidInput("payload.code", f"write the code as the core stores it: {normal!r}")
    return normal


def _reasons(payload: Mapping[str, Any], *, required: bool) -> list[str]:
    reasons = payload.get("reasons")
    if reasons is None and not required:
        return []
    if not isinstance(reasons, list) or (required and not reasons):
        raise InvalidInput("payload.reasons", "must be a non-empty list of {code, message}")
    codes = []
    for i, reason in enumerate(reasons):
        where = f"payload.reasons[{i}]"
        reason = p.mapping(reason, where)
        codes.append(one_of(reason.get("code"), REASON_CODES, f"{where}.code"))
    return codes


# -- per event type ---------------------------------------------------------------------------


def _main_campaign_created(payload: Mapping[str, Any]) -> None:
    main_campaign_from_dict(payload.get("definition"), "payload.definition")


def _campaign_created(payload: Mapping[str, Any]) -> None:
    campaign_from_dict(payload.get("definition"), "payload.definition")


def _campaign_status_changed(payload: Mapping[str, Any]) -> None:
    statuses = tuple(status.value for status in CampaignStatus)
    one_of(payload.get("status"), statuses, "payload.status")
    _optional_one_of(payload, "previous", statuses)


def _voucher_created(payload: Mapping[str, Any]) -> None:
    code(payload)
    kind = one_of(payload.get("kind"), tuple(k.value for k in VoucherKind), "payload.kind")
    _optional_one_of(payload, "source", VOUCHER_SOURCES)
    if kind == VoucherKind.GIFT:
        _money(payload, "gift_balance", positive=True)
    elif payload.get("gift_balance") is not None:
        raise InvalidInput("payload.gift_balance", "only gift cards have a balance")


def _voucher_published(payload: Mapping[str, Any]) -> None:
    code(payload)
    _optional_one_of(payload, "source", PUBLICATION_SOURCES)
    _id(payload, "trigger_id", required=False)


def _voucher_act(payload: Mapping[str, Any]) -> None:
    code(payload)
    _text(payload, "note", required=False)


def _gift_card_topped_up(payload: Mapping[str, Any]) -> None:
    code(payload)
    _money(payload, "amount", positive=True)
    if payload.get("balance") is not None:
        _money(payload, "balance")


def _segment_member(payload: Mapping[str, Any]) -> None:
    _id(payload, "segment_id")


def _voucher_validated(payload: Mapping[str, Any]) -> None:
    _text(payload, "code")
    p.boolean(payload.get("valid"), "payload.valid")
    _reasons(payload, required=False)
    if payload.get("currency") is not None:
        currency(payload["currency"], "payload.currency")


def _validation_hold_created(payload: Mapping[str, Any]) -> None:
    _id(payload, "session_id")
    p.timestamp(payload.get("expires_at"), "payload.expires_at")
    code(payload, required=False)


def _redemption_order(payload: Mapping[str, Any]) -> Order:
    order = p.mapping(payload.get("order"), "payload.order")
    currency(order.get("currency"), "payload.order.currency")
    return order_from_dict(order, "payload.order")


def _redemption_succeeded(payload: Mapping[str, Any]) -> Order:
    code(payload)
    _money(payload, "discount")
    _money(payload, "gift_amount")
    currency(payload.get("currency"), "payload.currency")
    _id(payload, "session_id", required=False)
    order = _redemption_order(payload)
    if order.currency != payload["currency"]:
        raise RowInvalid(
            "payload.currency",
            LedgerCode.STATE_MISMATCH,
            f"{payload['currency']} is not the order's currency {order.currency}",
        )
    return order


def _redemption_rejected(payload: Mapping[str, Any]) -> None:
    _text(payload, "code")
    _reasons(payload, required=True)
    for name in ("discount", "gift_amount"):
        if payload.get(name) not in (None, 0):
            raise RowInvalid(
                f"payload.{name}", LedgerCode.STATE_MISMATCH, "a rejected redemption gives nothing"
            )
    if payload.get("currency") is not None:
        currency(payload["currency"], "payload.currency")
    if payload.get("order") is not None:
        _redemption_order(payload)


def _redemption_rolled_back(payload: Mapping[str, Any]) -> None:
    _money(payload, "discount")
    _money(payload, "gift_amount")
    _text(payload, "reason", required=False)
    _id(payload, "rollback_id", required=False)
    _optional_one_of(payload, "cause", ROLLBACK_CAUSES)


def _rollback_rejected(payload: Mapping[str, Any]) -> None:
    _reasons(payload, required=True)
    _text(payload, "reason", required=False)


def _customer(payload: Mapping[str, Any], *, update: bool) -> None:
    if update:
        unknown = sorted(set(payload) - CUSTOMER_UPDATABLE - {"actor"})
        if unknown:
            raise InvalidInput(f"payload.{unknown[0]}", "not a field a customer update changes")
    elif payload.get("signup_at") is not None:
        p.timestamp(payload["signup_at"], "payload.signup_at")
    for name in ("birthday", "anniversary"):
        if payload.get(name) is not None:
            month_day(payload[name], f"payload.{name}")
    for name in ("attributes", "metadata"):
        if payload.get(name) is not None:
            json_mapping(payload[name], f"payload.{name}")
    for name in ("email_hash", "email_masked", "phone_hash", "phone_masked"):
        _text(payload, name, required=False)
    if not update:
        consent_from(payload.get("consent") or {}, "payload.consent")


def _consent_changed(payload: Mapping[str, Any]) -> None:
    one_of(payload.get("channel"), CHANNELS, "payload.channel")
    p.boolean(payload.get("granted"), "payload.granted")
    _text(payload, "source", required=False)


def _order_recorded(payload: Mapping[str, Any]) -> None:
    currency(payload.get("currency"), "payload.currency")
    amount = _money(payload, "amount")
    total = items_total(payload.get("items"), "payload.items")
    if total > amount:
        raise InvalidInput("payload.amount", f"{amount} is less than its items' sum {total}")


def _order_refunded(payload: Mapping[str, Any]) -> None:
    _money(payload, "amount", positive=True)
    _text(payload, "reason", required=False)
    _id(payload, "refund_id", required=False)


def _reason_only(payload: Mapping[str, Any]) -> None:
    _text(payload, "reason", required=False)


def _frequency_cap_set(payload: Mapping[str, Any]) -> None:
    p.integer(payload.get("max_offers"), "payload.max_offers", minimum=1, maximum=1000)
    p.integer(payload.get("days"), "payload.days", minimum=1, maximum=3650)


def _trigger_matched(payload: Mapping[str, Any]) -> None:
    _id(payload, "trigger_id")
    one_of(payload.get("trigger"), TRIGGER_TYPES, "payload.trigger")


def _trigger_completed(payload: Mapping[str, Any]) -> None:
    _id(payload, "trigger_id")
    _optional_one_of(payload, "outcome", TRIGGER_OUTCOMES)


def _trigger_failed(payload: Mapping[str, Any]) -> None:
    _id(payload, "trigger_id")
    one_of(payload.get("reason"), TRIGGER_FAILURES, "payload.reason")


def _customer_held_out(payload: Mapping[str, Any]) -> None:
    one_of(payload.get("source"), OFFER_SOURCES, "payload.source")
    _id(payload, "trigger_id", required=False)


def _offer_skipped(payload: Mapping[str, Any]) -> None:
    one_of(payload.get("source"), OFFER_SOURCES, "payload.source")
    one_of(payload.get("reason"), SKIP_REASONS, "payload.reason")
    _id(payload, "trigger_id", required=False)


def _delivery_attempted(payload: Mapping[str, Any]) -> None:
    _int(payload, "attempt", minimum=1)
    one_of(payload.get("outcome"), DELIVERY_OUTCOMES, "payload.outcome")


def _delivery_outcome(payload: Mapping[str, Any]) -> None:
    _int(payload, "attempts")
    _text(payload, "error", required=False)


def _fraud_review_recorded(payload: Mapping[str, Any]) -> None:
    for name in ("flag_id", "entity_id", "reviewer"):
        _text(payload, name)
    one_of(payload.get("entity_type"), ENTITY_TYPES, "payload.entity_type")
    one_of(payload.get("decision"), DECISIONS, "payload.decision")
    _text(payload, "note", required=False)


def _message_engagement(payload: Mapping[str, Any]) -> None:
    """message_opened, message_clicked: the channel is the row's (rows.py requires it)."""
    if payload.get("surface") is not None:
        raise InvalidInput("payload.surface", "only a visit has a surface")
    _url(payload)


def _site_visited(payload: Mapping[str, Any]) -> None:
    one_of(payload.get("surface"), SURFACES, "payload.surface")
    _url(payload)


def _url(payload: Mapping[str, Any]) -> None:
    if payload.get("url") is not None:
        p.text(payload["url"], "payload.url", max_length=MAX_URL_LENGTH)


def _guessing_backoff_started(payload: Mapping[str, Any]) -> None:
    one_of(payload.get("subject"), BACKOFF_SUBJECTS, "payload.subject")
    _int(payload, "level", minimum=1)
    _int(payload, "misses")
    seconds = payload.get("backoff_s")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < 1e9:
        raise InvalidInput("payload.backoff_s", "must be a number of seconds from 0")
    p.timestamp(payload.get("until"), "payload.until")


def _segment_defined(payload: Mapping[str, Any]) -> None:
    segment_from_dict(payload.get("definition"), "payload.definition")


def no_fields_read(payload: Mapping[str, Any]) -> None:
    """The payload of an event type whose fields the core does not read."""
    return None


CHECKS: dict[EventType, Callable[[Mapping[str, Any]], Order | None]] = {
    EventType.MAIN_CAMPAIGN_CREATED: _main_campaign_created,
    EventType.CAMPAIGN_CREATED: _campaign_created,
    EventType.CAMPAIGN_STATUS_CHANGED: _campaign_status_changed,
    EventType.VOUCHER_CREATED: _voucher_created,
    EventType.VOUCHER_PUBLISHED: _voucher_published,
    EventType.VOUCHER_ACCEPTED: _voucher_act,
    EventType.VOUCHER_DISABLED: _voucher_act,
    EventType.VOUCHER_ENABLED: _voucher_act,
    EventType.GIFT_CARD_TOPPED_UP: _gift_card_topped_up,
    EventType.SEGMENT_MEMBER_ADDED: _segment_member,
    EventType.SEGMENT_MEMBER_REMOVED: _segment_member,
    EventType.VOUCHER_VALIDATED: _voucher_validated,
    EventType.VALIDATION_HOLD_CREATED: _validation_hold_created,
    EventType.REDEMPTION_SUCCEEDED: _redemption_succeeded,
    EventType.REDEMPTION_REJECTED: _redemption_rejected,
    EventType.REDEMPTION_ROLLED_BACK: _redemption_rolled_back,
    EventType.ROLLBACK_REJECTED: _rollback_rejected,
    EventType.CUSTOMER_CREATED: lambda payload: _customer(payload, update=False),
    EventType.CUSTOMER_UPDATED: lambda payload: _customer(payload, update=True),
    EventType.CONSENT_CHANGED: _consent_changed,
    EventType.ORDER_RECORDED: _order_recorded,
    EventType.ORDER_REFUNDED: _order_refunded,
    EventType.ORDER_CANCELLED: _reason_only,
    EventType.SEGMENT_DEFINED: _segment_defined,
    EventType.FREQUENCY_CAP_SET: _frequency_cap_set,
    EventType.PROMOTION_STARTED: no_fields_read,
    EventType.PROMOTION_FINISHED: no_fields_read,
    EventType.TRIGGER_MATCHED: _trigger_matched,
    EventType.TRIGGER_COMPLETED: _trigger_completed,
    EventType.TRIGGER_FAILED: _trigger_failed,
    EventType.CUSTOMER_HELD_OUT: _customer_held_out,
    EventType.OFFER_SKIPPED: _offer_skipped,
    EventType.DELIVERY_ATTEMPTED: _delivery_attempted,
    EventType.VOUCHER_DELIVERED: _delivery_outcome,
    EventType.DELIVERY_FAILED: _delivery_outcome,
    EventType.FRAUD_REVIEW_RECORDED: _fraud_review_recorded,
    EventType.GUESSING_BACKOFF_STARTED: _guessing_backoff_started,
    EventType.MESSAGE_OPENED: _message_engagement,
    EventType.MESSAGE_CLICKED: _message_engagement,
    EventType.SITE_VISITED: _site_visited,
}
