"""Each imported row checked against the state the ledger and the rows before it left, by the
same rules the engine applies before it appends: limits, budgets, holders, a rollback only of
a standing redemption and with its own amounts, a voucher in its own campaign, one decision
per customer and promotion, ids created once, idempotency keys used once.

The rules themselves live in the domain (rules.evaluate, invariants.py) and read the state
through the store port, as the engine does; this module only says which rule each event type
must pass and which field a failure is about. A redemption is evaluated in full at the instant
it happened: the discount it carries must be the one its campaign gives on its order (any
discount, within the order's amount, for a campaign whose discount is `unspecified`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from redemption_core.domain.campaigns import (
    CampaignStatus,
    DiscountType,
    VoucherKind,
    check_transition,
)
from redemption_core.domain.errors import Conflict, InvalidInput
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.invariants import (
    HELD_OUT,
    PUBLISHED,
    SKIPPED,
    Breach,
    acceptance_breach,
    audience_breach,
    hold_breach,
    publication_breach,
    refund_breach,
    refundable,
    rollback_breaches,
    rollback_reason,
    session_reasons,
    standing_order_breach,
    voucher_creation_breach,
)
from redemption_core.domain.orders import RequestContext
from redemption_core.domain.parsing import timestamp
from redemption_core.domain.reasons import Code, LedgerCode
from redemption_core.domain.rules import budget_reason, evaluate
from redemption_core.domain.state import VoucherState
from redemption_core.engine.redemption import MAX_HOLD_SECONDS
from redemption_core.imports.rows import ParsedRow
from redemption_core.ledger.store import LedgerTransaction

KNOWN_CUSTOMERS = 200_000
# The field a rule's failure is about, for the row report.
REASON_FIELDS: dict[str, str] = {
    Code.VOUCHER_DISABLED: "voucher_id",
    Code.CAMPAIGN_INACTIVE: "campaign_id",
    Code.VOUCHER_NOT_ACTIVE: "occurred_at",
    Code.VOUCHER_EXPIRED: "occurred_at",
    Code.OUTSIDE_DAYS_OF_WEEK: "occurred_at",
    Code.OUTSIDE_HOURS: "occurred_at",
    Code.VOUCHER_NOT_PUBLISHED: "voucher_id",
    Code.PUBLICATION_VALIDITY_EXPIRED: "occurred_at",
    Code.ORDER_BELOW_MINIMUM: "payload.order.amount",
    Code.REQUIRED_PRODUCT_MISSING: "payload.order.items",
    Code.REQUIRED_CATEGORY_MISSING: "payload.order.items",
    Code.MINIMUM_QUANTITY_NOT_MET: "payload.order.items",
    Code.NO_APPLICABLE_ITEMS: "payload.order",
    Code.MISSING_CUSTOMER: "customer_id",
    Code.CUSTOMER_NOT_IN_SEGMENT: "customer_id",
    Code.CUSTOMER_NOT_HOLDER: "customer_id",
    Code.CUSTOMER_NOT_NEW: "customer_id",
    Code.QUANTITY_EXCEEDED: "voucher_id",
    Code.CUSTOMER_LIMIT_EXCEEDED: "customer_id",
    Code.CAMPAIGN_LIMIT_EXCEEDED: "campaign_id",
    Code.CAMPAIGN_BUDGET_EXCEEDED: "payload.discount",
    Code.GIFT_AMOUNT_EXCEEDED: "payload.gift_amount",
    Code.SALES_CHANNEL_NOT_ALLOWED: "sales_channel",
    Code.STORE_NOT_ALLOWED: "store_id",
    Code.CURRENCY_MISMATCH: "payload.order.currency",
    Code.ACCEPTANCE_REQUIRED: "customer_id",
    Code.SESSION_NOT_FOUND: "payload.session_id",
    Code.SESSION_EXPIRED: "payload.session_id",
}


def _missing(field: str, value: object) -> list[Breach]:
    return [
        Breach(
            field,
            LedgerCode.REFERENCE_NOT_FOUND,
            f"{value!r} does not exist (in the ledger or earlier in the file)",
        )
    ]


def _exists(field: str, value: object) -> list[Breach]:
    return [Breach(field, LedgerCode.DUPLICATE_ID, f"{value!r} already exists")]


def _before(field: str, what: str, when: datetime) -> Breach:
    return Breach(
        "occurred_at",
        LedgerCode.HAPPENED_BEFORE_REFERENCE,
        f"happened before the {what} it names ({field}) was created at {when.isoformat()}",
    )


class Replay:
    """Asks, for one parsed row at a time, what the ledger's rules say against `tx`."""

    def __init__(self, tx: LedgerTransaction) -> None:
        self.tx = tx
        # Customers are never deleted: one seen to exist stays so. Bounded, so that memory
        # stays flat however many customers a history has.
        self._known_customers: set[str] = set()

    def breaches(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if event.idempotency_key is not None and self.tx.idempotency_key_used(
            event.idempotency_key
        ):
            return [
                Breach(
                    "idempotency_key",
                    LedgerCode.IDEMPOTENCY_KEY_REUSED,
                    f"{event.idempotency_key!r} was used by an earlier event",
                )
            ]
        check = CHECKS.get(event.event_type)
        return [] if check is None else check(self, parsed)

    # -- what most rows refer to ---------------------------------------------------------------
    def _voucher(self, event: Event) -> tuple[VoucherState | None, list[Breach]]:
        """The row's voucher, with what contradicts it: another campaign, another code, an
        event before the voucher existed."""
        voucher = self.tx.voucher_by_id(event.voucher_id or "")
        if voucher is None:
            return None, _missing("voucher_id", event.voucher_id)
        breaches = []
        if event.campaign_id is not None and event.campaign_id != voucher.campaign_id:
            breaches.append(
                Breach(
                    "campaign_id",
                    LedgerCode.VOUCHER_NOT_IN_CAMPAIGN,
                    f"voucher {voucher.voucher_id!r} belongs to campaign {voucher.campaign_id!r}",
                )
            )
        code = event.payload.get("code")
        if (
            code is not None
            and code != voucher.code
            and event.event_type is not (EventType.VOUCHER_VALIDATED)
        ):
            breaches.append(
                Breach("payload.code", LedgerCode.STATE_MISMATCH, "is not the voucher's code")
            )
        if voucher.created_at is not None and event.occurred_at < voucher.created_at:
            breaches.append(_before("voucher_id", "voucher", voucher.created_at))
        return voucher, breaches

    def _campaign(self, event: Event) -> list[Breach]:
        if self.tx.campaign_state(event.campaign_id or "") is None:
            return _missing("campaign_id", event.campaign_id)
        return []

    def _customer(self, event: Event) -> list[Breach]:
        customer = event.customer_id
        if customer is None or customer in self._known_customers:
            return []
        if not self.tx.existing_ids("customers", [customer]):
            return _missing("customer_id", customer)
        if len(self._known_customers) >= KNOWN_CUSTOMERS:
            self._known_customers.clear()
        self._known_customers.add(customer)
        return []

    def _holder(self, voucher: VoucherState, event: Event) -> list[Breach]:
        if event.customer_id is not None and event.customer_id != voucher.holder_id:
            return [
                Breach(
                    "customer_id",
                    LedgerCode.NOT_THE_HOLDER,
                    f"the voucher is held by {voucher.holder_id!r}",
                )
            ]
        return []

    # -- campaigns -----------------------------------------------------------------------------
    def _main_campaign_created(self, parsed: ParsedRow) -> list[Breach]:
        main_id = parsed.event.payload["definition"]["id"]
        return (
            _exists("payload.definition.id", main_id)
            if self.tx.main_campaign_exists(main_id)
            else []
        )

    def _campaign_created(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        definition = event.payload["definition"]
        if definition["id"] != event.campaign_id:
            return [
                Breach(
                    "payload.definition.id",
                    LedgerCode.STATE_MISMATCH,
                    f"{definition['id']!r} is not the row's campaign_id {event.campaign_id!r}",
                )
            ]
        if self.tx.campaign_state(event.campaign_id or "") is not None:
            return _exists("campaign_id", event.campaign_id)
        parent = definition.get("main_campaign")
        if parent is not None and not self.tx.main_campaign_exists(parent):
            return _missing("payload.definition.main_campaign", parent)
        return []

    def _campaign_status_changed(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        state = self.tx.campaign_state(event.campaign_id or "")
        if state is None:
            return _missing("campaign_id", event.campaign_id)
        previous = event.payload.get("previous")
        if previous is not None and previous != state.status:
            return [
                Breach(
                    "payload.previous",
                    LedgerCode.STATE_MISMATCH,
                    f"the campaign is {state.status}, not {previous}",
                )
            ]
        try:
            check_transition(state.status, CampaignStatus(event.payload["status"]))
        except Conflict as refused:
            return [Breach("payload.status", LedgerCode.STATUS_CHANGE_NOT_ALLOWED, refused.problem)]
        return []

    # -- vouchers ------------------------------------------------------------------------------
    def _voucher_created(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        state = self.tx.campaign_state(event.campaign_id or "")
        if state is None:
            return _missing("campaign_id", event.campaign_id)
        if self.tx.voucher_by_id(event.voucher_id or "") is not None:
            return _exists("voucher_id", event.voucher_id)
        code = event.payload["code"]
        if self.tx.existing_codes([code]):
            return _exists("payload.code", code)
        kind = VoucherKind(event.payload["kind"])
        breach = voucher_creation_breach(state, kind, from_definition=True)
        return [] if breach is None else [breach]

    def _voucher_published(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        breach = publication_breach(voucher, event.customer_id or "")
        if breach is not None:
            return [breach]
        trigger_id = event.payload.get("trigger_id")
        if trigger_id is not None:
            breaches += self._trigger(event, trigger_id)
        if event.payload.get("source") == "promotion":
            decided = self.tx.audience_outcomes(voucher.campaign_id, event.customer_id or "")
            breach = audience_breach(decided, PUBLISHED)
            if breach is not None:
                breaches.append(breach)
        return breaches

    def _voucher_accepted(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        breach = acceptance_breach(voucher, event.customer_id or "")
        if breach is not None:
            return [breach]
        if voucher.published_at is not None and event.occurred_at < voucher.published_at:
            return [_before("voucher_id", "publication of the voucher", voucher.published_at)]
        return []

    def _voucher_switched(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        disabling = event.event_type is EventType.VOUCHER_DISABLED
        if voucher.disabled == disabling:
            state = "disabled" if disabling else "enabled"
            return [
                Breach("voucher_id", LedgerCode.REPEATED_ACT, f"the voucher is {state} already")
            ]
        return []

    def _gift_card_topped_up(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        if voucher.kind is not VoucherKind.GIFT:
            return [
                Breach("voucher_id", LedgerCode.WRONG_VOUCHER_KIND, "only a gift card is topped up")
            ]
        balance = event.payload.get("balance")
        expected = (voucher.gift_balance or 0) + event.payload["amount"]
        if balance is not None and balance != expected:
            return [
                Breach(
                    "payload.balance",
                    LedgerCode.STATE_MISMATCH,
                    f"the balance after this top-up is {expected}, not {balance}",
                )
            ]
        return []

    def _voucher_validated(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if event.voucher_id is None:
            return []
        return self._voucher(event)[1]

    def _validation_hold_created(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        expires = timestamp(event.payload["expires_at"], "payload.expires_at")
        breach = hold_breach(event.occurred_at, expires, MAX_HOLD_SECONDS)
        if breach is not None:
            return [breach]
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        session = event.payload["session_id"]
        if self.tx.hold(session) is not None:
            return _exists("payload.session_id", session)
        return []

    # -- redemptions ---------------------------------------------------------------------------
    def _redemption_succeeded(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        tx = self.tx
        if tx.redemption_exists(event.redemption_id or ""):
            return _exists("redemption_id", event.redemption_id)
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        order_id = None if parsed.order is None else parsed.order.id
        if order_id is not None and order_id != event.order_id:
            return [
                Breach(
                    "payload.order.id",
                    LedgerCode.STATE_MISMATCH,
                    f"{order_id!r} is not the row's order_id {event.order_id!r}",
                )
            ]
        state = tx.campaign_state(voucher.campaign_id)
        assert state is not None and parsed.order is not None
        payload = event.payload
        discount, gift = payload["discount"], payload["gift_amount"]
        is_gift = voucher.kind is VoucherKind.GIFT
        if not is_gift and gift:
            return [
                Breach(
                    "payload.gift_amount",
                    LedgerCode.DISCOUNT_MISMATCH,
                    "only a gift card gives a gift amount",
                )
            ]
        session_id = payload.get("session_id")
        try:
            evaluation = evaluate(
                state,
                voucher,
                order=parsed.order,
                customer_id=event.customer_id,
                context=RequestContext(
                    store_id=event.store_id,
                    staff_id=event.staff_id,
                    sales_channel=event.sales_channel,
                ),
                now=event.occurred_at,
                facts=tx,
                session_id=session_id,
                gift_amount=gift if is_gift else None,
            )
        except InvalidInput as error:  # a gift amount no request could have asked for
            return [Breach("payload.gift_amount", LedgerCode.DISCOUNT_MISMATCH, error.problem)]
        reasons = list(evaluation.reasons)
        if session_id is not None:
            reasons += session_reasons(tx.hold(session_id), voucher.voucher_id, event.occurred_at)
        campaign_discount = state.campaign.discount
        order = parsed.order
        if campaign_discount is not None and campaign_discount.type is DiscountType.UNSPECIFIED:
            # Priced by the source system: any discount within the order, within the budget.
            reasons = [r for r in reasons if r.code is not Code.NO_APPLICABLE_ITEMS]
            if discount > order.amount:
                breaches.append(
                    Breach(
                        "payload.discount",
                        LedgerCode.DISCOUNT_MISMATCH,
                        f"{discount} is more than the order's amount {order.amount}",
                    )
                )
            elif reason := budget_reason(state.campaign.limits, state, discount):
                reasons.append(reason)
        elif is_gift:
            if discount:
                breaches.append(
                    Breach(
                        "payload.discount",
                        LedgerCode.DISCOUNT_MISMATCH,
                        "a gift card gives no discount",
                    )
                )
        elif order.currency == state.campaign.currency and discount != evaluation.discount:
            breaches.append(
                Breach(
                    "payload.discount",
                    LedgerCode.DISCOUNT_MISMATCH,
                    f"the campaign's discount on this order is {evaluation.discount}, not {discount}",
                )
            )
        breaches += [
            Breach(REASON_FIELDS.get(reason.code, "row"), reason.code, reason.message)
            for reason in reasons
        ]
        return breaches

    def _redemption_rejected(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if event.voucher_id is None:
            return []
        return self._voucher(event)[1]

    def _redemption_rolled_back(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        redemption = self.tx.redemption(event.redemption_id or "")
        refused = rollback_reason(redemption)
        if refused is not None:
            if redemption is None:
                return _missing("redemption_id", event.redemption_id)
            return [Breach("redemption_id", refused.code, refused.message)]
        assert redemption is not None
        ids = {
            name: getattr(event, name)
            for name in ("campaign_id", "voucher_id", "customer_id", "order_id")
        }
        breaches = rollback_breaches(redemption, ids, event.payload)
        if redemption.redeemed_at is not None and event.occurred_at < redemption.redeemed_at:
            breaches.append(_before("redemption_id", "redemption", redemption.redeemed_at))
        return breaches

    def _rollback_rejected(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        refused = rollback_reason(self.tx.redemption(event.redemption_id or ""))
        recorded = {reason["code"] for reason in event.payload["reasons"]}
        if refused is None:
            return [
                Breach(
                    "redemption_id",
                    LedgerCode.STATE_MISMATCH,
                    "the redemption stands: a rollback of it is not refused",
                )
            ]
        if refused.code not in recorded:
            return [
                Breach(
                    "payload.reasons",
                    LedgerCode.STATE_MISMATCH,
                    f"the rollback is refused for {refused.code}, not {', '.join(sorted(recorded))}",
                )
            ]
        return []

    # -- customers and orders ------------------------------------------------------------------
    def _customer_created(self, parsed: ParsedRow) -> list[Breach]:
        customer = parsed.event.customer_id
        if self.tx.existing_ids("customers", [customer or ""]):
            return _exists("customer_id", customer)
        return []

    def _customer_required(self, parsed: ParsedRow) -> list[Breach]:
        return self._customer(parsed.event)

    def _consent_changed(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if event.channel is not None and event.channel != event.payload["channel"]:
            return [
                Breach(
                    "channel",
                    LedgerCode.STATE_MISMATCH,
                    f"{event.channel} is not the payload's channel {event.payload['channel']}",
                )
            ]
        return self._customer(event)

    def _order_recorded(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if self.tx.order_exists(event.order_id or ""):
            return _exists("order_id", event.order_id)
        return self._customer(event)

    def _order_changed(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        tx = self.tx
        order = tx.order(event.order_id or "")
        if order is None:
            return _missing("order_id", event.order_id)
        if event.customer_id != order.customer_id:
            return [
                Breach(
                    "customer_id",
                    LedgerCode.STATE_MISMATCH,
                    f"the order is {order.customer_id!r}'s, not {event.customer_id!r}'s",
                )
            ]
        if order.ordered_at is not None and event.occurred_at < order.ordered_at:
            return [_before("order_id", "order", order.ordered_at)]
        breach = standing_order_breach(order)
        if breach is not None:
            return [breach]
        standing = tx.open_redemptions_of_order(order.order_id)
        if event.event_type is EventType.ORDER_REFUNDED:
            amount = event.payload["amount"]
            breach = refund_breach(order, amount)
            if breach is not None:
                return [Breach("payload.amount", breach.code, breach.message)]
            if amount < refundable(order) or not standing:
                return []
            what = "refunded in full"
        elif not standing:
            return []
        else:
            what = "cancelled"
        return [
            Breach(
                "order_id",
                LedgerCode.REDEMPTIONS_LEFT_STANDING,
                f"the order is {what} while redemption {standing[0].redemption_id!r} stands:"
                " its redemption_rolled_back rows come first",
            )
        ]

    # -- distribution --------------------------------------------------------------------------
    def _trigger(self, event: Event, trigger_id: str) -> list[Breach]:
        owner = self.tx.trigger_owner(trigger_id)
        if owner is None:
            return _missing("payload.trigger_id", trigger_id)
        if owner != (event.campaign_id, event.customer_id):
            return [
                Breach(
                    "payload.trigger_id",
                    LedgerCode.STATE_MISMATCH,
                    f"the trigger is campaign {owner[0]!r} and customer {owner[1]!r}'s",
                )
            ]
        return []

    def _campaign_only(self, parsed: ParsedRow) -> list[Breach]:
        return self._campaign(parsed.event)

    def _trigger_matched(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        trigger_id = event.payload["trigger_id"]
        if self.tx.trigger_owner(trigger_id) is not None:
            return _exists("payload.trigger_id", trigger_id)
        return self._campaign(event) or self._customer(event)

    def _trigger_closed(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        breaches = self._trigger(event, event.payload["trigger_id"])
        if not breaches and event.voucher_id is not None:
            breaches = self._voucher(event)[1]
        return breaches

    def _decision(self, parsed: ParsedRow) -> list[Breach]:
        """customer_held_out, and offer_skipped without a voucher: one decision per customer
        and promotion."""
        event = parsed.event
        breaches = self._campaign(event) or self._customer(event)
        if breaches:
            return breaches
        trigger_id = event.payload.get("trigger_id")
        if trigger_id is not None:
            breaches = self._trigger(event, trigger_id)
        if event.payload["source"] == "promotion":
            outcome = HELD_OUT if event.event_type is EventType.CUSTOMER_HELD_OUT else SKIPPED
            decided = self.tx.audience_outcomes(event.campaign_id or "", event.customer_id or "")
            breach = audience_breach(decided, outcome)
            if breach is not None:
                breaches.append(breach)
        return breaches

    def _offer_skipped(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        if event.voucher_id is None:
            return self._decision(parsed)
        # Published, then not sent: the voucher is this customer's and was never sent.
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        if voucher.holder_id is None:
            return [
                Breach("voucher_id", LedgerCode.NOT_THE_HOLDER, "the voucher was never published")
            ]
        breaches = self._holder(voucher, event)
        status = self.tx.delivery_status(voucher.voucher_id)
        if status is not None:
            breaches.append(
                Breach(
                    "voucher_id",
                    LedgerCode.REPEATED_ACT,
                    f"the voucher's delivery is {status} already",
                )
            )
        return breaches

    def _delivery(self, parsed: ParsedRow) -> list[Breach]:
        event = parsed.event
        voucher, breaches = self._voucher(event)
        if voucher is None or breaches:
            return breaches
        return self._holder(voucher, event)

    # -- engagement and the guard --------------------------------------------------------------
    def _engagement(self, parsed: ParsedRow) -> list[Breach]:
        """As record_engagement: the customer has a profile; a named voucher is of the named
        campaign and published to the customer; a named campaign exists."""
        event = parsed.event
        breaches = self._customer(event)
        if breaches:
            return breaches
        if event.voucher_id is not None:
            if event.campaign_id is None:
                return [
                    Breach(
                        "campaign_id",
                        LedgerCode.MALFORMED,
                        "required with a voucher_id (the campaign of the voucher)",
                    )
                ]
            voucher, breaches = self._voucher(event)
            if voucher is None or breaches:
                return breaches
            if voucher.holder_id is None:
                return [
                    Breach(
                        "voucher_id", LedgerCode.NOT_THE_HOLDER, "the voucher was never published"
                    )
                ]
            return self._holder(voucher, event)
        if event.campaign_id is not None:
            return self._campaign(event)
        return []

    def _guessing_backoff_started(self, parsed: ParsedRow) -> list[Breach]:
        """The subject in back-off is named in its column, as the engine records it (a
        customer id as it was asked for: it need not be a customer with a profile)."""
        event = parsed.event
        column = BACKOFF_COLUMNS[event.payload["subject"]]
        if getattr(event, column) is None:
            return [
                Breach(column, LedgerCode.MALFORMED, f"required for a {event.payload['subject']}")
            ]
        return []


# The column that names each subject of a guessing back-off.
BACKOFF_COLUMNS = {"customer": "customer_id", "device": "device_hash", "ip": "ip_hash"}

CHECKS: dict[EventType, Callable[[Replay, ParsedRow], list[Breach]]] = {
    EventType.MAIN_CAMPAIGN_CREATED: Replay._main_campaign_created,
    EventType.CAMPAIGN_CREATED: Replay._campaign_created,
    EventType.CAMPAIGN_STATUS_CHANGED: Replay._campaign_status_changed,
    EventType.VOUCHER_CREATED: Replay._voucher_created,
    EventType.VOUCHER_PUBLISHED: Replay._voucher_published,
    EventType.VOUCHER_ACCEPTED: Replay._voucher_accepted,
    EventType.VOUCHER_DISABLED: Replay._voucher_switched,
    EventType.VOUCHER_ENABLED: Replay._voucher_switched,
    EventType.GIFT_CARD_TOPPED_UP: Replay._gift_card_topped_up,
    EventType.VOUCHER_VALIDATED: Replay._voucher_validated,
    EventType.VALIDATION_HOLD_CREATED: Replay._validation_hold_created,
    EventType.REDEMPTION_SUCCEEDED: Replay._redemption_succeeded,
    EventType.REDEMPTION_REJECTED: Replay._redemption_rejected,
    EventType.REDEMPTION_ROLLED_BACK: Replay._redemption_rolled_back,
    EventType.ROLLBACK_REJECTED: Replay._rollback_rejected,
    EventType.CUSTOMER_CREATED: Replay._customer_created,
    EventType.CUSTOMER_UPDATED: Replay._customer_required,
    EventType.CONSENT_CHANGED: Replay._consent_changed,
    EventType.ORDER_RECORDED: Replay._order_recorded,
    EventType.ORDER_REFUNDED: Replay._order_changed,
    EventType.ORDER_CANCELLED: Replay._order_changed,
    EventType.PROMOTION_STARTED: Replay._campaign_only,
    EventType.PROMOTION_FINISHED: Replay._campaign_only,
    EventType.TRIGGER_MATCHED: Replay._trigger_matched,
    EventType.TRIGGER_COMPLETED: Replay._trigger_closed,
    EventType.TRIGGER_FAILED: Replay._trigger_closed,
    EventType.CUSTOMER_HELD_OUT: Replay._decision,
    EventType.OFFER_SKIPPED: Replay._offer_skipped,
    EventType.DELIVERY_ATTEMPTED: Replay._delivery,
    EventType.VOUCHER_DELIVERED: Replay._delivery,
    EventType.DELIVERY_FAILED: Replay._delivery,
    EventType.MESSAGE_OPENED: Replay._engagement,
    EventType.MESSAGE_CLICKED: Replay._engagement,
    EventType.SITE_VISITED: Replay._engagement,
    EventType.GUESSING_BACKOFF_STARTED: Replay._guessing_backoff_started,
}
