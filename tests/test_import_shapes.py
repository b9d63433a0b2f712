"""Ledger shapes the simulator never makes, imported from files built here: an e-mail experiment
from 2008 (two treatments sharing one control group, a voucher decided but never sent, no code
ever redeemed) and a coupon history (several coupons per customer and campaign, redemptions
without an order, customers with demographic attributes). Each imports whole, verifies clean,
and leaves the promotion's resume correct: nobody decided in the history is sent anything again.
Every test runs on both ledgers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from builders import Clock, distributor, ledger_rows, recording_channels
from reliability_helpers import ledger_of_store
from test_import import engine_on, row, write_csv

from redemption_core.domain.parsing import iso
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.imports.ledger_schema import import_events, open_rows
from redemption_core.ledger.store import LedgerStore
from redemption_core.ledger.verify import verify_ledger

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
SEND = datetime(2008, 3, 3, 9, tzinfo=UTC)
CUSTOMERS = [f"sub-{n}" for n in range(1, 10)]
CONTROL = CUSTOMERS[6:]  # held out of both treatments


def t(day: datetime, minutes: int = 0) -> dict:
    return {"at": day + timedelta(minutes=minutes)}


def definition(campaign_id: str, discount: dict, *, since: datetime) -> dict:
    return {
        "id": campaign_id, "name": campaign_id, "main_campaign": "newsletter", "currency": "EUR",
        "status": "active", "active_from": iso(since), "voucher": {"kind": "unique"},
        "discount": discount,
        "distribution": {"mode": "promotion", "segment": "subscribers", "channels": ["email"]},
    }  # fmt: skip


def sent(campaign_id: str, customer: str, n: int, at: datetime, *, delivered: bool = True) -> list[dict]:  # fmt: skip
    code = f"{campaign_id.upper()}-{customer.upper()}-{n}"
    voucher_id = f"v-{campaign_id}-{customer}-{n}"
    ids = {"campaign_id": campaign_id, "voucher_id": voucher_id}
    rows = [
        row("voucher_created", {"code": code, "kind": "unique", "source": "promotion"}, **ids, **t(at)),
        row("voucher_published", {"code": code, "source": "promotion"}, customer_id=customer, channel="email", **ids, **t(at)),
    ]  # fmt: skip
    if delivered:
        outcome = {"provider": "esp", "attempts": 1, "latency_ms": 12.0}
        rows.append(row("voucher_delivered", outcome, customer_id=customer, channel="email", **ids, **t(at, 1)))  # fmt: skip
    return rows


def experiment_2008() -> list[dict]:
    """Treatment A (10% off) and B (5 EUR off) e-mailed on 2008-03-03; one shared control
    group held out of both; sub-3 decided for A but never sent (consent withdrawn); nothing
    redeemed; both finished at the end of the month."""
    start = datetime(2008, 1, 2, tzinfo=UTC)
    rows = [
        row("main_campaign_created", {"definition": {"id": "newsletter", "name": "Newsletter"}}, **t(start)),
        row("segment_defined", {"definition": {"id": "subscribers", "rules": [{"field": "consent.email", "op": "==", "value": True}]}}, **t(start)),
    ]  # fmt: skip
    for i, customer in enumerate(CUSTOMERS):
        profile = {"signup_at": iso(start), "attributes": {"region": "north" if i % 2 else "south"}, "consent": {"email": True}}  # fmt: skip
        rows.append(row("customer_created", profile, customer_id=customer, **t(start, i)))
    rows.append(row("consent_changed", {"channel": "email", "granted": False, "source": "unsubscribe"}, customer_id="sub-3", channel="email", **t(SEND, -60)))  # fmt: skip
    rows += [
        row("campaign_created", {"definition": definition("exp-a", {"type": "percent", "percent_off": 10}, since=SEND)}, campaign_id="exp-a", **t(SEND, -10)),
        row("campaign_created", {"definition": definition("exp-b", {"type": "amount", "amount_off": 500}, since=SEND)}, campaign_id="exp-b", **t(SEND, -10)),
    ]  # fmt: skip
    for campaign_id in ("exp-a", "exp-b"):
        rows.append(row("promotion_started", {"audience": 6}, campaign_id=campaign_id, **t(SEND)))
        for customer in CONTROL:
            rows.append(row("customer_held_out", {"source": "promotion"}, campaign_id=campaign_id, customer_id=customer, **t(SEND)))  # fmt: skip
    for customer in ("sub-1", "sub-2"):
        rows += sent("exp-a", customer, 1, SEND)
    rows += sent("exp-a", "sub-3", 1, SEND, delivered=False)
    rows.append(row("offer_skipped", {"source": "promotion", "reason": "no_consent"}, campaign_id="exp-a", voucher_id="v-exp-a-sub-3-1", customer_id="sub-3", **t(SEND, 2)))  # fmt: skip
    for customer in ("sub-4", "sub-5", "sub-6"):
        rows += sent("exp-b", customer, 1, SEND)
    end = datetime(2008, 4, 1, tzinfo=UTC)
    for campaign_id in ("exp-a", "exp-b"):
        rows.append(row("promotion_finished", {"published": 3}, campaign_id=campaign_id, **t(SEND, 5)))  # fmt: skip
        rows.append(row("campaign_status_changed", {"status": "finished", "previous": "active"}, campaign_id=campaign_id, **t(end)))  # fmt: skip
    return rows


@pytest.fixture
def engine(tmp_path: Path, ledger_store: Callable[[Path], LedgerStore]) -> RedemptionEngine:
    return engine_on(ledger_store(tmp_path), Clock(NOW))


def assert_clean(engine: RedemptionEngine) -> None:
    report = verify_ledger(ledger_of_store(engine.store))
    assert report.clean, [str(d) for d in report.differences]


def test_an_email_experiment_from_2008_with_a_shared_control_group_imports_whole_and_verifies(
    engine: RedemptionEngine, tmp_path: Path
) -> None:
    rows = experiment_2008()

    report = import_events(engine, open_rows(write_csv(tmp_path / "experiment.csv", rows)))

    assert (report.rows, report.imported) == (len(rows), len(rows))
    assert_clean(engine)
    audience = ledger_rows(engine, "SELECT campaign_id, customer_id, outcome, reason FROM audience ORDER BY 1, 2")  # fmt: skip
    assert audience == sorted(
        [(c, s, "held_out", None) for c in ("exp-a", "exp-b") for s in CONTROL]
        + [("exp-a", "sub-1", "published", None), ("exp-a", "sub-2", "published", None),
           ("exp-a", "sub-3", "not_sent", "no_consent")]
        + [("exp-b", s, "published", None) for s in ("sub-4", "sub-5", "sub-6")]
    )  # fmt: skip
    assert ledger_rows(engine, "SELECT count(*) FROM redemptions") == [(0,)]


def test_a_voucher_decided_but_not_sent_is_neither_resumed_nor_retried(
    engine: RedemptionEngine,
) -> None:
    import_events(engine, experiment_2008())
    with engine.store.read() as tx:
        undelivered = tx.undelivered_offers("exp-a")
        failed = tx.failed_deliveries(None)

    assert undelivered == []
    assert failed == []
    assert ledger_rows(engine, "SELECT status, last_error FROM deliveries WHERE voucher_id = 'v-exp-a-sub-3-1'") == [("not_sent", "no_consent")]  # fmt: skip


COUPON_DAY = datetime(2011, 5, 2, tzinfo=UTC)


def coupon_history() -> list[dict]:
    """Campaign `coupons`, priced by the source system: each of three households gets three
    coupons; two are redeemed without an order; households carry demographic attributes."""
    coupons = {
        "id": "coupons", "name": "Coupon book", "currency": "USD", "status": "active",
        "voucher": {"kind": "unique"}, "discount": {"type": "unspecified"},
        "distribution": {"mode": "promotion", "segment": "households", "channels": ["email"]},
    }  # fmt: skip
    rows = [
        row("segment_defined", {"definition": {"id": "households", "rules": [{"field": "days_since_signup", "op": ">=", "value": 0}]}}, **t(COUPON_DAY, -120)),
        row("campaign_created", {"definition": coupons}, campaign_id="coupons", **t(COUPON_DAY, -60)),
    ]  # fmt: skip
    for n, (age, income) in enumerate([("35-44", "50-74K"), ("45-54", "35-49K"), ("65+", "Under 15K")], start=1):  # fmt: skip
        profile = {"signup_at": iso(COUPON_DAY - timedelta(days=400)), "attributes": {"age_desc": age, "income_desc": income}, "consent": {"email": True}}  # fmt: skip
        rows.append(row("customer_created", profile, customer_id=f"hh-{n}", **t(COUPON_DAY, -100)))
    for n in (1, 2, 3):
        for book in (1, 2, 3):
            rows += sent("coupons", f"hh-{n}", book, COUPON_DAY)
    for rid, (customer, book) in enumerate([("hh-1", 1), ("hh-1", 2), ("hh-2", 3)], start=1):
        payload = {
            "code": f"COUPONS-{customer.upper()}-{book}", "discount": 0, "gift_amount": 0,
            "currency": "USD", "amounts_known": False,
            "order": {"id": None, "amount": 0, "currency": "USD", "items": []},
        }  # fmt: skip
        rows.append(row("redemption_succeeded", payload, campaign_id="coupons", voucher_id=f"v-coupons-{customer}-{book}", customer_id=customer, redemption_id=f"r-{rid}", **t(COUPON_DAY + timedelta(days=3), rid)))  # fmt: skip
    return rows


def test_a_coupon_history_with_several_coupons_per_customer_imports_and_verifies(
    engine: RedemptionEngine,
) -> None:
    rows = coupon_history()

    report = import_events(engine, rows)

    assert report.imported == len(rows)
    assert_clean(engine)
    assert ledger_rows(engine, "SELECT customer_id, count(*) FROM audience GROUP BY 1 ORDER BY 1") == [("hh-1", 3), ("hh-2", 3), ("hh-3", 3)]  # fmt: skip
    assert ledger_rows(engine, "SELECT customer_id, count(*) FROM redemptions WHERE order_id IS NULL GROUP BY 1 ORDER BY 1") == [("hh-1", 2), ("hh-2", 1)]  # fmt: skip
    assert engine.customer("hh-3").attributes == {"age_desc": "65+", "income_desc": "Under 15K"}


def test_resuming_an_imported_coupon_promotion_sends_only_to_customers_it_never_decided_about(
    engine: RedemptionEngine,
) -> None:
    import_events(engine, coupon_history())
    engine.add_customer({"id": "hh-4", "consent": {"email": True}})
    channels = recording_channels("email")

    report = distributor(engine, channels).send_promotion("coupons")

    assert [message.customer_id for message in channels["email"].sent] == ["hh-4"]
    assert (report.matched, report.published) == (4, 1)
    assert ledger_rows(engine, "SELECT customer_id, count(*) FROM audience GROUP BY 1 ORDER BY 1") == [("hh-1", 3), ("hh-2", 3), ("hh-3", 3), ("hh-4", 1)]  # fmt: skip
    assert_clean(engine)
