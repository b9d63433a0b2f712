"""The stable reason codes a validation, redemption or rollback can fail with.

Each rule has its own code, so reports can count exactly why redemptions are rejected.
Where Voucherify has a name for the failure we use it as the code itself; where Voucherify
only has a family name (customer_rules_violated, order_rules_violated) that family is kept as
`family`, so the codes can be grouped the way people used to Voucherify expect.
docs/reason-codes.md lists them all; a test keeps it in step with this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Code(StrEnum):
    RESOURCE_NOT_FOUND = "resource_not_found"
    VOUCHER_DISABLED = "voucher_disabled"
    CAMPAIGN_INACTIVE = "campaign_inactive"
    VOUCHER_NOT_ACTIVE = "voucher_not_active"
    VOUCHER_EXPIRED = "voucher_expired"
    OUTSIDE_DAYS_OF_WEEK = "outside_days_of_week"
    OUTSIDE_HOURS = "outside_hours"
    VOUCHER_NOT_PUBLISHED = "voucher_not_published"
    PUBLICATION_VALIDITY_EXPIRED = "publication_validity_expired"
    ORDER_BELOW_MINIMUM = "order_below_minimum"
    REQUIRED_PRODUCT_MISSING = "required_product_missing"
    REQUIRED_CATEGORY_MISSING = "required_category_missing"
    MINIMUM_QUANTITY_NOT_MET = "minimum_quantity_not_met"
    NO_APPLICABLE_ITEMS = "no_applicable_items"
    MISSING_CUSTOMER = "missing_customer"
    CUSTOMER_NOT_IN_SEGMENT = "customer_not_in_segment"
    CUSTOMER_NOT_HOLDER = "customer_not_holder"
    CUSTOMER_NOT_NEW = "customer_not_new"
    QUANTITY_EXCEEDED = "quantity_exceeded"
    CUSTOMER_LIMIT_EXCEEDED = "customer_limit_exceeded"
    CAMPAIGN_LIMIT_EXCEEDED = "campaign_limit_exceeded"
    CAMPAIGN_BUDGET_EXCEEDED = "campaign_budget_exceeded"
    GIFT_AMOUNT_EXCEEDED = "gift_amount_exceeded"
    SALES_CHANNEL_NOT_ALLOWED = "sales_channel_not_allowed"
    STORE_NOT_ALLOWED = "store_not_allowed"
    CURRENCY_MISMATCH = "currency_mismatch"
    ACCEPTANCE_REQUIRED = "acceptance_required"
    SESSION_NOT_FOUND = "session_not_found"
    SESSION_EXPIRED = "session_expired"
    ALREADY_ROLLED_BACK = "already_rolled_back"
    HOLD_LIMIT_EXCEEDED = "hold_limit_exceeded"


CUSTOMER_RULES = "customer_rules_violated"
ORDER_RULES = "order_rules_violated"

# code -> (family, when it fires). The family is Voucherify's error key for the code.
CATALOG: dict[Code, tuple[str, str]] = {
    Code.RESOURCE_NOT_FOUND: (
        "resource_not_found",
        "No voucher has this code (validate, redeem), or no redemption has this id (rollback).",
    ),
    Code.VOUCHER_DISABLED: ("voucher_disabled", "The voucher was disabled by the merchant."),
    Code.CAMPAIGN_INACTIVE: (
        "voucher_disabled",
        "The voucher's campaign is a draft, paused or finished.",
    ),
    Code.VOUCHER_NOT_ACTIVE: (
        "voucher_not_active",
        "The campaign's active window has not started yet (now < active_from).",
    ),
    Code.VOUCHER_EXPIRED: (
        "voucher_expired",
        "The campaign's active window has ended (now >= active_until).",
    ),
    Code.OUTSIDE_DAYS_OF_WEEK: (
        "voucher_not_active",
        "Today (in the campaign's time zone) is not one of rules.days_of_week.",
    ),
    Code.OUTSIDE_HOURS: (
        "voucher_not_active",
        "The local time is outside rules.hours [from, to); a window may wrap midnight.",
    ),
    Code.VOUCHER_NOT_PUBLISHED: (
        "voucher_not_active",
        "rules.valid_days_after_publication is set and the voucher was never published.",
    ),
    Code.PUBLICATION_VALIDITY_EXPIRED: (
        "voucher_expired",
        "More than rules.valid_days_after_publication days have passed since publication.",
    ),
    Code.ORDER_BELOW_MINIMUM: (ORDER_RULES, "order.amount is below rules.min_order_amount."),
    Code.REQUIRED_PRODUCT_MISSING: (
        ORDER_RULES,
        "The order lacks a product of rules.required_products (each listed product must be "
        "present), or the free item of a free-item discount.",
    ),
    Code.REQUIRED_CATEGORY_MISSING: (
        ORDER_RULES,
        "The order lacks an item of some category in rules.required_categories (each listed "
        "category must be present, as each listed product must).",
    ),
    Code.MINIMUM_QUANTITY_NOT_MET: (
        ORDER_RULES,
        "Fewer than rules.min_item_quantity units (of the discounted items, or of the whole "
        "order when the discount applies to the order).",
    ),
    Code.NO_APPLICABLE_ITEMS: (
        ORDER_RULES,
        "The discount applies to matching items and the order has none, the discount comes to "
        "zero, or the campaign's discount is `unspecified` (imported from another system).",
    ),
    Code.MISSING_CUSTOMER: (
        "missing_customer",
        "A rule or limit depends on the customer (holder, segment, new customers, per-customer "
        "limit, acceptance) and the request names none.",
    ),
    Code.CUSTOMER_NOT_IN_SEGMENT: (CUSTOMER_RULES, "The customer is in none of rules.segments."),
    Code.CUSTOMER_NOT_HOLDER: (
        CUSTOMER_RULES,
        "The voucher is published to someone else, or to nobody, and rules.holder_only is on "
        "(the default for unique codes and gift cards).",
    ),
    Code.CUSTOMER_NOT_NEW: (
        CUSTOMER_RULES,
        "rules.new_customers_only is on and this customer id has an order that stands (recorded "
        "and not cancelled) or a redemption that stands (not rolled back).",
    ),
    Code.QUANTITY_EXCEEDED: (
        "quantity_exceeded",
        "The voucher reached limits.per_voucher (counting uses held by other sessions).",
    ),
    Code.CUSTOMER_LIMIT_EXCEEDED: (
        "quantity_exceeded",
        "This customer id reached limits.per_customer in the campaign (keyed on customer id, "
        "never on email).",
    ),
    Code.CAMPAIGN_LIMIT_EXCEEDED: (
        "quantity_exceeded",
        "The campaign reached limits.campaign_total redemptions.",
    ),
    Code.CAMPAIGN_BUDGET_EXCEEDED: (
        "quantity_exceeded",
        "This discount would take the campaign's total discount above limits.budget.",
    ),
    Code.GIFT_AMOUNT_EXCEEDED: (
        "gift_amount_exceeded",
        "The gift card's balance is zero or below the requested gift amount.",
    ),
    Code.SALES_CHANNEL_NOT_ALLOWED: (
        ORDER_RULES,
        "context.sales_channel is missing or not in rules.sales_channels.",
    ),
    Code.STORE_NOT_ALLOWED: (ORDER_RULES, "context.store_id is missing or not in rules.stores."),
    Code.CURRENCY_MISMATCH: (
        ORDER_RULES,
        "order.currency differs from the campaign's currency.",
    ),
    Code.ACCEPTANCE_REQUIRED: (
        CUSTOMER_RULES,
        "rules.acceptance_required is on and the holder has not accepted the voucher.",
    ),
    Code.SESSION_NOT_FOUND: (
        "resource_not_found",
        "redeem names a validation session that does not exist or belongs to another voucher.",
    ),
    Code.SESSION_EXPIRED: (
        "session_expired",
        "redeem names a validation session whose hold has expired or was already used.",
    ),
    Code.ALREADY_ROLLED_BACK: (
        "already_rolled_back",
        "rollback of a redemption that was already rolled back.",
    ),
    Code.HOLD_LIMIT_EXCEEDED: (
        "quantity_exceeded",
        "validate with a hold, when the customer, the device or the IP already has as many "
        "open holds as the limits allow (holds_per_customer, holds_per_device, holds_per_ip).",
    ),
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: Code
    message: str

    @property
    def family(self) -> str:
        return CATALOG[self.code][0]

    def to_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "family": self.family, "message": self.message}
