"""Read models of the projection: the current state of a campaign, a voucher, a redemption.

They are rebuilt from the ledger by replaying events; the engine reads them inside the same
transaction that appends the next event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redemption_core.domain.campaigns import Campaign, CampaignStatus, VoucherKind


@dataclass(frozen=True, slots=True)
class CampaignState:
    campaign: Campaign
    status: CampaignStatus
    redemptions: int
    budget_used: int
    vouchers: int


@dataclass(frozen=True, slots=True)
class VoucherState:
    voucher_id: str
    code: str
    campaign_id: str
    kind: VoucherKind
    holder_id: str | None
    disabled: bool
    published_at: datetime | None
    accepted_at: datetime | None
    redemptions: int
    gift_balance: int | None
    held_until: datetime | None = None  # no validation hold on this voucher lasts longer
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RedemptionState:
    redemption_id: str
    voucher_id: str
    campaign_id: str
    customer_id: str | None
    order_id: str | None
    discount: int
    gift_amount: int
    rolled_back: bool
    redeemed_at: datetime | None = None
    store_id: str | None = None


@dataclass(frozen=True, slots=True)
class HoldState:
    session_id: str
    voucher_id: str
    customer_id: str | None
    expires_at: datetime
    consumed: bool


@dataclass(frozen=True, slots=True)
class OpenHolds:
    """Open (unexpired, unconsumed) holds of one customer, device and IP."""

    by_customer: int
    by_device: int
    by_ip: int


@dataclass(frozen=True, slots=True)
class ApiKeyState:
    key_id: str
    kind: str
    role: str | None
    stores: tuple[str, ...]
    name: str
    issued_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerState:
    customer_id: str
    signup_at: datetime
    birthday: str | None
    anniversary: str | None
    attributes: dict
    email_masked: str | None
    phone_masked: str | None
    consent: dict[str, bool]
    orders: int
    spend: int
    first_order_at: datetime | None
    last_order_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderState:
    order_id: str
    customer_id: str | None
    amount: int
    currency: str
    refunded: int
    cancelled: bool
    # Discounts the customer did not pay: those of the order's standing redemptions and of
    # those a refund in full rolled back (see invariants.refundable).
    discounts: int = 0
    ordered_at: datetime | None = None
    store_id: str | None = None
