"""A tiny builder of lake-schema event rows for the fraud tests: each row gets valid defaults,
a test sets only the fields its point is about."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from models_ml.data import EVENT_COLUMNS, LAKE_SCHEMA

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC


class Events:
    """Rows appended in seq order; `at` is minutes after T0 (or a datetime)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self, event_type: str, at: float | datetime = 0, payload: dict | None = None, **ids: Any
    ) -> str:
        moment = at if isinstance(at, datetime) else T0 + timedelta(minutes=at)
        seq = len(self.rows) + 1
        row = {name: None for name in EVENT_COLUMNS}
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        row |= {
            "seq": seq,
            "event_id": f"evt_{seq:028x}",
            "event_type": event_type,
            "occurred_at": stamp,
            "recorded_at": stamp,
            "payload": json.dumps(payload or {}),
            "event_date": stamp[:10],
            **ids,
        }
        self.rows.append(row)
        return row["event_id"]

    def validate(
        self, at: float | datetime = 0, code: str = "GUESS", valid: bool = False, **ids: Any
    ) -> str:
        reasons = (
            [] if valid else [{"code": "resource_not_found", "message": "no voucher has this code"}]
        )
        payload = {
            "code": code,
            "valid": valid,
            "reasons": reasons,
            "discount": 0,
            "order_amount": 2000,
        }
        return self.add("voucher_validated", at, payload, **ids)

    def redeem(
        self,
        at: float | datetime = 0,
        code: str = "HAPPY5",
        ok: bool = True,
        amount: int = 2400,
        **ids: Any,
    ) -> str:
        payload: dict[str, Any] = {
            "code": code,
            "order": {"id": ids.get("order_id"), "amount": amount},
            "discount": 500 if ok else 0,
        }
        if not ok:
            payload["reasons"] = [{"code": "order_below_minimum", "message": "below"}]
        kind = "redemption_succeeded" if ok else "redemption_rejected"
        return self.add(kind, at, payload, **ids)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=LAKE_SCHEMA, orient="row")
