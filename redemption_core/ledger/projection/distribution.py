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
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
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
            "INSERT INTO fraud_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flag_id)"
            " DO UPDATE SET entity_type = excluded.entity_type, entity_id = excluded.entity_id,"
            " decision = excluded.decision, reviewer = excluded.reviewer, note = excluded.note,"
            " event_id = excluded.event_id, reviewed_at = excluded.reviewed_at",
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
            "INSERT INTO deliveries SELECT :voucher, :campaign, :customer, coalesce(CAST(:channel"
            " AS TEXT), (SELECT channel FROM offers WHERE voucher_id = :voucher), ''), :status, 0,"
            " :error, :at WHERE true ON CONFLICT (voucher_id) DO UPDATE SET"
            " status = excluded.status, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at",
            {
                "voucher": event.voucher_id,
                "campaign": event.campaign_id,
                "customer": event.customer_id,
                "channel": event.channel,
                "status": NOT_SENT,
                "error": reason,
                "at": iso(event.occurred_at),
            },
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
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (voucher_id) DO UPDATE SET"
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
