"""Customer, delivery and monitoring marts, checked against figures computed here, in plain
Python, from the raw ledger events of a small simulated business."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from warehouse_helpers import build_warehouse, run_dbt

from redemption_core.simulate import SimulationConfig, simulate


@dataclass(frozen=True)
class Business:
    events: list[dict[str, Any]]
    warehouse: Path
    as_of: datetime  # the latest occurred_at, as the marts measure "now"

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] in types]

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as db:
            return db.execute(sql).fetchall()

    def query_dicts(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as db:
            cursor = db.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)


def read_events(ledger: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM events ORDER BY seq").fetchall()
    events = []
    for row in rows:
        event = dict(row)
        event["payload"] = json.loads(event["payload"])
        event["at"] = parse_time(event["occurred_at"])
        events.append(event)
    return events


def interpolated_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture(scope="module")
def business(tmp_path_factory: pytest.TempPathFactory) -> Business:
    home = tmp_path_factory.mktemp("marts")
    simulate(home, SimulationConfig(customers=400, days=40, seed=6), progress=None)
    warehouse = build_warehouse(home)
    events = read_events(home / "ledger.sqlite")
    return Business(events, warehouse, max(e["at"] for e in events))


def delivery_runs(business: Business) -> list[list[dict[str, Any]]]:
    """Attempts grouped into sends: a run starts at each attempt numbered 1, per voucher."""
    runs: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for attempt in business.of_type("delivery_attempted"):
        if attempt["payload"]["attempt"] == 1:
            runs[attempt["voucher_id"]].append([])
        runs[attempt["voucher_id"]][-1].append(attempt)
    return [run for per_voucher in runs.values() for run in per_voucher]


def test_delivery_counts_per_channel_match_the_ledger(business: Business) -> None:
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    for run in delivery_runs(business):
        counts = expected[run[0]["channel"]]
        counts["attempts"] += len(run)
        counts["messages"] += 1
        final = run[-1]["payload"]["outcome"]
        counts["delivered" if final == "delivered" else "failed"] += 1

    rows = business.query(
        "select channel, sum(attempts), sum(messages_attempted), sum(delivered), sum(failed)"
        " from marts.fct_delivery_performance group by channel"
    )

    actual = {
        channel: Counter(attempts=a, messages=m, delivered=d, failed=f)
        for channel, a, m, d, f in rows
    }
    assert actual == {channel: counts for channel, counts in expected.items()}


def test_delivered_and_failed_in_the_mart_agree_with_the_outcome_events(
    business: Business,
) -> None:
    outcomes = Counter(
        e["event_type"]
        for e in business.of_type("voucher_delivered", "delivery_failed")
        if e["payload"]["attempts"]
    )

    ((delivered, failed),) = business.query(
        "select sum(delivered), sum(failed) from marts.fct_delivery_performance"
    )

    assert (delivered, failed) == (outcomes["voucher_delivered"], outcomes["delivery_failed"])


def test_latency_percentiles_of_the_busiest_day_match_the_attempts(business: Business) -> None:
    latencies: dict[tuple[str, str, date], list[float]] = defaultdict(list)
    for run in delivery_runs(business):
        key = (run[0]["channel"], run[0]["payload"]["provider"], run[0]["at"].date())
        latencies[key] += [attempt["payload"]["latency_ms"] for attempt in run]
    busiest = max(latencies, key=lambda key: len(latencies[key]))
    channel, provider, day = busiest

    ((p50, p95, p99, retries, attempts),) = business.query(
        "select latency_p50_ms, latency_p95_ms, latency_p99_ms, retries, attempts"
        " from marts.fct_delivery_performance"
        f" where channel = '{channel}' and provider = '{provider}' and delivery_date = '{day}'"
    )

    values = latencies[busiest]
    runs = [
        run
        for run in delivery_runs(business)
        if (run[0]["channel"], run[0]["payload"]["provider"], run[0]["at"].date()) == busiest
    ]
    assert attempts == len(values)
    assert p50 == pytest.approx(interpolated_percentile(values, 0.50), abs=1e-3)
    assert p95 == pytest.approx(interpolated_percentile(values, 0.95), abs=1e-3)
    assert p99 == pytest.approx(interpolated_percentile(values, 0.99), abs=1e-3)
    assert retries == sum(len(run) - 1 for run in runs)


def test_orders_and_net_spend_per_customer_match_the_ledger(business: Business) -> None:
    orders = {e["order_id"]: e for e in business.of_type("order_recorded")}
    refunded = Counter()
    for refund in business.of_type("order_refunded"):
        refunded[refund["order_id"]] += refund["payload"]["amount"]
    cancelled = {e["order_id"] for e in business.of_type("order_cancelled")}
    expected_orders: Counter[str] = Counter()
    expected_spend: Counter[str] = Counter()
    last_order: dict[str, datetime] = {}
    for order_id, order in orders.items():
        customer = order["customer_id"]
        if customer is None or order_id in cancelled:
            continue
        expected_orders[customer] += 1
        expected_spend[customer] += order["payload"]["amount"] - refunded[order_id]
        last_order[customer] = max(last_order.get(customer, order["at"]), order["at"])

    rows = business.query(
        "select customer_id, orders, lifetime_value, recency_days from marts.dim_customers"
    )

    assert refunded and cancelled, "the simulation should refund and cancel a few orders"
    actual = {customer: (n, spend, recency) for customer, n, spend, recency in rows}
    for customer, (n, spend, recency) in actual.items():
        assert n == expected_orders[customer], customer
        assert spend == expected_spend[customer], customer
        if customer in last_order:
            assert recency == (business.as_of - last_order[customer]).days, customer
        else:
            assert recency is None, customer


def test_every_customer_with_orders_has_rfm_scores_and_the_most_recent_score_five(
    business: Business,
) -> None:
    rows = business.query_dicts(
        "select customer_id, orders, recency_days, recency_score, frequency_score,"
        " monetary_score, rfm_segment from marts.dim_customers"
    )

    with_orders = [row for row in rows if row["orders"] > 0]
    assert all(
        row["recency_score"] and row["frequency_score"] and row["monetary_score"]
        for row in with_orders
    )
    freshest = min(row["recency_days"] for row in with_orders)
    assert {row["recency_score"] for row in with_orders if row["recency_days"] == freshest} == {5}
    assert all(row["rfm_segment"] == "no_orders" for row in rows if row["orders"] == 0)


def test_offers_received_delivered_and_accepted_per_customer_match_the_ledger(
    business: Business,
) -> None:
    published = {e["voucher_id"]: e["customer_id"] for e in business.of_type("voucher_published")}
    delivered = {e["voucher_id"] for e in business.of_type("voucher_delivered")}
    accepted = {e["voucher_id"] for e in business.of_type("voucher_accepted")}
    expected: dict[str, tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    for voucher, customer in published.items():
        received, got, took = expected[customer]
        expected[customer] = (
            received + 1,
            got + (voucher in delivered),
            took + (voucher in accepted),
        )

    rows = business.query(
        "select customer_id, offers_received, offers_delivered, offers_accepted"
        " from marts.dim_customers where offers_received > 0"
    )

    assert {customer: (r, d, a) for customer, r, d, a in rows} == dict(expected)


def test_consent_is_the_latest_given_per_channel_and_contacts_stay_masked(
    business: Business,
) -> None:
    consent: dict[str, dict[str, bool]] = {}
    for event in business.of_type("customer_created", "consent_changed"):
        if event["event_type"] == "customer_created":
            given = event["payload"].get("consent", {})
            consent[event["customer_id"]] = {
                c: bool(given.get(c)) for c in ("email", "sms", "push")
            }
        else:
            consent[event["customer_id"]][event["payload"]["channel"]] = event["payload"]["granted"]

    rows = business.query_dicts("select * from marts.dim_customers")

    for row in rows:
        assert consent[row["customer_id"]] == {
            "email": row["has_email_consent"],
            "sms": row["has_sms_consent"],
            "push": row["has_push_consent"],
        }
        raw_address = f"{row['customer_id']}@example.com"
        assert raw_address not in {str(value) for value in row.values()}
        assert row["email_masked"] is None or "***" in row["email_masked"]


def test_the_wallet_holds_exactly_the_published_vouchers_still_usable(business: Business) -> None:
    definitions = {
        e["campaign_id"]: e["payload"]["definition"] for e in business.of_type("campaign_created")
    }
    standing: Counter[str] = Counter()
    for event in business.of_type("redemption_succeeded"):
        standing[event["voucher_id"]] += 1
    for event in business.of_type("redemption_rolled_back"):
        standing[event["voucher_id"]] -= 1
    expected = {}
    for event in business.of_type("voucher_published"):
        definition = definitions[event["campaign_id"]]
        ends = [parse_time(definition["active_until"])] if definition.get("active_until") else []
        valid_days = (definition.get("rules") or {}).get("valid_days_after_publication")
        if valid_days is not None:
            ends.append(event["at"] + timedelta(days=valid_days))
        expires_at = min(ends) if ends else None
        limit = (definition.get("limits") or {}).get("per_voucher") or 1
        if (expires_at is None or expires_at > business.as_of) and standing[
            event["voucher_id"]
        ] < limit:
            expected[event["voucher_id"]] = (event["customer_id"], event["payload"]["code"])

    rows = business.query(
        "select voucher_id, customer_id, voucher_code from marts.fct_customer_wallet"
    )
    summary = dict(business.query("select customer_id, active_vouchers from marts.dim_customers"))

    assert expected, "a few vouchers should still be usable at the end of the simulation"
    assert {voucher: (customer, code) for voucher, customer, code in rows} == expected
    held = Counter(customer for customer, _ in expected.values())
    assert {c: n for c, n in summary.items() if n} == dict(held)


def test_pending_triggers_are_the_matched_ones_never_closed(business: Business) -> None:
    matched = {e["payload"]["trigger_id"]: e["at"] for e in business.of_type("trigger_matched")}
    closed = {
        e["payload"]["trigger_id"] for e in business.of_type("trigger_completed", "trigger_failed")
    }
    expected = {
        trigger: (business.as_of - at).total_seconds() / 3600
        for trigger, at in matched.items()
        if trigger not in closed
    }

    rows = dict(business.query("select trigger_id, age_hours from marts.fct_pending_triggers"))

    assert matched, "the autopilots should match triggers"
    assert rows.keys() == expected.keys()
    for trigger, age in expected.items():
        assert rows[trigger] == pytest.approx(age, abs=1e-3)


def test_campaign_health_reports_the_last_delivery_and_a_known_status(
    business: Business,
) -> None:
    last_delivered: dict[str, datetime] = {}
    for event in business.of_type("voucher_delivered"):
        last_delivered[event["campaign_id"]] = max(
            last_delivered.get(event["campaign_id"], event["at"]), event["at"]
        )

    rows = business.query_dicts("select * from marts.fct_campaign_health")

    assert {row["campaign_id"] for row in rows} == {
        e["campaign_id"] for e in business.of_type("campaign_created")
    }
    for row in rows:
        assert row["last_delivered_at"] == last_delivered.get(row["campaign_id"])
        assert row["health_status"] in {"ok", "warning", "failing"}
        assert row["status_reason"]


def test_system_health_counts_the_ledger_and_its_error_rates(business: Business) -> None:
    attempts = business.of_type("redemption_succeeded", "redemption_rejected")
    week = [e for e in attempts if e["at"] > business.as_of - timedelta(days=7)]
    rejected = sum(e["event_type"] == "redemption_rejected" for e in week)

    (row,) = business.query_dicts("select * from marts.fct_system_health")

    assert row["ledger_events"] == len(business.events)
    assert row["max_event_seq"] == max(e["seq"] for e in business.events)
    assert row["ledger_high_water"] == row["max_event_seq"]
    assert row["lag_events"] == 0
    assert row["missing_seqs"] == 0
    assert row["as_of"] == business.as_of
    assert row["redemption_attempts_7d"] == len(week)
    assert row["redemption_rejection_rate_7d"] == pytest.approx(rejected / len(week))


def test_events_missing_from_the_warehouse_are_counted_as_sequence_gaps(
    business: Business, tmp_path: Path
) -> None:
    """Seqs are never reused, so seqs absent between the lowest and the highest are events the
    extract missed: three taken out of the raw layer show up as three missing."""
    warehouse = tmp_path / "gaps.duckdb"
    shutil.copyfile(business.warehouse, warehouse)
    middle = sorted(e["seq"] for e in business.events)[len(business.events) // 2]
    with duckdb.connect(str(warehouse)) as db:
        db.execute("DELETE FROM raw.ledger_events WHERE seq IN (?, ?, ?)", [2, middle, middle + 7])
    run = run_dbt(tmp_path, warehouse, "run", "--select", "int_ledger_sequences_checked")
    assert run.returncode == 0, run.stdout[-2000:]

    with duckdb.connect(str(warehouse), read_only=True) as db:
        (row,) = db.execute(
            "SELECT ledger_events, missing_seqs FROM intermediate.int_ledger_sequences_checked"
        ).fetchall()
    assert row == (len(business.events) - 3, 3)
