"""The ledger: append-only in the database itself, a projection that the events explain.

ARCHITECTURE.md: one row per event, never updated or deleted (enforced by the database, not
only by the code); current state is a projection of the ledger, updated in the same
transaction as the event, and rebuilding it from the ledger must give the same state. Every
test runs on both ledgers (SQLite, PostgreSQL); on PostgreSQL the tampering is done as the
database's owner, past the application role's missing rights.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_cluster import Cluster
from reliability_helpers import (
    cart,
    downgrade_ledger,
    event_rows,
    ledger_of,
    ledger_schema_version,
    open_engine,
    order,
    standalone_def,
    unique_def,
)

from redemption_core.domain.errors import PromoError
from redemption_core.domain.events import Event, EventType
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine
from redemption_core.ledger.dialect import to_pyformat
from redemption_core.ledger.home import open_store
from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.reports import stats
from redemption_core.ledger.verify import verify_ledger

pytestmark = pytest.mark.usefixtures("ledger_backend")
DatabaseError = (sqlite3.DatabaseError, psycopg.Error)
REPO = Path(__file__).resolve().parents[1]


class _OwnerConnection:
    """psycopg as its owner, taking the tests' SQLite spelling (`?`, DROP TRIGGER name)."""

    def __init__(self, url: str) -> None:
        self._db = psycopg.connect(url, autocommit=True)

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.startswith("DROP TRIGGER "):
            sql += " ON events"
        return self._db.execute(to_pyformat(sql), params)

    def close(self) -> None:
        self._db.close()


@pytest.fixture
def writable(ledger_backend: str, request: pytest.FixtureRequest) -> Any:
    """A raw connection with no help from the engine, as a careless script (or, on
    PostgreSQL, the database's owner) would open one."""

    def open_(ledger: Path | str) -> Any:
        if ledger_backend == "sqlite":
            return sqlite3.connect(ledger, isolation_level=None)
        cluster: Cluster = request.getfixturevalue("postgres_cluster")
        database = psycopg.conninfo.conninfo_to_dict(str(ledger))["dbname"]
        return _OwnerConnection(cluster.admin_url(database))

    return open_


def run_mixed_workload(engine: RedemptionEngine) -> dict[str, Any]:
    """Every kind of act the engine records; returns what a test needs to check the result."""
    engine.create_from_definition(
        {"id": "spring", "name": "Spring", "campaigns": [standalone_def("shared", "SHARED10")]}
    )
    engine.create_from_definition(
        unique_def("personal", amount_off=1500, rules={"acceptance_required": True})
    )
    engine.create_from_definition(
        standalone_def("members", "MEMBERS5", amount_off=500, rules={"segments": ["vip"]})
    )
    engine.create_from_definition(
        {
            "id": "gifts",
            "currency": "EUR",
            "status": "active",
            "voucher": {"kind": "gift", "gift_balance": 3000},
        }
    )
    [personal] = engine.generate_codes("personal", 1)
    [gift] = engine.generate_codes("gifts", 1)

    engine.publish(personal, "alice", channel="email")
    engine.accept(personal, "alice")
    engine.publish(gift, "bob", channel="sms")
    engine.top_up(gift, 2000)
    engine.set_segment_membership("vip", "carol", True)
    engine.set_segment_membership("vip", "dave", True)
    engine.set_segment_membership("vip", "dave", False)

    hold = engine.validate("SHARED10", cart(4000), customer_id="erin", hold_seconds=600)
    engine.validate("MEMBERS5", order(4000), customer_id="dave")  # buffered, not a member
    held = engine.redeem(
        RedeemRequest("SHARED10", order(4000), customer_id="erin", session_id=hold.session_id)
    )
    plain = engine.redeem(RedeemRequest("shared10", order(9000, order_id="o-2"), customer_id="x"))
    mine = engine.redeem(RedeemRequest(personal, order(8000), customer_id="alice"))
    member = engine.redeem(RedeemRequest("MEMBERS5", order(2000), customer_id="carol"))
    outsider = engine.redeem(RedeemRequest("MEMBERS5", order(2000), customer_id="dave"))
    card = engine.redeem(RedeemRequest(gift, order(3500), customer_id="bob", gift_amount=3500))
    engine.rollback(plain.redemption_id, reason="order cancelled", idempotency_key="rb-1")
    engine.rollback(plain.redemption_id, reason="again")  # refused: rolled back before

    engine.set_voucher_enabled("SHARED10", False, note="fraud check")
    disabled = engine.redeem(RedeemRequest("SHARED10", order(4000), customer_id="frank"))
    engine.set_voucher_enabled("SHARED10", True)
    engine.set_campaign_status("members", "paused")
    engine.set_campaign_status("members", "active")
    engine.flush()

    assert [held.ok, plain.ok, mine.ok, member.ok, card.ok] == [True] * 5
    assert not outsider.ok and not disabled.ok
    return {"personal": personal, "gift": gift}


def test_the_database_refuses_to_update_a_ledger_event(tmp_path: Path, writable: Any) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.redeem(RedeemRequest("SHARED10", order()))
    path = ledger_of(tmp_path)
    db = writable(path)
    before = db.execute("SELECT * FROM events ORDER BY seq").fetchall()

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("UPDATE events SET payload = '{\"discount\": 0}' WHERE seq = 3")
    with pytest.raises(DatabaseError, match="append-only"):
        db.execute(
            "INSERT INTO events (seq, event_id, event_type, occurred_at, recorded_at, payload)"
            " SELECT seq, 'evt_upsert', event_type, occurred_at, recorded_at, payload"
            " FROM events WHERE seq = 3"
            " ON CONFLICT (seq) DO UPDATE SET event_type = 'redemption_rejected'"
        )

    assert db.execute("SELECT * FROM events ORDER BY seq").fetchall() == before
    db.close()


def test_the_database_refuses_to_delete_a_ledger_event(tmp_path: Path, writable: Any) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.redeem(RedeemRequest("SHARED10", order()))
    path = ledger_of(tmp_path)
    db = writable(path)
    before = db.execute("SELECT * FROM events ORDER BY seq").fetchall()

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("DELETE FROM events WHERE event_type = 'redemption_succeeded'")
    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")

    assert db.execute("SELECT * FROM events ORDER BY seq").fetchall() == before
    db.close()


def test_the_database_refuses_to_replace_a_ledger_event_through_an_insert(
    tmp_path: Path, writable: Any, ledger_backend: str
) -> None:
    # INSERT OR REPLACE deletes the row it collides with, and SQLite fires no DELETE trigger
    # for that unless recursive_triggers is on: an UPDATE in all but name.
    if ledger_backend != "sqlite":
        pytest.skip("INSERT OR REPLACE is SQLite's; PostgreSQL's upsert is an UPDATE (above)")
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.redeem(RedeemRequest("SHARED10", order()))
    path = ledger_of(tmp_path)
    db = writable(path)
    before = db.execute("SELECT * FROM events ORDER BY seq").fetchall()

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute(
            "INSERT OR REPLACE INTO events (seq, event_id, event_type, occurred_at, recorded_at,"
            " payload) SELECT seq, 'evt_forged', 'redemption_rejected', occurred_at, recorded_at,"
            " '{}' FROM events WHERE event_type = 'redemption_succeeded'"
        )

    assert db.execute("SELECT * FROM events ORDER BY seq").fetchall() == before
    db.close()


@pytest.mark.parametrize(
    "tamper, table, key, problem",
    [
        (
            "UPDATE campaigns SET budget_used = budget_used + 7 WHERE campaign_id = 'shared'",
            "campaigns",
            ("shared",),
            "budget_used: ledger says 1000, projection has 1007",
        ),
        (
            "UPDATE vouchers SET redemptions = 0 WHERE code = 'SHARED10'",
            "vouchers",
            None,
            "redemptions: ledger says 1, projection has 0",
        ),
        (
            "UPDATE holds SET consumed = 0",
            "holds",
            None,
            "consumed: ledger says 1, projection has 0",
        ),
        (
            "DELETE FROM redemptions",
            "redemptions",
            None,
            "missing from the projection",
        ),
        (
            "INSERT INTO idempotency VALUES ('forged-key', 'hash', 'evt_none')",
            "idempotency",
            ("forged-key",),
            "not explained by any event",
        ),
        (
            "DROP TRIGGER events_are_never_deleted",
            "events",
            ("events_are_never_deleted",),
            "append-only trigger is missing",
        ),
    ],
    ids=["budget", "voucher uses", "used hold", "lost row", "forged row", "trigger"],
)
def test_verify_reports_a_tampered_projection_with_its_table_key_and_field(
    tmp_path: Path,
    writable: Any,
    tamper: str,
    table: str,
    key: tuple[str, ...] | None,
    problem: str,
) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        hold = engine.validate("SHARED10", cart(), customer_id="alice", hold_seconds=600)
        redeemed = engine.redeem(
            RedeemRequest("SHARED10", order(), customer_id="alice", session_id=hold.session_id)
        )
    path = ledger_of(tmp_path)
    assert verify_ledger(path).clean
    db = writable(path)
    db.execute(tamper)
    db.close()

    report = verify_ledger(path)

    assert not report.clean
    [difference] = report.differences
    expected_key = (
        key
        or {
            "vouchers": (redeemed.voucher_id,),
            "redemptions": (redeemed.redemption_id,),
            "holds": (hold.session_id,),
        }[table]
    )
    assert (difference.table, difference.key) == (table, expected_key)
    assert problem in difference.problem
    assert str(difference).startswith(f"{table}[")


def test_verify_reports_events_deleted_behind_its_back_instead_of_crashing(
    tmp_path: Path, writable: Any
) -> None:
    # Someone with file access drops the trigger and deletes a campaign's creation: exactly
    # the ledger verify exists for. It must say what is wrong, not stop at the first event
    # the rebuild cannot place.
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.redeem(RedeemRequest("SHARED10", order(), customer_id="alice"))
    path = ledger_of(tmp_path)
    db = writable(path)
    db.execute("DROP TRIGGER events_are_never_deleted")
    db.execute("DELETE FROM events WHERE event_type = 'campaign_created'")
    db.close()

    report = verify_ledger(path)

    assert not report.clean
    found = {(difference.table, difference.key) for difference in report.differences}
    assert ("events", ("events_are_never_deleted",)) in found
    assert ("campaigns", ("shared",)) in found


def test_a_projection_rebuilt_from_the_ledger_equals_the_live_one_after_a_mixed_workload(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        run_mixed_workload(engine)
    path = ledger_of(tmp_path)

    report = verify_ledger(path)

    assert report.clean, [str(difference) for difference in report.differences]
    assert report.events == len(event_rows(path))
    types = Counter(row["event_type"] for row in event_rows(path))
    for event_type in [
        "main_campaign_created", "campaign_created", "campaign_status_changed",
        "voucher_created", "voucher_published", "voucher_accepted", "voucher_disabled",
        "voucher_enabled", "gift_card_topped_up", "segment_member_added",
        "segment_member_removed", "voucher_validated", "validation_hold_created",
        "redemption_succeeded", "redemption_rejected", "redemption_rolled_back",
        "rollback_rejected",
    ]:  # fmt: skip
        assert types[event_type] > 0, f"the workload recorded no {event_type}"


def test_stats_count_what_the_ledger_holds(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        run_mixed_workload(engine)
    path = ledger_of(tmp_path)
    rows = event_rows(path)

    store = open_store(tmp_path, read_only=True)
    report = stats(store)
    store.close()

    assert report["events"] == len(rows) == report["last_seq"]
    assert report["events_by_type"] == dict(Counter(row["event_type"] for row in rows))
    assert report["events_by_type"]["redemption_succeeded"] == 5
    assert report["redemptions"] == 5
    assert report["rolled_back"] == 1
    # 10.00 (hold) + 15.00 (personal) + 5.00 (member) kept; the 10.00 of `plain` came back.
    assert report["discount_given_net"] == 1000 + 1500 + 500
    assert report["gift_amount_used_net"] == 3500
    assert report["rejections_by_reason"] == {"customer_not_in_segment": 1, "voucher_disabled": 1}
    by_campaign = {campaign["campaign_id"]: campaign for campaign in report["campaigns"]}
    assert by_campaign["shared"]["redemptions"] == 1
    assert by_campaign["shared"]["discount_given"] == 1000
    assert by_campaign["personal"]["vouchers"] == 1
    assert by_campaign["gifts"]["redemptions"] == 1
    assert {campaign["currency"] for campaign in report["campaigns"]} == {"EUR"}
    assert report["first_event_at"] == min(row["occurred_at"] for row in rows)
    assert report["last_event_at"] == max(row["occurred_at"] for row in rows)


def test_writes_in_a_batch_are_checked_as_if_alone_and_committed_together(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(
            standalone_def("once", "ONCE10", limits={"campaign_total": 1})
        )
        code = "ONCE10"
        path = ledger_of(tmp_path)
        before = len(event_rows(path))

        with engine.store.batch():
            first = engine.redeem(RedeemRequest(code, order(4000, order_id="o-1")))
            second = engine.redeem(RedeemRequest(code, order(4000, order_id="o-2")))
            seen_meanwhile = len(event_rows(path))

        assert first.ok and not second.ok  # the use limit saw the first redemption
        assert seen_meanwhile == before  # another connection sees nothing until the commit
    assert len(event_rows(path)) == before + 2
    assert verify_ledger(path).clean


def test_a_write_refused_before_it_changes_anything_leaves_the_rest_of_its_batch(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine, engine.store.batch():
        engine.record_order(order(1000, order_id="o-1"))
        with pytest.raises(PromoError):
            engine.record_order(order(1000, order_id="o-1"))
        engine.record_order(order(2000, order_id="o-2"))
    path = ledger_of(tmp_path)

    recorded = [
        row["order_id"] for row in event_rows(path) if row["event_type"] == "order_recorded"
    ]

    assert recorded == ["o-1", "o-2"]
    assert verify_ledger(path).clean


def test_a_write_that_fails_half_way_rolls_back_its_whole_batch(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine, pytest.raises(RuntimeError), engine.store.batch():
        engine.record_order(order(1000, order_id="o-1"))
        with pytest.raises(ZeroDivisionError), engine.transaction() as tx:
            tx.append(Event(EventType.SEGMENT_MEMBER_ADDED, engine.now(),
                            payload={"segment_id": "vip"}, customer_id="c-1"))  # fmt: skip
            raise ZeroDivisionError  # after the append changed the projection
        engine.record_order(order(2000, order_id="o-2"))  # refused: the batch is gone
    path = ledger_of(tmp_path)

    assert not [row for row in event_rows(path) if row["event_type"] == "order_recorded"]
    assert verify_ledger(path).clean


def test_the_application_role_may_only_read_and_append_ledger_events(
    tmp_path: Path, ledger_backend: str
) -> None:
    # PostgreSQL: beyond the triggers, the role the application connects as has no right to
    # change or remove an event at all.
    if ledger_backend != "postgresql":
        pytest.skip("SQLite has no roles; its triggers are tested above")
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
    url = str(ledger_of(tmp_path))

    with psycopg.connect(url, autocommit=True) as db:
        before = db.execute("SELECT count(*) FROM events").fetchone()
        for statement in (
            "UPDATE events SET payload = '{}'",
            "DELETE FROM events",
            "TRUNCATE events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
        assert db.execute("SELECT count(*) FROM events").fetchone() == before


def test_the_database_refuses_to_truncate_the_ledger_even_for_its_owner(
    tmp_path: Path, writable: Any, ledger_backend: str
) -> None:
    if ledger_backend != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE is refused above")
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
    before = event_rows(ledger_of(tmp_path))
    db = writable(ledger_of(tmp_path))

    with pytest.raises(DatabaseError, match="append-only"):
        db.execute("TRUNCATE events")
    db.close()

    assert event_rows(ledger_of(tmp_path)) == before


def test_an_idempotency_key_is_unique_in_the_database_itself(tmp_path: Path, writable: Any) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.redeem(RedeemRequest("SHARED10", order(), idempotency_key="k-1"))
    db = writable(ledger_of(tmp_path))

    with pytest.raises(DatabaseError):
        db.execute("INSERT INTO idempotency VALUES ('k-1', 'another-hash', 'evt_other')")
    db.close()


FIRST_OPEN = """
import sys, time
from pathlib import Path
from redemption_core.engine.redemption import RedemptionEngine
work, n, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for round in range(rounds):
    (work / f"ready-{round}-{n}").touch()
    while not (work / f"go-{round}").exists():
        time.sleep(0.0005)
    with RedemptionEngine.open(work / f"home-{round}") as engine:
        engine.add_customer({"id": f"c-{n}"})
"""
ROUNDS = 8  # a race lost now and then: each round is a fresh empty home opened by all at once


def test_sixteen_processes_opening_one_empty_home_at_once_all_succeed(
    tmp_path: Path, ledger_backend: str
) -> None:
    if ledger_backend != "sqlite":
        pytest.skip("a home's SQLite file; PostgreSQL's first opens: test_postgres_ledger.py")
    env = {k: v for k, v in os.environ.items() if k != "PROMO_HMAC_KEY"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_OPEN, str(tmp_path), str(n), str(ROUNDS)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(16)
    ]
    deadline = time.monotonic() + 120
    for round_ in range(ROUNDS):
        while len(list(tmp_path.glob(f"ready-{round_}-*"))) < 16 and time.monotonic() < deadline:
            if any(child.poll() is not None for child in children):
                break  # one died: the others wait in vain
            time.sleep(0.005)
        (tmp_path / f"go-{round_}").touch()  # all at the starting line: release them at once

    outcomes = [(child.wait(timeout=120), child.stderr.read()) for child in children]  # type: ignore[union-attr]

    assert [code for code, _ in outcomes] == [0] * 16, [err for _, err in outcomes if err][:1]
    for round_ in range(ROUNDS):
        home = tmp_path / f"home-{round_}"
        db = sqlite3.connect(home / "ledger.sqlite")
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == 16
        db.close()
    assert verify_ledger(tmp_path / "home-0" / "ledger.sqlite").clean


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_ledger_is_migrated_on_open_and_its_promotion_still_resumes_without_duplicates(
    tmp_path: Path, version: int, as_owner: Any, ledger_backend: str
) -> None:
    from builders import add_customers, distributor, everyone, promotion_def, recording_channels

    with open_engine(tmp_path) as engine:
        add_customers(engine, "ann", "bob", "cat")
        add_customers(engine, "dan", consent=())  # skipped: no consent
        engine.create_from_definition(promotion_def(segment=everyone(engine)))
        distributor(engine).send_promotion("promo")
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        engine.record_order(order(order_id="o-1"), customer_id="ann")
        engine.redeem(RedeemRequest("SHARED10", order(order_id="o-1"), customer_id="ann"))
        engine.cancel_order("o-1")
    ledger = ledger_of(tmp_path)
    downgrade_ledger(as_owner(ledger), version)
    if ledger_backend == "postgresql":  # its owner migrates it; the application role may not
        PostgresLedgerStore(as_owner(ledger)).close()

    with open_engine(tmp_path) as engine:
        channels = recording_channels("email")
        again = distributor(engine, channels).send_promotion("promo")
        with engine.store.read() as tx:
            audience = tx.query(
                "SELECT a.customer_id, a.outcome, a.voucher_id = coalesce(o.voucher_id, '')"
                " FROM audience a LEFT JOIN offers o USING (voucher_id) ORDER BY 1",
                (),
            )
            causes = tx.query("SELECT rollback_cause FROM redemptions", ())

    assert ledger_schema_version(ledger) == 3
    assert audience == [("ann", "published", 1), ("bob", "published", 1), ("cat", "published", 1), ("dan", "skipped", 1)]  # fmt: skip
    assert causes == [("order_cancelled",)]
    assert (again.published, channels["email"].sent) == (0, [])
    assert verify_ledger(ledger).clean


def test_the_projection_refuses_a_rollback_of_a_redemption_already_rolled_back(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        engine.create_from_definition(standalone_def("shared", "SHARED10"))
        redeemed = engine.redeem(RedeemRequest("SHARED10", order(), customer_id="alice"))
        engine.rollback(redeemed.redemption_id or "")
        [done] = [
            e for e in engine.store.events() if e.event_type is EventType.REDEMPTION_ROLLED_BACK
        ]
        again = Event(
            EventType.REDEMPTION_ROLLED_BACK, done.occurred_at, done.payload,
            campaign_id=done.campaign_id, voucher_id=done.voucher_id,
            customer_id=done.customer_id, redemption_id=done.redemption_id,
        )  # fmt: skip

        with pytest.raises(LookupError, match="rolled back before"), engine.store.write() as tx:
            tx.append(again)
        with engine.store.read() as tx:
            voucher = tx.voucher_by_code("SHARED10")

    assert voucher is not None and voucher.redemptions == 0  # not -1
