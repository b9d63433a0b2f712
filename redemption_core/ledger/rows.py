"""Events as database rows and back, the same for every backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from redemption_core.domain.events import COLUMNS, Event, EventType
from redemption_core.domain.parsing import from_iso, iso

INSERT_EVENT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
SELECT_EVENT = f"SELECT seq, {', '.join(COLUMNS)} FROM events"


def dumps(value: Any) -> str:
    # orjson: compact UTF-8 JSON, several times faster than json.dumps on the hot path.
    return orjson.dumps(value).decode()


def event_row(event: Event) -> tuple[Any, ...]:
    occurred = iso(event.occurred_at)
    return (
        event.event_id,
        str(event.event_type),
        occurred,
        iso(event.recorded_at) if event.recorded_at is not None else occurred,
        event.campaign_id,
        event.voucher_id,
        event.customer_id,
        event.order_id,
        event.channel,
        event.redemption_id,
        event.idempotency_key,
        event.device_hash,
        event.ip_hash,
        event.payment_hash,
        event.store_id,
        event.staff_id,
        event.sales_channel,
        dumps(event.payload),
    )


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(
        seq=row[0],
        event_id=row[1],
        event_type=EventType(row[2]),
        occurred_at=from_iso(row[3]),
        recorded_at=from_iso(row[4]),
        campaign_id=row[5],
        voucher_id=row[6],
        customer_id=row[7],
        order_id=row[8],
        channel=row[9],
        redemption_id=row[10],
        idempotency_key=row[11],
        device_hash=row[12],
        ip_hash=row[13],
        payment_hash=row[14],
        store_id=row[15],
        staff_id=row[16],
        sales_channel=row[17],
        payload=orjson.loads(row[18]),
    )
