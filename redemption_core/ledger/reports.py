"""Read-only views of the ledger for the CLI: tail, stats, and code export."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from redemption_core.domain.events import Event
from redemption_core.domain.parsing import iso
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row


def event_to_dict(event: Event) -> dict[str, Any]:
    document: dict[str, Any] = {
        "seq": event.seq,
        "event_id": event.event_id,
        "event_type": str(event.event_type),
        "occurred_at": iso(event.occurred_at),
        "recorded_at": iso(event.recorded_at) if event.recorded_at else None,
    }
    for name in (
        "campaign_id", "voucher_id", "customer_id", "order_id", "channel", "redemption_id",
        "idempotency_key", "device_hash", "ip_hash", "payment_hash", "store_id", "staff_id",
        "sales_channel",
    ):  # fmt: skip
        value = getattr(event, name)
        if value is not None:
            document[name] = value
    document["payload"] = event.payload
    return document


def tail(db: sqlite3.Connection, count: int) -> list[Event]:
    rows = db.execute(f"{SELECT_EVENT} ORDER BY seq DESC LIMIT ?", (count,)).fetchall()
    return [event_from_row(row) for row in reversed(rows)]


def stats(db: sqlite3.Connection) -> dict[str, Any]:
    """Headline numbers, read in one snapshot."""
    db.execute("BEGIN")
    try:
        by_type = dict(
            db.execute("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall()
        )
        last = db.execute(
            "SELECT max(seq), min(occurred_at), max(occurred_at) FROM events"
        ).fetchone()
        rejections = dict(
            db.execute(
                "SELECT json_extract(r.value, '$.code'), count(*) FROM events,"
                " json_each(events.payload, '$.reasons') AS r"
                " WHERE event_type = 'redemption_rejected' GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
        )
        campaigns = [
            {
                "campaign_id": row[0],
                "status": row[1],
                "currency": json.loads(row[2])["currency"],
                "vouchers": row[3],
                "redemptions": row[4],
                "discount_given": row[5],
            }
            for row in db.execute(
                "SELECT campaign_id, status, definition, vouchers, redemptions, budget_used"
                " FROM campaigns ORDER BY campaign_id"
            )
        ]
        live = db.execute(
            "SELECT count(*), count(rolled_back_at), coalesce(sum(CASE WHEN rolled_back_at IS NULL"
            " THEN discount END), 0), coalesce(sum(CASE WHEN rolled_back_at IS NULL THEN"
            " gift_amount END), 0) FROM redemptions"
        ).fetchone()
    finally:
        db.execute("COMMIT")
    return {
        "events": sum(by_type.values()),
        "last_seq": last[0] or 0,
        "first_event_at": last[1],
        "last_event_at": last[2],
        "events_by_type": by_type,
        "redemptions": live[0],
        "rolled_back": live[1],
        "discount_given_net": live[2],
        "gift_amount_used_net": live[3],
        "rejections_by_reason": rejections,
        "campaigns": campaigns,
    }


def voucher_rows(db: sqlite3.Connection, campaign_id: str) -> Iterator[dict[str, Any]]:
    cursor = db.execute(
        "SELECT code, voucher_id, holder_id, disabled, published_at, accepted_at, redemptions,"
        " gift_balance FROM vouchers WHERE campaign_id = ? ORDER BY rowid",
        (campaign_id,),
    )
    for row in cursor:
        yield {
            "code": row[0],
            "voucher_id": row[1],
            "customer_id": row[2] or "",
            "status": "disabled" if row[3] else "active",
            "published_at": row[4] or "",
            "accepted_at": row[5] or "",
            "redemptions": row[6],
            "gift_balance": "" if row[7] is None else row[7],
        }
