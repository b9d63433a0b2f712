"""Read-only views of the ledger for the CLI: tail, stats, and code export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from redemption_core.domain.events import Event
from redemption_core.domain.parsing import iso
from redemption_core.ledger.rows import SELECT_EVENT, event_from_row
from redemption_core.ledger.store import LedgerStore


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


def tail(store: LedgerStore, count: int) -> list[Event]:
    with store.read() as tx:
        rows = tx.query(f"{SELECT_EVENT} ORDER BY seq DESC LIMIT ?", (count,))
    return [event_from_row(row) for row in reversed(rows)]


def stats(store: LedgerStore) -> dict[str, Any]:
    """Headline numbers, read in one snapshot."""
    with store.read() as tx:
        by_type = dict(
            tx.query("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1", ())
        )
        [last] = tx.query("SELECT max(seq), min(occurred_at), max(occurred_at) FROM events", ())
        rejections = dict(tx.query(tx.dialect.rejection_reason_counts(), ()))
        campaigns = [
            {
                "campaign_id": row[0],
                "status": row[1],
                "currency": json.loads(row[2])["currency"],
                "vouchers": row[3],
                "redemptions": row[4],
                "discount_given": row[5],
            }
            for row in tx.query(
                "SELECT campaign_id, status, definition, vouchers, redemptions, budget_used"
                " FROM campaigns ORDER BY campaign_id",
                (),
            )
        ]
        # int(): PostgreSQL's sum of bigints is a numeric (a Decimal in Python).
        [live] = tx.query(
            "SELECT count(*), count(rolled_back_at), coalesce(sum(CASE WHEN rolled_back_at IS NULL"
            " THEN discount END), 0), coalesce(sum(CASE WHEN rolled_back_at IS NULL THEN"
            " gift_amount END), 0) FROM redemptions",
            (),
        )
    live = [int(value) for value in live]
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


def voucher_rows(store: LedgerStore, campaign_id: str) -> Iterator[dict[str, Any]]:
    """A campaign's vouchers in the order they were created, read a page at a time."""
    after = 0
    while True:
        with store.read() as tx:
            page = tx.query(
                "SELECT code, voucher_id, holder_id, disabled, published_at, accepted_at,"
                " redemptions, gift_balance, rowid FROM vouchers WHERE campaign_id = ?"
                " AND rowid > ? ORDER BY rowid LIMIT 10000",
                (campaign_id, after),
            )
        if not page:
            return
        after = page[-1][8]
        yield from (_voucher_document(row) for row in page)


def _voucher_document(row: Any) -> dict[str, Any]:
    return {
        "code": row[0],
        "voucher_id": row[1],
        "customer_id": row[2] or "",
        "status": "disabled" if row[3] else "active",
        "published_at": row[4] or "",
        "accepted_at": row[5] or "",
        "redemptions": row[6],
        "gift_balance": "" if row[7] is None else row[7],
    }
