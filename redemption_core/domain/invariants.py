"""The ledger's invariants as plain functions over the read models, shared by every door.

The engine asks them before it appends an event, `promo import` asks them of every row against
the state the rows before it left, and `promo ledger verify` asks them of every event while it
replays the ledger. One copy of each rule: a door that skipped one would write what another
refuses.

Each returns what is wrong (a `Breach`: the field, a stable code from reasons.py, a message) or
None; the engine turns a breach into its own error, the import into a refused row, verify into
a finding.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from redemption_core.domain import parsing as p
from redemption_core.domain.campaigns import CampaignStatus, VoucherKind
from redemption_core.domain.errors import Conflict
from redemption_core.domain.reasons import Code, LedgerCode, Reason
from redemption_core.domain.state import (
    CampaignState,
    HoldState,
    OrderState,
    RedemptionState,
    VoucherState,
)

# What a rollback gives back is what its redemption took; `rollback_id` etc. are the event's own.
ROLLBACK_AMOUNTS = ("discount", "gift_amount")
# Outcomes of a promotion's decision per customer (the `audience` projection).
PUBLISHED, NOT_SENT, HELD_OUT, SKIPPED = "published", "not_sent", "held_out", "skipped"
REFUND_CAUSE = "order_refunded"  # a rollback made by a refund of everything the customer paid


@dataclass(frozen=True, slots=True)
class Breach:
    field: str
    code: str  # a reasons.Code or reasons.LedgerCode value
    message: str

    def conflict(self) -> Conflict:
        return Conflict(self.field, self.message)


# -- redemptions, rollbacks and holds -----------------------------------------------------------


def rollback_reason(redemption: RedemptionState | None) -> Reason | None:
    """Why a rollback of this redemption is refused (recorded as rollback_rejected), or None."""
    if redemption is None:
        return Reason(Code.RESOURCE_NOT_FOUND, "no redemption has this id")
    if redemption.rolled_back:
        return Reason(Code.ALREADY_ROLLED_BACK, "this redemption was rolled back before")
    return None


def rollback_breaches(
    redemption: RedemptionState, ids: dict[str, str | None], amounts: dict[str, object]
) -> list[Breach]:
    """A rollback names its redemption's own campaign, voucher, customer and order and gives
    back exactly its discount and gift amount (else counters and budgets drift)."""
    breaches = []
    for name, value in ids.items():
        own = getattr(redemption, name)
        if value != own:
            breaches.append(
                Breach(
                    name,
                    LedgerCode.STATE_MISMATCH,
                    f"{value!r} is not the redemption's {name} ({own!r})",
                )
            )
    for name in ROLLBACK_AMOUNTS:
        own = getattr(redemption, name)
        if amounts.get(name) != own:
            breaches.append(
                Breach(
                    f"payload.{name}",
                    LedgerCode.STATE_MISMATCH,
                    f"gives back {amounts.get(name)!r}, the redemption took {own}",
                )
            )
    return breaches


def session_reasons(hold: HoldState | None, voucher_id: str, now: datetime) -> tuple[Reason, ...]:
    """Why a redemption naming this validation session is refused."""
    if hold is None or hold.voucher_id != voucher_id:
        return (Reason(Code.SESSION_NOT_FOUND, "no hold with this session id for this voucher"),)
    if hold.consumed:
        return (Reason(Code.SESSION_EXPIRED, "the hold was already used"),)
    if hold.expires_at <= now:
        return (Reason(Code.SESSION_EXPIRED, f"the hold expired at {p.iso(hold.expires_at)}"),)
    return ()


def hold_breach(created: datetime, expires: datetime, max_seconds: int) -> Breach | None:
    """A hold expires after it is made and lasts at most `max_seconds` (the engine's cap)."""
    seconds = (expires - created).total_seconds()
    if not 0 < seconds <= max_seconds:
        return Breach(
            "payload.expires_at",
            LedgerCode.HOLD_TOO_LONG,
            f"{p.iso(expires)} is {seconds:.0f} s after the hold was made;"
            f" a hold lasts more than 0 and at most {max_seconds} s",
        )
    return None


# -- vouchers ----------------------------------------------------------------------------------


def voucher_creation_breach(
    state: CampaignState, kind: VoucherKind, *, from_definition: bool
) -> Breach | None:
    """A campaign's vouchers are of its kind; a standalone campaign has exactly its one code,
    created with the campaign; a finished campaign gets no new vouchers."""
    campaign = state.campaign
    if campaign.voucher_kind is VoucherKind.STANDALONE and not (
        from_definition and state.vouchers == 0
    ):
        return Breach(
            "campaign_id",
            LedgerCode.WRONG_VOUCHER_KIND,
            "a standalone campaign has exactly one code",
        )
    if kind is not campaign.voucher_kind:
        return Breach(
            "payload.kind",
            LedgerCode.WRONG_VOUCHER_KIND,
            f"the campaign's vouchers are {campaign.voucher_kind}, not {kind}",
        )
    if state.status is CampaignStatus.FINISHED:
        return Breach("campaign_id", LedgerCode.CAMPAIGN_FINISHED, "the campaign is finished")
    return None


def publication_breach(voucher: VoucherState, customer_id: str) -> Breach | None:
    """A unique voucher or gift card is published to one customer, once."""
    if voucher.kind is VoucherKind.STANDALONE:
        return Breach(
            "code",
            LedgerCode.WRONG_VOUCHER_KIND,
            "a standalone code is shared; it is not published to one customer",
        )
    if voucher.holder_id == customer_id:
        return Breach("code", LedgerCode.REPEATED_ACT, "already published to this customer")
    if voucher.holder_id is not None:
        return Breach("code", LedgerCode.NOT_THE_HOLDER, "already published to another customer")
    return None


def acceptance_breach(voucher: VoucherState, customer_id: str) -> Breach | None:
    if voucher.holder_id != customer_id:
        return Breach(
            "customer_id", LedgerCode.NOT_THE_HOLDER, "only the voucher's holder can accept it"
        )
    if voucher.accepted_at is not None:
        return Breach("code", LedgerCode.REPEATED_ACT, "the voucher was accepted before")
    return None


# -- promotions --------------------------------------------------------------------------------


def audience_breach(decided: Collection[str], outcome: str) -> Breach | None:
    """One decision per customer and promotion: held out, skipped, or sent vouchers (a coupon
    book sends several); a customer held out or skipped gets nothing more from it."""
    if outcome == PUBLISHED:
        earlier = sorted(set(decided) & {HELD_OUT, SKIPPED})
    else:
        earlier = sorted(set(decided))
    if earlier:
        return Breach(
            "customer_id",
            LedgerCode.AUDIENCE_ALREADY_DECIDED,
            f"the promotion already decided about this customer ({', '.join(earlier)})",
        )
    return None


# -- orders ------------------------------------------------------------------------------------


def standing_order_breach(order: OrderState) -> Breach | None:
    if order.cancelled:
        return Breach("order_id", LedgerCode.ORDER_CANCELLED, "the order is cancelled")
    return None


def refundable(order: OrderState) -> int:
    """What the customer paid and has not had back: the amount, less the discounts given on
    the order (its standing redemptions' and those a refund in full rolled back), less what
    was refunded before. A refund can never give back a discount the customer did not pay."""
    return max(0, order.amount - order.discounts - order.refunded)


def refund_breach(order: OrderState, amount: int) -> Breach | None:
    left = refundable(order)
    if amount > left:
        return Breach(
            "amount",
            LedgerCode.REFUND_EXCEEDS_PAID,
            f"{amount} is more than the {left} left to refund (order {order.amount},"
            f" discounts given {order.discounts}, refunded before {order.refunded})",
        )
    return None
