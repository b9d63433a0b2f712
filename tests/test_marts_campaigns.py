"""Campaign marts against figures computed independently, in Python, from the raw ledger.

A small business is simulated once per module and built into a warehouse with `dbt build`;
each test recomputes a number straight from the SQLite ledger's events (not from the warehouse)
and compares it with the mart.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from warehouse_helpers import build_warehouse

from redemption_core.simulate import SimulationConfig, simulate

WINDOW = timedelta(days=14)  # the default of the dbt var campaign_outcome_window_days
MARGIN = 0.65  # the default of the dbt var campaign_gross_margin
MARTS = (
    "fct_campaign_funnel",
    "fct_campaign_performance",
    "fct_campaign_budget",
    "fct_redemptions",
    "fct_redemption_rejections",
    "dim_campaigns",
)


@dataclass(frozen=True)
class Event:
    event_type: str
    occurred_at: datetime
    event_id: str
    campaign_id: str | None
    voucher_id: str | None
    customer_id: str | None
    order_id: str | None
    redemption_id: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Built:
    events: list[Event]
    warehouse: Path

    def query(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            result = con.sql(sql)
            return [dict(zip(result.columns, row, strict=True)) for row in result.fetchall()]

    def by_campaign(self, table: str) -> dict[str, dict[str, Any]]:
        return {row["campaign_id"]: row for row in self.query(f"select * from {table}")}

    def of_type(self, *types: str) -> list[Event]:
        return [e for e in self.events if e.event_type in types]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    home = tmp_path_factory.mktemp("campaign_marts")
    simulate(home, SimulationConfig(customers=400, days=40, seed=5), progress=None)
    # Only these marts and what they are built from: the module stays quick and does not
    # depend on the rest of the project. Cautious selection leaves out tests that also read
    # models outside the selection.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBT_INDIRECT_SELECTION", "cautious")
        warehouse = build_warehouse(home, select=" ".join(f"+{mart}" for mart in MARTS))
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db:
        rows = db.execute(
            "SELECT event_type, occurred_at, event_id, campaign_id, voucher_id, customer_id,"
            " order_id, redemption_id, payload FROM events ORDER BY seq"
        ).fetchall()
    events = [Event(row[0], _when(row[1]), *row[2:8], json.loads(row[8])) for row in rows]
    return Built(events, warehouse)


def _standing_redemptions(built: Built) -> list[Event]:
    rolled_back = {e.redemption_id for e in built.of_type("redemption_rolled_back")}
    return [e for e in built.of_type("redemption_succeeded") if e.redemption_id not in rolled_back]


def _funnel_totals(built: Built) -> dict[str, dict[str, int]]:
    rows = built.query(
        "select campaign_id, sum(published) as published, sum(delivered) as delivered,"
        " sum(delivery_failed) as delivery_failed, sum(accepted) as accepted,"
        " sum(redeemed) as redeemed, sum(held_out) as held_out,"
        " sum(skipped_no_consent) as skipped_no_consent, sum(skipped) as skipped"
        " from marts.fct_campaign_funnel group by campaign_id"
    )
    return {row.pop("campaign_id"): {k: int(v) for k, v in row.items()} for row in rows}


def test_funnel_counts_per_campaign_match_the_vouchers_in_the_ledger(built: Built) -> None:
    published = Counter(e.campaign_id for e in built.of_type("voucher_published"))
    outcome: dict[str, str] = {}
    for e in built.of_type("voucher_delivered", "delivery_failed"):
        outcome[e.voucher_id or ""] = e.event_type  # the last outcome is the final one
    voucher_campaign = {e.voucher_id: e.campaign_id for e in built.of_type("voucher_published")}
    delivered = Counter(
        voucher_campaign[v] for v, kind in outcome.items() if kind == "voucher_delivered"
    )
    failed = Counter(
        voucher_campaign[v] for v, kind in outcome.items() if kind == "delivery_failed"
    )
    accepted = Counter(
        voucher_campaign[v]
        for v in {e.voucher_id for e in built.of_type("voucher_accepted")}
        if v in voucher_campaign
    )
    redeemed = Counter(
        voucher_campaign[v]
        for v in {e.voucher_id for e in _standing_redemptions(built)}
        if v in voucher_campaign
    )

    funnel = _funnel_totals(built)

    assert published, "the simulation should publish vouchers"
    for campaign_id, count in published.items():
        row = funnel[campaign_id]
        assert row["published"] == count, campaign_id
        assert row["delivered"] == delivered[campaign_id], campaign_id
        assert row["delivery_failed"] == failed[campaign_id], campaign_id
        assert row["accepted"] == accepted[campaign_id], campaign_id
        assert row["redeemed"] == redeemed[campaign_id], campaign_id


def test_funnel_holds_out_and_skips_customers_as_the_distribution_decided(built: Built) -> None:
    held_out = Counter(e.campaign_id for e in built.of_type("customer_held_out"))
    skipped = Counter(e.campaign_id for e in built.of_type("offer_skipped"))
    no_consent = Counter(
        e.campaign_id for e in built.of_type("offer_skipped") if e.payload["reason"] == "no_consent"
    )

    funnel = _funnel_totals(built)

    assert held_out, "the simulation should hold out a control group"
    for campaign_id in set(held_out) | set(skipped):
        assert funnel[campaign_id]["held_out"] == held_out[campaign_id], campaign_id
        assert funnel[campaign_id]["skipped"] == skipped[campaign_id], campaign_id
        assert funnel[campaign_id]["skipped_no_consent"] == no_consent[campaign_id], campaign_id


def test_funnel_days_are_publication_days_and_rates_divide_the_steps(built: Built) -> None:
    rows = built.query(
        "select * from marts.fct_campaign_funnel where channel != 'none' and published > 0"
    )
    days = {(e.campaign_id, e.occurred_at.date()) for e in built.of_type("voucher_published")}

    assert {(r["campaign_id"], r["cohort_date"]) for r in rows} == days
    for row in rows:
        assert row["delivered_per_published"] == pytest.approx(row["delivered"] / row["published"])
        assert row["redeemed_per_published"] == pytest.approx(row["redeemed"] / row["published"])
        if row["accepted"]:
            assert row["redeemed_per_accepted"] == pytest.approx(row["redeemed"] / row["accepted"])
        else:
            assert row["redeemed_per_accepted"] is None


def test_discount_is_net_of_rollbacks_in_performance_budget_and_console(built: Built) -> None:
    given: Counter[str] = Counter()
    for e in built.of_type("redemption_succeeded"):
        given[e.campaign_id or ""] += e.payload["discount"]
    for e in built.of_type("redemption_rolled_back"):
        given[e.campaign_id or ""] -= e.payload["discount"]

    performance = built.by_campaign("marts.fct_campaign_performance")
    budget = built.by_campaign("marts.fct_campaign_budget")
    console = built.by_campaign("marts.dim_campaigns")

    assert built.of_type("redemption_rolled_back"), "the simulation should roll some back"
    for campaign_id in performance:
        assert performance[campaign_id]["attributed_discount"] == given[campaign_id], campaign_id
        assert budget[campaign_id]["budget_used"] == given[campaign_id], campaign_id
        assert console[campaign_id]["discount_net"] == given[campaign_id], campaign_id


def test_attributed_revenue_counts_orders_with_a_standing_redemption_less_refunds(
    built: Built,
) -> None:
    refunded: Counter[str] = Counter()
    for e in built.of_type("order_refunded"):
        refunded[e.order_id or ""] += e.payload["amount"]
    revenue: Counter[str] = Counter()
    orders: dict[str, set[str]] = defaultdict(set)
    for e in _standing_redemptions(built):
        order = e.payload["order"]
        revenue[e.campaign_id or ""] += max(order["amount"] - refunded[order["id"]], 0)
        orders[e.campaign_id or ""].add(order["id"])

    performance = built.by_campaign("marts.fct_campaign_performance")

    for campaign_id, row in performance.items():
        assert row["attributed_revenue"] == revenue[campaign_id], campaign_id
        assert row["attributed_orders"] == len(orders[campaign_id]), campaign_id
        assert row["attributed_net_revenue"] == revenue[campaign_id] - row["attributed_discount"]


@dataclass
class Arm:
    ordered: list[bool]
    revenue: list[int]
    discount: int = 0


def _arms(built: Built) -> dict[str, dict[str, Arm]]:
    """Per campaign with a control group: each arm's customers, measured over their window."""
    as_of = max(e.occurred_at for e in built.events)
    assigned: dict[tuple[str, str], tuple[datetime, str]] = {}
    for e in built.of_type("customer_held_out", "offer_skipped", "voucher_published"):
        if e.event_type == "voucher_published" and e.payload.get("source") not in (
            "promotion",
            "autopilot",
        ):
            continue
        key = (e.campaign_id or "", e.customer_id or "")
        if key not in assigned:
            arm = "control" if e.event_type == "customer_held_out" else "treatment"
            assigned[key] = (e.occurred_at, arm)
    with_control = {campaign for (campaign, _), (_, arm) in assigned.items() if arm == "control"}

    cancelled = {e.order_id for e in built.of_type("order_cancelled")}
    refunded: Counter[str] = Counter()
    for e in built.of_type("order_refunded"):
        refunded[e.order_id or ""] += e.payload["amount"]
    orders_by_customer: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for e in built.of_type("order_recorded"):
        if e.order_id not in cancelled:
            net = max(e.payload["amount"] - refunded[e.order_id or ""], 0)
            orders_by_customer[e.customer_id or ""].append((e.occurred_at, net))
    rolled_back = {
        e.redemption_id: e.payload["discount"] for e in built.of_type("redemption_rolled_back")
    }

    arms: dict[str, dict[str, Arm]] = defaultdict(
        lambda: {"treatment": Arm([], []), "control": Arm([], [])}
    )
    for (campaign_id, customer_id), (at, arm) in assigned.items():
        if campaign_id not in with_control or at + WINDOW > as_of:
            continue
        in_window = [
            net for when, net in orders_by_customer[customer_id] if at < when <= at + WINDOW
        ]
        arms[campaign_id][arm].ordered.append(bool(in_window))
        arms[campaign_id][arm].revenue.append(sum(in_window))
        arms[campaign_id][arm].discount += sum(
            e.payload["discount"] - rolled_back.get(e.redemption_id, 0)
            for e in built.of_type("redemption_succeeded")
            if e.campaign_id == campaign_id
            and e.customer_id == customer_id
            and at < e.occurred_at <= at + WINDOW
        )
    return arms


def test_treated_and_held_out_customers_and_their_conversion_match_the_ledger(
    built: Built,
) -> None:
    arms = _arms(built)

    performance = built.by_campaign("marts.fct_campaign_performance")

    assert arms, "the simulation should have a campaign with a closed outcome window"
    for campaign_id, arm in arms.items():
        row = performance[campaign_id]
        treated, control = arm["treatment"], arm["control"]
        p_t = sum(treated.ordered) / len(treated.ordered)
        p_c = sum(control.ordered) / len(control.ordered)
        se = math.sqrt(
            p_t * (1 - p_t) / len(treated.ordered) + p_c * (1 - p_c) / len(control.ordered)
        )
        assert row["incremental_treated_customers"] == len(treated.ordered)
        assert row["incremental_control_customers"] == len(control.ordered)
        assert row["incremental_treated_conversion"] == pytest.approx(p_t, abs=1e-6)
        assert row["incremental_control_conversion"] == pytest.approx(p_c, abs=1e-6)
        assert row["incremental_conversion"] == pytest.approx(p_t - p_c, abs=1e-6)
        assert row["incremental_conversion_ci_low"] == pytest.approx(
            p_t - p_c - 1.96 * se, abs=1e-6
        )
        assert row["incremental_conversion_ci_high"] == pytest.approx(
            p_t - p_c + 1.96 * se, abs=1e-6
        )


def test_incremental_revenue_and_profit_use_welch_intervals_and_the_treated_discount(
    built: Built,
) -> None:
    arms = _arms(built)

    performance = built.by_campaign("marts.fct_campaign_performance")

    for campaign_id, arm in arms.items():
        row = performance[campaign_id]
        treated, control = arm["treatment"], arm["control"]
        n_t = len(treated.revenue)
        diff = statistics.fmean(treated.revenue) - statistics.fmean(control.revenue)
        se = math.sqrt(
            statistics.variance(treated.revenue) / n_t
            + statistics.variance(control.revenue) / len(control.revenue)
        )
        assert row["incremental_revenue_per_customer"] == pytest.approx(diff, abs=0.01)
        assert row["incremental_revenue_per_customer_ci_low"] == pytest.approx(
            diff - 1.96 * se, abs=0.01
        )
        assert row["incremental_revenue"] == pytest.approx(diff * n_t, abs=1)
        assert row["incremental_treated_discount"] == treated.discount
        assert row["incremental_profit"] == pytest.approx(
            diff * n_t * MARGIN - treated.discount, abs=1
        )
        assert row["incremental_profit_ci_high"] == pytest.approx(
            (diff + 1.96 * se) * n_t * MARGIN - treated.discount, abs=1
        )


def test_campaigns_without_a_control_group_have_no_incremental_figures(built: Built) -> None:
    held_out_campaigns = {e.campaign_id for e in built.of_type("customer_held_out")}

    performance = built.by_campaign("marts.fct_campaign_performance")

    without = [row for cid, row in performance.items() if cid not in held_out_campaigns]
    assert without
    for row in without:
        assert row["has_control_group"] is False
        assert row["incremental_conversion"] is None
        assert row["incremental_revenue"] is None
        assert row["incremental_profit"] is None


def test_every_redemption_attempt_lands_in_redemptions_or_rejections_with_its_reasons(
    built: Built,
) -> None:
    succeeded = {e.redemption_id for e in built.of_type("redemption_succeeded")}
    rolled_back = {e.redemption_id for e in built.of_type("redemption_rolled_back")}
    reasons = {
        e.event_id: [r["code"] for r in e.payload["reasons"]]
        for e in built.of_type("redemption_rejected")
    }

    redemptions = built.query("select redemption_id, is_rolled_back from marts.fct_redemptions")
    rejections = built.query(
        "select rejection_id, reason_codes, primary_reason_code from marts.fct_redemption_rejections"
    )

    assert {r["redemption_id"] for r in redemptions} == succeeded
    assert {r["redemption_id"] for r in redemptions if r["is_rolled_back"]} == rolled_back
    assert {r["rejection_id"]: r["reason_codes"] for r in rejections} == reasons
    assert all(r["primary_reason_code"] == reasons[r["rejection_id"]][0] for r in rejections)


def test_budget_of_a_capped_campaign_is_what_the_definition_allows_less_what_was_used(
    built: Built,
) -> None:
    caps = {
        e.campaign_id: e.payload["definition"].get("limits", {}).get("budget")
        for e in built.of_type("campaign_created")
    }
    as_of = max(e.occurred_at for e in built.events)
    last_week: Counter[str] = Counter()
    for e in built.of_type("redemption_succeeded", "redemption_rolled_back"):
        if e.occurred_at > as_of - timedelta(days=7):
            sign = 1 if e.event_type == "redemption_succeeded" else -1
            last_week[e.campaign_id or ""] += sign * e.payload["discount"]

    budget = built.by_campaign("marts.fct_campaign_budget")

    assert any(caps.values()), "the simulation should cap a campaign's budget"
    for campaign_id, cap in caps.items():
        row = budget[campaign_id]
        assert row["budget_cap"] == cap
        assert row["used_last_7_days"] == last_week[campaign_id]
        if cap is None:
            assert row["budget_remaining"] is None
        else:
            assert row["budget_remaining"] == cap - row["budget_used"]
            assert row["budget_share_used"] == pytest.approx(row["budget_used"] / cap)
