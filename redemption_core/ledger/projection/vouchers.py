"""What campaign, voucher, hold and redemption events do to the projection."""

from __future__ import annotations

from redemption_core.domain.events import Event
from redemption_core.domain.invariants import rollback_breaches, rollback_reason
from redemption_core.domain.parsing import iso
from redemption_core.ledger.projection.base import (
    OFFER_SOURCES,
    ProjectionBase,
)
from redemption_core.ledger.rows import dumps

ROLLBACK_IDS = ("campaign_id", "voucher_id", "customer_id", "order_id")


class VoucherProjection(ProjectionBase):
    def _main_campaign_created(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO main_campaigns VALUES (?, ?, ?)",
            (definition["id"], definition["name"], dumps(definition)),
        )

    def _campaign_created(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO campaigns (campaign_id, main_campaign_id, definition, status)"
            " VALUES (?, ?, ?, ?)",
            (
                event.campaign_id,
                definition.get("main_campaign"),
                dumps(definition),
                definition["status"],
            ),
        )

    def _campaign_status_changed(self, event: Event) -> None:
        self._counters(event).status = event.payload["status"]

    def _voucher_created(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO vouchers (voucher_id, code, campaign_id, kind, gift_balance, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.voucher_id,
                payload["code"],
                event.campaign_id,
                payload["kind"],
                payload.get("gift_balance"),
                iso(event.occurred_at),
            ),
        )
        self._voucher_contents(event)
        self._counters(event).vouchers += 1

    def _voucher_contents(self, event: Event) -> None:
        """Most vouchers have their campaign's contents; the others are kept apart."""
        applies_to = event.payload.get("applies_to")
        if applies_to is not None:
            self._db.execute(
                "INSERT INTO voucher_contents (voucher_id, applies_to) VALUES (?, ?)",
                (event.voucher_id, dumps(applies_to)),
            )

    def _voucher_published(self, event: Event) -> None:
        if event.payload.get("source") in OFFER_SOURCES:
            self._offer_published(event)
        self._db.execute(
            "UPDATE vouchers SET holder_id = ?, published_at = ?, accepted_at = NULL"
            " WHERE voucher_id = ?",
            (event.customer_id, iso(event.occurred_at), event.voucher_id),
        )

    def _voucher_accepted(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET accepted_at = ? WHERE voucher_id = ?",
            (iso(event.occurred_at), event.voucher_id),
        )

    def _voucher_disabled(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET disabled = 1 WHERE voucher_id = ?", (event.voucher_id,)
        )

    def _voucher_enabled(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET disabled = 0 WHERE voucher_id = ?", (event.voucher_id,)
        )

    def _gift_card_topped_up(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET gift_balance = gift_balance + ? WHERE voucher_id = ?",
            (event.payload["amount"], event.voucher_id),
        )

    def _segment_member_added(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO segment_members VALUES (?, ?) ON CONFLICT DO NOTHING",
            (event.customer_id, event.payload["segment_id"]),
        )

    def _segment_member_removed(self, event: Event) -> None:
        self._db.execute(
            "DELETE FROM segment_members WHERE customer_id = ? AND segment_id = ?",
            (event.customer_id, event.payload["segment_id"]),
        )

    def _validation_hold_created(self, event: Event) -> None:
        self._db.execute(
            "UPDATE vouchers SET held_until = CASE WHEN held_until IS NULL OR held_until < ?"
            " THEN ? ELSE held_until END WHERE voucher_id = ?",
            (event.payload["expires_at"], event.payload["expires_at"], event.voucher_id),
        )
        self._db.execute(
            "INSERT INTO holds (session_id, voucher_id, customer_id, expires_at, device_hash,"
            " ip_hash) VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.payload["session_id"],
                event.voucher_id,
                event.customer_id,
                event.payload["expires_at"],
                event.device_hash,
                event.ip_hash,
            ),
        )

    def _redemption_succeeded(self, event: Event) -> None:
        payload = event.payload
        discount = payload["discount"]
        gift_amount = payload["gift_amount"]
        uses = self._voucher_uses.get(event.voucher_id or "")
        if uses is None:
            self._voucher_uses[event.voucher_id or ""] = [1, gift_amount]
        else:
            uses[0] += 1
            uses[1] += gift_amount
        counters = self._counters(event)
        counters.redemptions += 1
        counters.budget_used += discount
        if event.customer_id is not None:
            key = (event.customer_id, event.campaign_id or "")
            self._customer_uses[key] = self._customer_uses.get(key, 0) + 1
            self._pending_customers.add(event.customer_id)
        self._pending_redemption_ids.add(event.redemption_id or "")
        self._redemption_rows.append(
            (
                event.redemption_id,
                event.voucher_id,
                event.campaign_id,
                event.customer_id,
                event.order_id,
                discount,
                gift_amount,
                iso(event.occurred_at),
                event.store_id,
            )
        )
        if payload.get("session_id") is not None:
            self._db.execute(
                "UPDATE holds SET consumed = 1 WHERE session_id = ?", (payload["session_id"],)
            )

    def _redemption_rolled_back(self, event: Event) -> None:
        # Rollbacks are rare: write what is pending, then give back exactly what the
        # redemption took, once. A rollback that does not match a standing redemption is
        # refused here too (never applied blindly: uses would go below zero and the code
        # could be redeemed forever).
        redemption = self.redemption(event.redemption_id or "")
        rejection = rollback_reason(redemption)
        if rejection is not None:
            raise LookupError(f"rollback of {event.redemption_id!r}: {rejection.message}")
        assert redemption is not None
        ids = {name: getattr(event, name) for name in ROLLBACK_IDS}
        breaches = rollback_breaches(redemption, ids, event.payload)
        if breaches:
            raise ValueError(f"rollback of {event.redemption_id!r}: {breaches[0].message}")
        self._vouchers.clear()  # read-ahead rows (writers side by side) no longer true
        self._voucher_codes.clear()
        db = self._db
        db.execute(
            "UPDATE vouchers SET redemptions = redemptions - 1,"
            " gift_balance = gift_balance + ? WHERE voucher_id = ?",
            (redemption.gift_amount, redemption.voucher_id),
        )
        counters = self._counters(event)
        counters.redemptions -= 1
        counters.budget_used -= redemption.discount
        if redemption.customer_id is not None:
            db.execute(
                "UPDATE customer_campaigns SET redemptions = redemptions - 1"
                " WHERE customer_id = ? AND campaign_id = ?",
                (redemption.customer_id, redemption.campaign_id),
            )
        db.execute(
            "UPDATE redemptions SET rolled_back_at = ?, rollback_cause = ? WHERE redemption_id = ?",
            (iso(event.occurred_at), event.payload.get("cause"), event.redemption_id),
        )
