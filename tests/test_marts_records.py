"""The console's record marts (dim_vouchers, fct_orders, fct_ledger_timeline) checked against
figures computed here, in plain Python, from the raw ledger events of a small simulation."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from warehouse_helpers import build_warehouse

from redemption_core import money_text
from redemption_core.simulate import SimulationConfig, simulate


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    home = tmp_path_factory.mktemp("records_marts")
    simulate(home, SimulationConfig(customers=150, days=25, seed=11), progress=None)
    # the whole project: the new marts' tests reach into marts beyond their own lineage
    warehouse = build_warehouse(home)
    with sqlite3.connect(home / "ledger.sqlite") as ledger:
        ledger.row_factory = sqlite3.Row
        events = [dict(row) for row in ledger.execute("SELECT * FROM events ORDER BY seq")]
    for event in events:
        event["payload"] = json.loads(event["payload"])
    return events, warehouse


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as db:
        return db.execute(sql).fetchall()


def test_dim_vouchers_has_every_created_voucher_with_its_holder_and_redemptions(
    simulated: tuple[list[dict[str, Any]], Path],
) -> None:
    events, warehouse = simulated
    created = {e["voucher_id"]: e for e in events if e["event_type"] == "voucher_created"}
    holders = {
        e["voucher_id"]: e["customer_id"] for e in events if e["event_type"] == "voucher_published"
    }
    succeeded = Counter(
        e["voucher_id"] for e in events if e["event_type"] == "redemption_succeeded"
    )
    rolled_back = Counter(
        e["voucher_id"] for e in events if e["event_type"] == "redemption_rolled_back"
    )

    rows = query(
        warehouse,
        "SELECT voucher_id, voucher_code, customer_id, redemptions, status, voucher_kind "
        "FROM marts.dim_vouchers",
    )

    assert {row[0] for row in rows} == set(created)
    for voucher_id, code, holder, redemptions, status, kind in rows:
        assert code == created[voucher_id]["payload"]["code"]
        assert holder == holders.get(voucher_id)
        assert redemptions == succeeded[voucher_id] - rolled_back[voucher_id]
        if kind == "unique" and redemptions >= 1:
            assert status in ("redeemed", "disabled")
    assert {row[4] for row in rows} <= {"active", "redeemed", "expired", "disabled"}
    assert any(row[4] == "redeemed" for row in rows)


def test_fct_orders_has_every_order_with_its_refunds_and_the_vouchers_used_on_it(
    simulated: tuple[list[dict[str, Any]], Path],
) -> None:
    events, warehouse = simulated
    orders = {e["order_id"]: e for e in events if e["event_type"] == "order_recorded"}
    refunded = Counter()
    for e in events:
        if e["event_type"] == "order_refunded":
            refunded[e["order_id"]] += e["payload"]["amount"]
    cancelled = {e["order_id"] for e in events if e["event_type"] == "order_cancelled"}
    codes: dict[str, list[str]] = {}
    for e in events:
        if e["event_type"] == "redemption_succeeded" and e["order_id"] in orders:
            codes.setdefault(e["order_id"], []).append(e["payload"]["code"])

    rows = query(
        warehouse,
        "SELECT order_id, customer_id, amount, refunded_amount, is_cancelled, voucher_codes "
        "FROM marts.fct_orders",
    )

    assert {row[0] for row in rows} == set(orders)
    for order_id, customer_id, amount, refunded_amount, is_cancelled, voucher_codes in rows:
        assert customer_id == orders[order_id]["customer_id"]
        assert amount == orders[order_id]["payload"]["amount"]
        assert refunded_amount == refunded[order_id]
        assert is_cancelled == (order_id in cancelled)
        assert sorted(voucher_codes) == sorted(codes.get(order_id, []))
    assert sum(1 for row in rows if row[5]) == len(codes) > 0


def test_fct_ledger_timeline_has_one_row_per_event_and_says_what_happened(
    simulated: tuple[list[dict[str, Any]], Path],
) -> None:
    events, warehouse = simulated
    by_seq = {e["seq"]: e for e in events}

    rows = query(
        warehouse,
        "SELECT event_seq, event_id, event_type, customer_id, detail "
        "FROM marts.fct_ledger_timeline",
    )

    assert len(rows) == len(events)
    for seq, event_id, event_type, customer_id, detail in rows:
        event = by_seq[seq]
        assert (event_id, event_type, customer_id) == (
            event["event_id"],
            event["event_type"],
            event["customer_id"],
        )
        payload = event["payload"]
        if event_type == "offer_skipped":
            assert detail == f"skipped: {payload['reason']}"
        elif event_type == "redemption_rejected":
            assert detail == "rejected: " + ", ".join(r["code"] for r in payload["reasons"])
        elif event_type == "redemption_succeeded" and not payload.get("gift_amount"):
            order = payload["order"]
            assert detail == (
                f"redeemed: discount {money_text(payload['discount'], payload['currency'])} "
                f"on order {money_text(order['amount'], order['currency'])}"
            )
        elif event_type == "delivery_failed" and payload.get("attempts", 0) > 1:
            assert detail.startswith(f"delivery failed after {payload['attempts']} attempts")
    assert all(row[4] for row in rows)
