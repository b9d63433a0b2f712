"""Rules & limitations: given the current state and a request, every reason it must fail.

Pure functions: the facts about a customer's history come through `Facts`, which the store
answers inside the redemption's transaction, and only for the rules a campaign actually has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from redemption_core.domain.campaigns import CampaignStatus, Limits, VoucherKind
from redemption_core.domain.discounts import compute_discount
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.orders import Order, RequestContext
from redemption_core.domain.reasons import Code, Reason
from redemption_core.domain.state import CampaignState, VoucherState


class Facts(Protocol):
    def customer_campaign_redemptions(self, campaign_id: str, customer_id: str) -> int: ...

    def customer_has_orders(self, customer_id: str) -> bool: ...

    def customer_in_any_segment(
        self, customer_id: str, segments: frozenset[str], now: datetime
    ) -> bool: ...

    def holds_by_others(self, voucher_id: str, session_id: str | None, now: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class Evaluation:
    reasons: tuple[Reason, ...]
    discount: int
    gift_amount: int

    @property
    def ok(self) -> bool:
        return not self.reasons


def evaluate(
    state: CampaignState,
    voucher: VoucherState,
    *,
    order: Order,
    customer_id: str | None,
    context: RequestContext,
    now: datetime,
    facts: Facts,
    session_id: str | None = None,
    gift_amount: int | None = None,
) -> Evaluation:
    """Check every rule and limit; collect all failures rather than stopping at the first."""
    campaign = state.campaign
    rules = campaign.rules
    limits = campaign.limits
    reasons: list[Reason] = []
    fail = reasons.append

    if voucher.disabled:
        fail(Reason(Code.VOUCHER_DISABLED, "the voucher is disabled"))
    if state.status is not CampaignStatus.ACTIVE:
        fail(Reason(Code.CAMPAIGN_INACTIVE, f"the campaign is {state.status}"))
    if campaign.active_from is not None and now < campaign.active_from:
        fail(Reason(Code.VOUCHER_NOT_ACTIVE, f"valid from {campaign.active_from.isoformat()}"))
    if campaign.active_until is not None and now >= campaign.active_until:
        fail(Reason(Code.VOUCHER_EXPIRED, f"expired at {campaign.active_until.isoformat()}"))
    if rules.days_of_week or rules.hours:
        local = now.astimezone(rules.zone)
        if rules.days_of_week and local.weekday() not in rules.days_of_week:
            fail(Reason(Code.OUTSIDE_DAYS_OF_WEEK, f"not valid on {local.strftime('%A')}"))
        if rules.hours:
            start, end = rules.hours
            moment = local.time().replace(tzinfo=None)
            inside = start <= moment < end if start < end else moment >= start or moment < end
            if not inside:
                fail(
                    Reason(Code.OUTSIDE_HOURS, f"valid {start:%H:%M}-{end:%H:%M} {rules.timezone}")
                )
    if rules.valid_days_after_publication is not None:
        if voucher.published_at is None:
            fail(Reason(Code.VOUCHER_NOT_PUBLISHED, "the voucher was never published"))
        else:
            ends = voucher.published_at + timedelta(days=rules.valid_days_after_publication)
            if now >= ends:
                fail(Reason(Code.PUBLICATION_VALIDITY_EXPIRED, f"expired at {ends.isoformat()}"))

    if order.currency != campaign.currency:
        fail(
            Reason(
                Code.CURRENCY_MISMATCH,
                f"order in {order.currency}, campaign in {campaign.currency}",
            )
        )
    if rules.min_order_amount is not None and order.amount < rules.min_order_amount:
        fail(Reason(Code.ORDER_BELOW_MINIMUM, f"{order.amount} is below {rules.min_order_amount}"))
    if rules.required_products:
        present = {item.product_id for item in order.items}
        missing = sorted(rules.required_products - present)
        if missing:
            fail(Reason(Code.REQUIRED_PRODUCT_MISSING, f"missing products: {', '.join(missing)}"))
    if rules.required_categories:
        present = {item.category for item in order.items}
        missing = sorted(rules.required_categories - present)
        if missing:
            fail(
                Reason(Code.REQUIRED_CATEGORY_MISSING, f"missing categories: {', '.join(missing)}")
            )
    if rules.min_item_quantity is not None:
        target = campaign.discount.applies_to if campaign.discount else None
        units = sum(
            item.quantity
            for item in order.items
            if target is None or target.matches(item.product_id, item.category)
        )
        if units < rules.min_item_quantity:
            fail(
                Reason(
                    Code.MINIMUM_QUANTITY_NOT_MET,
                    f"{units} units, at least {rules.min_item_quantity} needed",
                )
            )
    if rules.sales_channels and context.sales_channel not in rules.sales_channels:
        fail(
            Reason(
                Code.SALES_CHANNEL_NOT_ALLOWED,
                _not_among("sales channel", context.sales_channel, rules.sales_channels),
            )
        )
    if rules.stores and context.store_id not in rules.stores:
        fail(Reason(Code.STORE_NOT_ALLOWED, _not_among("store", context.store_id, rules.stores)))

    needs_customer = (
        rules.holder_only
        or rules.segments
        or rules.new_customers_only
        or rules.acceptance_required
        or limits.per_customer is not None
    )
    if customer_id is None:
        if needs_customer:
            fail(Reason(Code.MISSING_CUSTOMER, "this voucher needs the customer's id"))
    else:
        if rules.holder_only and voucher.holder_id != customer_id:
            whose = "nobody" if voucher.holder_id is None else "another customer"
            fail(Reason(Code.CUSTOMER_NOT_HOLDER, f"the voucher is published to {whose}"))
        if rules.acceptance_required and voucher.accepted_at is None:
            fail(Reason(Code.ACCEPTANCE_REQUIRED, "the voucher has not been accepted"))
        if rules.segments and not facts.customer_in_any_segment(customer_id, rules.segments, now):
            fail(
                Reason(Code.CUSTOMER_NOT_IN_SEGMENT, f"not in {', '.join(sorted(rules.segments))}")
            )
        if rules.new_customers_only and facts.customer_has_orders(customer_id):
            fail(Reason(Code.CUSTOMER_NOT_NEW, "the customer has ordered before"))
        if limits.per_customer is not None:
            used = facts.customer_campaign_redemptions(campaign.id, customer_id)
            if reason := customer_limit_reason(limits, used):
                fail(reason)

    if limits.per_voucher is not None:
        held = 0
        if voucher.held_until is not None and voucher.held_until > now:
            held = facts.holds_by_others(voucher.voucher_id, session_id, now)
        if reason := voucher_limit_reason(limits, voucher, held):
            fail(reason)
    if reason := campaign_limit_reason(limits, state):
        fail(reason)

    discount = 0
    gift = 0
    if order.currency != campaign.currency:
        pass  # nothing can be computed across currencies; the mismatch is already reported
    elif voucher.kind is VoucherKind.GIFT:
        gift = _gift_amount(voucher.gift_balance or 0, order, gift_amount, fail)
    else:
        if gift_amount is not None:
            raise InvalidInput("gift_amount", "only a gift card takes a gift amount")
        if campaign.discount is not None:
            discount, reason = compute_discount(campaign.discount, order)
            if reason is not None:
                fail(reason)
        if reason := budget_reason(limits, state, discount):
            fail(reason)
    return Evaluation(tuple(reasons), discount, gift)


# The limits, one function each: evaluate() asks them before a redemption, `promo ledger
# verify` asks them of every redemption in the ledger against the state before it.


def customer_limit_reason(limits: Limits, used: int) -> Reason | None:
    if limits.per_customer is not None and used >= limits.per_customer:
        return Reason(Code.CUSTOMER_LIMIT_EXCEEDED, f"used {used} of {limits.per_customer}")
    return None


def voucher_limit_reason(limits: Limits, voucher: VoucherState, held: int) -> Reason | None:
    if limits.per_voucher is not None and voucher.redemptions + held >= limits.per_voucher:
        return Reason(
            Code.QUANTITY_EXCEEDED,
            f"used {voucher.redemptions}, held {held}, limit {limits.per_voucher}",
        )
    return None


def campaign_limit_reason(limits: Limits, state: CampaignState) -> Reason | None:
    if limits.campaign_total is not None and state.redemptions >= limits.campaign_total:
        return Reason(
            Code.CAMPAIGN_LIMIT_EXCEEDED, f"campaign reached {limits.campaign_total} redemptions"
        )
    return None


def budget_reason(limits: Limits, state: CampaignState, discount: int) -> Reason | None:
    if limits.budget is not None and state.budget_used + discount > limits.budget:
        return Reason(
            Code.CAMPAIGN_BUDGET_EXCEEDED,
            f"{state.budget_used} of {limits.budget} used, {discount} more asked",
        )
    return None


def gift_balance_reason(balance: int, amount: int) -> Reason | None:
    if balance <= 0 or amount > balance:
        return Reason(Code.GIFT_AMOUNT_EXCEEDED, f"balance {balance}, asked {amount}")
    return None


def _gift_amount(balance: int, order: Order, requested: int | None, fail) -> int:
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested <= 0:
            raise InvalidInput("gift_amount", "must be a positive integer amount in minor units")
        if requested > order.amount:
            raise InvalidInput(
                "gift_amount", f"{requested} exceeds the order amount {order.amount}"
            )
    amount = min(balance, order.amount) if requested is None else requested
    if reason := gift_balance_reason(balance, amount):
        fail(reason)
        return 0
    if amount <= 0:
        fail(Reason(Code.NO_APPLICABLE_ITEMS, "the order amount is zero"))
    return amount


def _not_among(what: str, given: str | None, allowed: Iterable[str]) -> str:
    """'store 'x' not allowed (allowed: a, b)', or 'no store given (...)': never Python's None."""
    choices = ", ".join(sorted(allowed))
    if given is None:
        return f"no {what} given; this voucher needs one of: {choices}"
    return f"{what} {given!r} not allowed; allowed: {choices}"
