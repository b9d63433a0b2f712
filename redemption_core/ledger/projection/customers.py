"""What customer, consent, order and segment events do to the projection."""

from __future__ import annotations

from redemption_core.domain.events import Event
from redemption_core.domain.parsing import iso
from redemption_core.ledger.projection.base import (
    CUSTOMER_UPDATABLE,
    ProjectionBase,
)
from redemption_core.ledger.rows import dumps


class CustomerProjection(ProjectionBase):
    def _customer_created(self, event: Event) -> None:
        payload = event.payload
        consent = payload.get("consent", {})
        self._db.execute(
            "INSERT INTO customers (customer_id, signup_at, birthday, anniversary, attributes,"
            " metadata, email_hash, email_masked, phone_hash, phone_masked, consent_email,"
            " consent_sms, consent_push) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.customer_id,
                payload.get("signup_at") or iso(event.occurred_at),
                payload.get("birthday"),
                payload.get("anniversary"),
                dumps(payload.get("attributes", {})),
                dumps(payload.get("metadata", {})),
                payload.get("email_hash"),
                payload.get("email_masked"),
                payload.get("phone_hash"),
                payload.get("phone_masked"),
                int(bool(consent.get("email"))),
                int(bool(consent.get("sms"))),
                int(bool(consent.get("push"))),
            ),
        )
        self._customer_version(event)
        for channel, granted in consent.items():
            self._consent_change(event, channel, granted)

    def _customer_updated(self, event: Event) -> None:
        payload = event.payload
        changes = {key: payload[key] for key in CUSTOMER_UPDATABLE if key in payload}
        if not changes:
            return
        columns = ", ".join(f"{key} = ?" for key in changes)
        values = [
            dumps(v) if key in ("attributes", "metadata") else v for key, v in changes.items()
        ]
        self._db.execute(
            f"UPDATE customers SET {columns} WHERE customer_id = ?", (*values, event.customer_id)
        )
        if "attributes" in changes:
            self._customer_version(event)

    def _customer_version(self, event: Event) -> None:
        self._db.execute(
            "INSERT INTO customer_versions VALUES (?, ?, ?, ?)",
            (
                event.event_id,
                event.customer_id,
                iso(event.occurred_at),
                dumps(event.payload.get("attributes", {})),
            ),
        )

    def _consent_changed(self, event: Event) -> None:
        channel = event.payload["channel"]
        granted = event.payload["granted"]
        if channel not in ("email", "sms", "push"):
            raise ValueError(f"unknown consent channel {channel!r}")
        self._db.execute(
            f"UPDATE customers SET consent_{channel} = ? WHERE customer_id = ?",
            (int(bool(granted)), event.customer_id),
        )
        self._consent_change(event, channel, granted)

    def _consent_change(self, event: Event, channel: str, granted: bool) -> None:
        self._db.execute(
            "INSERT INTO consent_changes VALUES (?, ?, ?, ?, ?)",
            (
                f"{event.event_id}:{channel}",
                event.customer_id,
                channel,
                iso(event.occurred_at),
                int(bool(granted)),
            ),
        )

    def _order_recorded(self, event: Event) -> None:
        # Written behind, like redemptions: orders come in large batches (see _flush_projection).
        payload = event.payload
        at = iso(event.occurred_at)
        self._pending_order_ids.add(event.order_id or "")
        self._order_rows.append(
            (
                event.order_id,
                event.customer_id,
                payload["amount"],
                payload["currency"],
                event.store_id,
                event.sales_channel,
                at,
            )
        )
        self._order_line_rows.extend(
            (
                event.order_id,
                line,
                event.customer_id,
                item["product_id"],
                item.get("category"),
                item["quantity"],
                item["quantity"] * item["unit_price"],
                at,
            )
            for line, item in enumerate(payload.get("items", ()))
        )
        if event.customer_id is not None:
            stats = self._customer_orders.get(event.customer_id)
            if stats is None:
                self._customer_orders[event.customer_id] = [1, payload["amount"], at, at]
            else:
                stats[0] += 1
                stats[1] += payload["amount"]
                stats[2] = min(stats[2], at)
                stats[3] = max(stats[3], at)

    def _order_refunded(self, event: Event) -> None:
        self._flush_for_order(event.order_id or "")  # the order's row must be written
        amount = event.payload["amount"]
        self._db.execute(
            "UPDATE orders SET refunded = refunded + ? WHERE order_id = ?", (amount, event.order_id)
        )
        self._db.execute(
            "INSERT INTO order_refunds VALUES (?, ?, ?, ?)",
            (event.event_id, event.order_id, amount, iso(event.occurred_at)),
        )
        if event.customer_id is not None:
            self._db.execute(
                "UPDATE customers SET spend = spend - ? WHERE customer_id = ?",
                (amount, event.customer_id),
            )

    def _order_cancelled(self, event: Event) -> None:
        self._flush_projection()
        db = self._db
        row = db.execute(
            "SELECT amount - refunded FROM orders WHERE order_id = ?", (event.order_id,)
        ).fetchone()
        db.execute(
            "UPDATE orders SET cancelled_at = ? WHERE order_id = ?",
            (iso(event.occurred_at), event.order_id),
        )
        if event.customer_id is not None and row is not None:
            # First and last order dates come back from the orders that still stand.
            db.execute(
                "UPDATE customers SET orders = orders - 1, spend = spend - :net,"
                " first_order_at = (SELECT min(ordered_at) FROM orders"
                "   WHERE customer_id = :customer AND cancelled_at IS NULL),"
                " last_order_at = (SELECT max(ordered_at) FROM orders"
                "   WHERE customer_id = :customer AND cancelled_at IS NULL)"
                " WHERE customer_id = :customer",
                {"net": row[0], "customer": event.customer_id},
            )

    def _segment_defined(self, event: Event) -> None:
        definition = event.payload["definition"]
        self._db.execute(
            "INSERT INTO segments VALUES (?, ?)"
            " ON CONFLICT (segment_id) DO UPDATE SET definition = excluded.definition",
            (definition["id"], dumps(definition)),
        )
