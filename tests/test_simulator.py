"""The simulator: repeatable, verified, with fraud labelled beside the ledger and not in it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from redemption_core.domain.errors import InvalidInput
from redemption_core.ledger.verify import verify_ledger
from redemption_core.simulate import FRAUD_PATTERNS, SimulationConfig, simulate

SMALL = SimulationConfig(customers=300, days=21, seed=11, fraud_scale=6)


def ledger_digest(home: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(home / "ledger.sqlite") as db:
        for row in db.execute("SELECT * FROM events ORDER BY seq"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def truth(home: Path) -> list[dict]:
    path = home / "simulation" / "ground_truth.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sim")
    simulate(home, SMALL, progress=None)
    return home


def test_the_same_seed_gives_an_identical_ledger_and_ground_truth(
    simulated: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"

    simulate(again, SMALL, progress=None)

    assert ledger_digest(again) == ledger_digest(simulated)
    assert truth(again) == truth(simulated)


def test_another_seed_gives_another_business(simulated: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"

    simulate(other, SimulationConfig(customers=300, days=21, seed=12, fraud_scale=6), progress=None)

    assert ledger_digest(other) != ledger_digest(simulated)


def test_the_simulated_ledger_passes_verify(simulated: Path) -> None:
    report = verify_ledger(simulated / "ledger.sqlite")

    assert report.clean, report.differences[:5]
    assert report.events > 5000


def test_every_fraud_pattern_is_injected_and_labelled_in_the_ground_truth(simulated: Path) -> None:
    cases = truth(simulated)

    assert {case["pattern"] for case in cases} == set(FRAUD_PATTERNS)
    assert all(case["started_at"] <= case["ended_at"] for case in cases)


def test_the_ledger_itself_carries_no_fraud_label(simulated: Path) -> None:
    words = ("fraud", "ground_truth", "case-0", *FRAUD_PATTERNS)

    with sqlite3.connect(simulated / "ledger.sqlite") as db:
        text = "\n".join(
            " ".join(str(value) for value in row) for row in db.execute("SELECT * FROM events")
        )

    assert not [word for word in words if word in text]


def test_labelled_events_are_real_ledger_events_with_the_labelled_context(simulated: Path) -> None:
    cases = truth(simulated)

    with sqlite3.connect(simulated / "ledger.sqlite") as db:
        for case in cases:
            if case["pattern"] == "code_guessing":
                rows = db.execute(
                    f"SELECT device_hash, json_extract(payload, '$.valid') FROM events WHERE event_id IN ({','.join('?' * len(case['event_ids']))})",
                    case["event_ids"],
                ).fetchall()
                assert len(rows) == case["attempts"]
                assert {row[0] for row in rows} == {case["device_hash"]}
                assert {row[1] for row in rows} == {0}
            if case["pattern"] == "multi_accounting":
                devices = db.execute(
                    "SELECT DISTINCT device_hash FROM events WHERE event_type = 'redemption_succeeded'"
                    f" AND customer_id IN ({','.join('?' * len(case['customer_ids']))})",
                    case["customer_ids"],
                ).fetchall()
                assert devices == [(case["device_hash"],)]


def test_the_business_has_the_funnel_and_the_honest_rejections_analysts_expect(
    simulated: Path,
) -> None:
    with sqlite3.connect(simulated / "ledger.sqlite") as db:
        types = dict(db.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
        reasons = {
            row[0]
            for row in db.execute(
                "SELECT json_extract(r.value, '$.code') FROM events, json_each(events.payload, '$.reasons') r"
                " WHERE event_type = 'redemption_rejected'"
            )
        }

    for kind in ("order_recorded", "voucher_published", "voucher_delivered", "delivery_failed",
                 "voucher_accepted", "redemption_succeeded", "redemption_rejected",
                 "customer_held_out", "trigger_matched", "redemption_rolled_back", "order_refunded"):  # fmt: skip
        assert types.get(kind, 0) > 0, kind
    assert types["order_recorded"] > types["redemption_succeeded"]  # orders without vouchers too
    assert {"publication_validity_expired", "order_below_minimum"} <= reasons


def test_till_orders_and_redemptions_name_a_staff_member_of_their_store(simulated: Path) -> None:
    """At the till (sales channel pos) a staff member keys the order in, so the redemption
    marts can say who; in the app and on the web nobody does."""
    with sqlite3.connect(simulated / "ledger.sqlite") as db:
        rows = db.execute(
            "SELECT event_type, sales_channel, store_id, staff_id FROM events "
            "WHERE event_type IN ('order_recorded', 'redemption_succeeded', 'redemption_rejected')"
        ).fetchall()

    till = [r for r in rows if r[1] == "pos"]
    assert {r[0] for r in till} >= {"order_recorded", "redemption_succeeded"}
    assert all(staff and staff.startswith(f"staff-{store}-") for _, _, store, staff in till)
    assert len({staff for *_, staff in till}) > 4  # several staff in several stores
    assert all(staff is None for _, channel, _, staff in rows if channel in ("app", "web"))


def test_a_simulation_refuses_a_home_that_already_has_a_ledger(simulated: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        simulate(simulated, SMALL, progress=None)

    assert refused.value.field == "PROMO_HOME"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"customers": 1}, "customers"), ({"days": 0}, "days"), ({"fraud_scale": -1}, "fraud_scale")],
)
def test_bad_settings_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        SimulationConfig(**overrides)

    assert refused.value.field == field


def test_every_redemption_names_an_order_the_ledger_recorded_staff_abuse_included(
    simulated: Path,
) -> None:
    with sqlite3.connect(simulated / "ledger.sqlite") as db:
        missing = db.execute(
            "SELECT r.redemption_id, r.order_id FROM redemptions r"
            " WHERE r.order_id IS NOT NULL AND r.order_id NOT IN (SELECT order_id FROM orders)"
        ).fetchall()
        staff_orders = db.execute(
            "SELECT count(*) FROM orders WHERE sales_channel = 'pos' AND customer_id IS NULL"
        ).fetchone()[0]
    abused = [case for case in truth(simulated) if case["pattern"] == "staff_abuse"]

    assert missing == []
    assert abused and staff_orders >= sum(len(case["redemption_ids"]) for case in abused)


def test_the_simulated_ledger_imports_into_an_empty_home_through_every_rule(
    simulated: Path, tmp_path: Path
) -> None:
    from redemption_core.engine.redemption import RedemptionEngine
    from redemption_core.imports.ledger_schema import events_to_rows, import_events
    from redemption_core.ledger.sqlite import SqliteLedgerStore

    source = SqliteLedgerStore(simulated / "ledger.sqlite", read_only=True)
    rows = events_to_rows(source.events())
    source.close()
    with RedemptionEngine.open(tmp_path / "copy") as engine:
        report = import_events(engine, rows)

    assert report.imported == len(rows)
    assert verify_ledger(tmp_path / "copy" / "ledger.sqlite").clean
