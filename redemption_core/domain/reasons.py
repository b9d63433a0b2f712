"""The stable reason codes a validation, redemption or rollback can fail with, and the codes
of ledger rows that break the ledger's rules (an import refuses them, verify reports them).

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


class LedgerCode(StrEnum):
    """Why a ledger row breaks the ledger's rules (beyond the rule codes above, which an import
    and `promo ledger verify` use too where they fit)."""

    MALFORMED = "malformed"
    UNKNOWN_VALUE = "unknown_value"
    NOT_IMPORTED = "not_imported"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    RECORDED_BEFORE_OCCURRED = "recorded_before_occurred"
    HOLD_TOO_LONG = "hold_too_long"
    REFERENCE_NOT_FOUND = "reference_not_found"
    HAPPENED_BEFORE_REFERENCE = "happened_before_reference"
    DUPLICATE_ID = "duplicate_id"
    EVENT_ID_REUSED = "event_id_reused"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    AUDIENCE_ALREADY_DECIDED = "audience_already_decided"
    VOUCHER_NOT_IN_CAMPAIGN = "voucher_not_in_campaign"
    STATE_MISMATCH = "state_mismatch"
    DISCOUNT_MISMATCH = "discount_mismatch"
    STATUS_CHANGE_NOT_ALLOWED = "status_change_not_allowed"
    CAMPAIGN_FINISHED = "campaign_finished"
    WRONG_VOUCHER_KIND = "wrong_voucher_kind"
    NOT_THE_HOLDER = "not_the_holder"
    REPEATED_ACT = "repeated_act"
    ORDER_CANCELLED = "order_cancelled"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    REDEMPTIONS_LEFT_STANDING = "redemptions_left_standing"
    UNKNOWN_CURRENCY = "unknown_currency"
    COUNTER_NEGATIVE = "counter_negative"
    CANNOT_APPLY = "cannot_apply"


LEDGER_CATALOG: dict[LedgerCode, str] = {
    LedgerCode.MALFORMED: "A column or payload field is missing, of the wrong type, too large or nested too deeply, or not a known column or field.",
    LedgerCode.UNKNOWN_VALUE: "A value the core parses is not one of its known values: event type, campaign status, voucher kind, channel, source, outcome, skip reason, review decision, reason code, visit surface, back-off subject.",
    LedgerCode.NOT_IMPORTED: "An event this ledger writes itself and never takes from a file: an API key issued or revoked, the answer kept for an Idempotency-Key.",
    LedgerCode.TIME_OUT_OF_RANGE: "A timestamp has no UTC offset, is before 1990 or more than a day ahead of the import.",
    LedgerCode.RECORDED_BEFORE_OCCURRED: "recorded_at is earlier than occurred_at.",
    LedgerCode.HOLD_TOO_LONG: "A validation hold does not expire after it was made, or lasts longer than the engine's MAX_HOLD_SECONDS (one hour).",
    LedgerCode.REFERENCE_NOT_FOUND: "The row names a campaign, voucher, customer, order, redemption, hold or trigger that neither the ledger nor an earlier row of the file created.",
    LedgerCode.HAPPENED_BEFORE_REFERENCE: "The row happened before the voucher, order or redemption it names was created.",
    LedgerCode.DUPLICATE_ID: "The row creates a campaign, voucher, code, customer, order, redemption, hold or trigger that already exists.",
    LedgerCode.EVENT_ID_REUSED: "The event id is already in the ledger with other content, or repeats an earlier row of the file.",
    LedgerCode.IDEMPOTENCY_KEY_REUSED: "The idempotency key was already used by another event.",
    LedgerCode.AUDIENCE_ALREADY_DECIDED: "A second decision for one customer in one promotion: a held-out or skipped customer also held out, skipped or sent a voucher (several vouchers to one customer are fine).",
    LedgerCode.VOUCHER_NOT_IN_CAMPAIGN: "The voucher, redemption or trigger belongs to another campaign than the row says.",
    LedgerCode.STATE_MISMATCH: "A field contradicts what it refers to: a code that is not the voucher's, a rollback whose ids or amounts are not its redemption's, a previous status, a gift balance.",
    LedgerCode.DISCOUNT_MISMATCH: "A redemption's discount or gift amount is not what the campaign gives on its order (or exceeds the order).",
    LedgerCode.STATUS_CHANGE_NOT_ALLOWED: "A campaign status change the engine does not allow (finished is final).",
    LedgerCode.CAMPAIGN_FINISHED: "A voucher created in a finished campaign.",
    LedgerCode.WRONG_VOUCHER_KIND: "A voucher of another kind than its campaign's, a second voucher of a standalone campaign, a standalone code published to one customer, a top-up of a voucher that is not a gift card.",
    LedgerCode.NOT_THE_HOLDER: "A voucher published to another customer than its holder, or accepted, delivered or not sent to someone who does not hold it.",
    LedgerCode.REPEATED_ACT: "An act the engine records once: a second acceptance, a second publication to the same holder, a second cancellation.",
    LedgerCode.ORDER_CANCELLED: "A refund or cancellation of an order that was cancelled before.",
    LedgerCode.REFUND_EXCEEDS_PAID: "A refund above what the customer paid: the order's amount less the discounts given on it and what was refunded before.",
    LedgerCode.REDEMPTIONS_LEFT_STANDING: "An order cancelled, or refunded in full, while redemptions on it stand: their rollbacks come first.",
    LedgerCode.UNKNOWN_CURRENCY: "An amount in a currency that is not a known ISO 4217 code.",
    LedgerCode.COUNTER_NEGATIVE: "A counter of the projection below zero (uses, budget used, gift balance, a customer's redemptions).",
    LedgerCode.CANNOT_APPLY: "The projection could not take the row (reported with the database's reason).",
}  # fmt: skip

# For a rule that another system did not have: the campaign setting that describes that system.
SETTINGS: dict[str, str] = {
    Code.VOUCHER_DISABLED: "a voucher_enabled row before it",
    Code.CAMPAIGN_INACTIVE: "the campaign's status (status: active, or a campaign_status_changed row before it)",
    Code.VOUCHER_NOT_ACTIVE: "the campaign's active_from",
    Code.VOUCHER_EXPIRED: "the campaign's active_until",
    Code.OUTSIDE_DAYS_OF_WEEK: "rules.days_of_week (leave it out for every day)",
    Code.OUTSIDE_HOURS: "rules.hours and rules.timezone",
    Code.VOUCHER_NOT_PUBLISHED: "rules.valid_days_after_publication (leave it out)",
    Code.PUBLICATION_VALIDITY_EXPIRED: "rules.valid_days_after_publication (raise it or leave it out)",
    Code.ORDER_BELOW_MINIMUM: "rules.min_order_amount",
    Code.REQUIRED_PRODUCT_MISSING: "rules.required_products, or the discount's product",
    Code.REQUIRED_CATEGORY_MISSING: "rules.required_categories",
    Code.MINIMUM_QUANTITY_NOT_MET: "rules.min_item_quantity",
    Code.NO_APPLICABLE_ITEMS: "the discount (type: unspecified when the source priced it its own way)",
    Code.MISSING_CUSTOMER: "rules.holder_only: false and no rule or limit that needs the customer",
    Code.CUSTOMER_NOT_IN_SEGMENT: "rules.segments",
    Code.CUSTOMER_NOT_HOLDER: "rules.holder_only: false",
    Code.CUSTOMER_NOT_NEW: "rules.new_customers_only: false",
    Code.QUANTITY_EXCEEDED: "limits.per_voucher (raise it, or leave it out for no limit)",
    Code.CUSTOMER_LIMIT_EXCEEDED: "limits.per_customer (raise it, or leave it out for no limit)",
    Code.CAMPAIGN_LIMIT_EXCEEDED: "limits.campaign_total (raise it, or leave it out)",
    Code.CAMPAIGN_BUDGET_EXCEEDED: "limits.budget (raise it, or leave it out)",
    Code.GIFT_AMOUNT_EXCEEDED: "voucher.gift_balance, or a gift_card_topped_up row before it",
    Code.SALES_CHANNEL_NOT_ALLOWED: "rules.sales_channels",
    Code.STORE_NOT_ALLOWED: "rules.stores",
    Code.CURRENCY_MISMATCH: "the campaign's currency",
    Code.ACCEPTANCE_REQUIRED: "rules.acceptance_required: false",
    LedgerCode.DISCOUNT_MISMATCH: "the discount (type: unspecified when the source priced it its own way)",
}  # fmt: skip
