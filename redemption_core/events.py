"""Ledger events: one frozen record per act, never updated or deleted.

docs/ledger.md documents every type and field; `promo import` accepts exactly that schema.
"""

from __future__ import annotations

import os
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


# The columns every event row has, in ledger order (seq is assigned by the store).
COLUMNS = (
    "event_id", "event_type", "occurred_at", "recorded_at",
    "campaign_id", "voucher_id", "customer_id", "order_id", "channel", "redemption_id",
    "idempotency_key", "device_hash", "ip_hash", "payment_hash",
    "store_id", "staff_id", "sales_channel", "payload",
)  # fmt: skip


def new_id(prefix: str) -> str:
    """A random id: 80 bits from the OS CSPRNG, hex, with a readable prefix."""
    return f"{prefix}_{os.urandom(10).hex()}"


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
