"""What distribution events (offers, audiences, triggers, deliveries, settings) and fraud
reviews do to the projection."""

from __future__ import annotations

from redemption_core.domain.events import Event, EventType
from redemption_core.domain.invariants import HELD_OUT, NOT_SENT, PUBLISHED, SKIPPED
from redemption_core.domain.parsing import iso
from redemption_core.ledger.projection.base import (
    ProjectionBase,
)
from redemption_core.ledger.rows import dumps


class DistributionProjection(ProjectionBase):
    def _frequency_cap_set(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO settings VALUES ('frequency_cap', ?)"
            " ON CONFLICT DO UPDATE SET value = excluded.value",
            (dumps(event.payload),),
        )

    def _audience(self, event: Event, outcome: str, reason: str | None) -> None:
        if event.payload.get("source") == "promotion":
            self._db.execute(
                "INSERT INTO audience VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.campaign_id,
                    event.customer_id,
                    event.voucher_id or "",
                    outcome,
                    reason,
                    iso(event.occurred_at),
                ),
            )

    def _fraud_review_recorded(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT OR REPLACE INTO fraud_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payload["flag_id"],
                payload["entity_type"],
                payload["entity_id"],
                payload["decision"],
                payload["reviewer"],
                payload.get("note", ""),
                event.event_id,
                iso(event.occurred_at),
            ),
        )

    def _customer_held_out(self, event: Event) -> None:
        self._audience(event, HELD_OUT, None)

    def _offer_skipped(self, event: Event) -> None:
        if event.voucher_id is None:
            self._audience(event, SKIPPED, event.payload["reason"])
            return
        # A voucher published to the customer and then not sent (no consent, no contact): it
        # stays theirs, and neither a resume nor a retry sends it.
        reason = event.payload["reason"]
        if event.payload.get("source") == "promotion":
            self._db.execute(
                "UPDATE audience SET outcome = ?, reason = ? WHERE campaign_id = ?"
                " AND customer_id = ? AND voucher_id = ?",
                (NOT_SENT, reason, event.campaign_id, event.customer_id, event.voucher_id),
            )
        self._db.execute(
            "INSERT INTO deliveries SELECT ?1, ?2, ?3, coalesce(?4, (SELECT channel FROM offers"
            " WHERE voucher_id = ?1), ''), ?5, 0, ?6, ?7 WHERE true ON CONFLICT DO UPDATE SET"
            " status = excluded.status, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at",
            (
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.channel,
                NOT_SENT,
                reason,
                iso(event.occurred_at),
            ),
        )

    def _offer_published(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO offers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.channel,
                payload["source"],
                payload.get("trigger_id"),
                iso(event.occurred_at),
            ),
        )
        self._audience(event, PUBLISHED, None)

    def _trigger_matched(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO triggers (trigger_id, campaign_id, customer_id, kind, matched_at, status)"
            " VALUES (?, ?, ?, ?, ?, 'pending')",
            (
                payload["trigger_id"],
                event.campaign_id,
                event.customer_id,
                payload["trigger"],
                iso(event.occurred_at),
            ),
        )

    def _trigger_closed(self, event: Event) -> None:
        payload = event.payload
        failed = event.event_type is EventType.TRIGGER_FAILED
        status = "failed" if failed else payload.get("outcome", "completed")
        self._db.execute(
            "UPDATE triggers SET status = ?, reason = ?, voucher_id = ?, closed_at = ?"
            " WHERE trigger_id = ?",
            (
                status,
                payload.get("reason"),
                event.voucher_id,
                iso(event.occurred_at),
                payload["trigger_id"],
            ),
        )

    def _delivery_outcome(self, event: Event) -> None:
        payload = event.payload
        delivered = event.event_type is EventType.VOUCHER_DELIVERED
        self._db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " channel = excluded.channel, status = excluded.status,"
            " attempts = deliveries.attempts + excluded.attempts,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at",
            (
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.channel,
                "delivered" if delivered else "failed",
                payload["attempts"],
                None if delivered else payload.get("error"),
                iso(event.occurred_at),
            ),
        )
