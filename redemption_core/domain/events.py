"""Ledger events: one frozen record per act, never updated or deleted.

docs/ledger.md documents every type and field; `promo import` accepts exactly that schema.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    MAIN_CAMPAIGN_CREATED = "main_campaign_created"
    CAMPAIGN_CREATED = "campaign_created"
    CAMPAIGN_STATUS_CHANGED = "campaign_status_changed"
    VOUCHER_CREATED = "voucher_created"
    VOUCHER_PUBLISHED = "voucher_published"
    VOUCHER_ACCEPTED = "voucher_accepted"
    VOUCHER_DISABLED = "voucher_disabled"
    VOUCHER_ENABLED = "voucher_enabled"
    GIFT_CARD_TOPPED_UP = "gift_card_topped_up"
    SEGMENT_MEMBER_ADDED = "segment_member_added"
    SEGMENT_MEMBER_REMOVED = "segment_member_removed"
    VOUCHER_VALIDATED = "voucher_validated"
    VALIDATION_HOLD_CREATED = "validation_hold_created"
    REDEMPTION_SUCCEEDED = "redemption_succeeded"
    REDEMPTION_REJECTED = "redemption_rejected"
    REDEMPTION_ROLLED_BACK = "redemption_rolled_back"
    ROLLBACK_REJECTED = "rollback_rejected"
    CUSTOMER_CREATED = "customer_created"
    CUSTOMER_UPDATED = "customer_updated"
    CONSENT_CHANGED = "consent_changed"
    ORDER_RECORDED = "order_recorded"
    ORDER_REFUNDED = "order_refunded"
    ORDER_CANCELLED = "order_cancelled"
    SEGMENT_DEFINED = "segment_defined"
    FREQUENCY_CAP_SET = "frequency_cap_set"
    PROMOTION_STARTED = "promotion_started"
    PROMOTION_FINISHED = "promotion_finished"
    TRIGGER_MATCHED = "trigger_matched"
    TRIGGER_COMPLETED = "trigger_completed"
    TRIGGER_FAILED = "trigger_failed"
    CUSTOMER_HELD_OUT = "customer_held_out"
    OFFER_SKIPPED = "offer_skipped"
    DELIVERY_ATTEMPTED = "delivery_attempted"
    VOUCHER_DELIVERED = "voucher_delivered"
    DELIVERY_FAILED = "delivery_failed"
    FRAUD_REVIEW_RECORDED = "fraud_review_recorded"
    API_KEY_ISSUED = "api_key_issued"
    API_KEY_REVOKED = "api_key_revoked"
    GUESSING_BACKOFF_STARTED = "guessing_backoff_started"
    IDEMPOTENT_ANSWER_RECORDED = "idempotent_answer_recorded"
    # engagement: what a customer did with a message, and visits to the merchant's site or app
    MESSAGE_OPENED = "message_opened"
    MESSAGE_CLICKED = "message_clicked"
    SITE_VISITED = "site_visited"


# Keys are issued by this ledger only: `promo import` refuses these, so another system's file
# can never bring a key in.
# The answers kept for an Idempotency-Key are this ledger's too.
NOT_IMPORTED = frozenset(
    {EventType.API_KEY_ISSUED, EventType.API_KEY_REVOKED, EventType.IDEMPOTENT_ANSWER_RECORDED}
)


# The columns every event row has, in ledger order (seq is assigned by the store).
COLUMNS = (
    "event_id", "event_type", "occurred_at", "recorded_at",
    "campaign_id", "voucher_id", "customer_id", "order_id", "channel", "redemption_id",
    "idempotency_key", "device_hash", "ip_hash", "payment_hash",
    "store_id", "staff_id", "sales_channel", "payload",
)  # fmt: skip


class _RandomPool:
    """OS CSPRNG bytes drawn 4 KiB at a time: one system call per 512 ids, not one each."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()

    def take8(self) -> int:
        with self._lock:
            if self._offset + 8 > len(self._buffer):
                self._buffer = os.urandom(4096)
                self._offset = 0
            start = self._offset
            self._offset = start + 8
            return int.from_bytes(self._buffer[start : start + 8], "big")


_POOL = _RandomPool()
if hasattr(os, "register_at_fork"):
    # A forked child must never hand out the parent's buffered bytes again.
    os.register_at_fork(after_in_child=lambda: setattr(_POOL, "_buffer", b""))


def _system_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{_POOL.take8():016x}"


_id_source: Callable[[str], str] = _system_id


def new_id(prefix: str) -> str:
    """A time-ordered id: 48-bit millisecond timestamp + 64 random bits, hex, with a prefix.

    Time order keeps inserts into the id indexes at the right edge of the B-tree (random ids
    scattered every insert over the whole index and made commits several times slower). The
    random half keeps ids unguessable and unique; the timestamp half reveals when the id was
    made, which is no secret for events, vouchers or redemptions (codes are the secrets).
    """
    return _id_source(prefix)


@contextmanager
def id_source(source: Callable[[str], str]) -> Iterator[None]:
    """Ids from `source` inside the block: the simulator's seeded ids make runs repeatable."""
    global _id_source
    previous, _id_source = _id_source, source
    try:
        yield
    finally:
        _id_source = previous


@dataclass(frozen=True, slots=True)
class Event:
    event_type: EventType
    occurred_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    campaign_id: str | None = None
    voucher_id: str | None = None
    customer_id: str | None = None
    order_id: str | None = None
    channel: str | None = None
    redemption_id: str | None = None
    idempotency_key: str | None = None
    device_hash: str | None = None
    ip_hash: str | None = None
    payment_hash: str | None = None
    store_id: str | None = None
    staff_id: str | None = None
    sales_channel: str | None = None
    event_id: str = field(default_factory=lambda: new_id("evt"))
    recorded_at: datetime | None = None  # set by the store when the event is appended
    seq: int | None = None  # set by the store when the event is appended
