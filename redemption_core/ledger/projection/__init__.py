"""The projection: what each event type does to the derived tables (campaign counters,
vouchers, redemptions, customers, orders, offers, ...), written once for every backend.

ProjectionTransaction is the LedgerTransaction the engine works with: `append` buffers the
event row and applies the event at once, so later reads in the same transaction see it; the
adapter calls `flush` before COMMIT. `promo ledger verify` replays the ledger through the
same `apply` into an empty database.
"""

from __future__ import annotations

from collections.abc import Callable

from redemption_core.domain.events import Event, EventType
from redemption_core.ledger.projection.access import AccessProjection
from redemption_core.ledger.projection.catalogue import CatalogueProjection
from redemption_core.ledger.projection.customers import CustomerProjection
from redemption_core.ledger.projection.distribution import DistributionProjection
from redemption_core.ledger.projection.reads import ProjectionReads
from redemption_core.ledger.projection.vouchers import VoucherProjection


class ProjectionTransaction(
    VoucherProjection,
    CustomerProjection,
    DistributionProjection,
    CatalogueProjection,
    AccessProjection,
    ProjectionReads,
):
    def apply(self, event: Event) -> None:
        """Update the projection for one event. Also used to rebuild it from the ledger."""
        self.appended += 1
        handler = APPLY_BY_TYPE.get(event.event_type)
        if handler is not None:
            handler(self, event)
        if event.idempotency_key is not None:
            self._db.execute(
                "INSERT INTO idempotency VALUES (?, ?, ?)",
                (event.idempotency_key, event.payload["request_hash"], event.event_id),
            )


# How each event type changes the projection (types not listed change nothing but the
# idempotency table).
APPLY_BY_TYPE: dict[EventType, Callable[[ProjectionTransaction, Event], None]] = {
    EventType.MAIN_CAMPAIGN_CREATED: ProjectionTransaction._main_campaign_created,
    EventType.CAMPAIGN_CREATED: ProjectionTransaction._campaign_created,
    EventType.CAMPAIGN_STATUS_CHANGED: ProjectionTransaction._campaign_status_changed,
    EventType.VOUCHER_CREATED: ProjectionTransaction._voucher_created,
    EventType.VOUCHER_PUBLISHED: ProjectionTransaction._voucher_published,
    EventType.VOUCHER_ACCEPTED: ProjectionTransaction._voucher_accepted,
    EventType.VOUCHER_DISABLED: ProjectionTransaction._voucher_disabled,
    EventType.VOUCHER_ENABLED: ProjectionTransaction._voucher_enabled,
    EventType.GIFT_CARD_TOPPED_UP: ProjectionTransaction._gift_card_topped_up,
    EventType.SEGMENT_MEMBER_ADDED: ProjectionTransaction._segment_member_added,
    EventType.SEGMENT_MEMBER_REMOVED: ProjectionTransaction._segment_member_removed,
    EventType.VALIDATION_HOLD_CREATED: ProjectionTransaction._validation_hold_created,
    EventType.REDEMPTION_SUCCEEDED: ProjectionTransaction._redemption_succeeded,
    EventType.REDEMPTION_ROLLED_BACK: ProjectionTransaction._redemption_rolled_back,
    EventType.CUSTOMER_CREATED: ProjectionTransaction._customer_created,
    EventType.CUSTOMER_UPDATED: ProjectionTransaction._customer_updated,
    EventType.CONSENT_CHANGED: ProjectionTransaction._consent_changed,
    EventType.ORDER_RECORDED: ProjectionTransaction._order_recorded,
    EventType.ORDER_REFUNDED: ProjectionTransaction._order_refunded,
    EventType.ORDER_CANCELLED: ProjectionTransaction._order_cancelled,
    EventType.SEGMENT_DEFINED: ProjectionTransaction._segment_defined,
    EventType.FREQUENCY_CAP_SET: ProjectionTransaction._frequency_cap_set,
    EventType.CUSTOMER_HELD_OUT: ProjectionTransaction._customer_held_out,
    EventType.OFFER_SKIPPED: ProjectionTransaction._offer_skipped,
    EventType.TRIGGER_MATCHED: ProjectionTransaction._trigger_matched,
    EventType.TRIGGER_COMPLETED: ProjectionTransaction._trigger_closed,
    EventType.TRIGGER_FAILED: ProjectionTransaction._trigger_closed,
    EventType.VOUCHER_DELIVERED: ProjectionTransaction._delivery_outcome,
    EventType.DELIVERY_FAILED: ProjectionTransaction._delivery_outcome,
    EventType.FRAUD_REVIEW_RECORDED: ProjectionTransaction._fraud_review_recorded,
    EventType.PRODUCT_UPSERTED: ProjectionTransaction._product_upserted,
    EventType.CUSTOMER_ATTRIBUTES_DECLARED: ProjectionTransaction._customer_attributes_declared,
    EventType.API_KEY_ISSUED: ProjectionTransaction._api_key_issued,
    EventType.API_KEY_REVOKED: ProjectionTransaction._api_key_revoked,
}
