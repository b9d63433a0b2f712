"""Contention: many OS processes, each with its own engine, on one ledger file.

ARCHITECTURE.md: a redemption is one transaction, so under any number of concurrent processes a
single-use voucher is redeemed once and a budget is never overspent; readers never block
writers and are never blocked by them. Every child lines up behind a start file before its
engine call, so the calls really overlap. Every test runs on both ledgers (SQLite, PostgreSQL).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from reliability_helpers import (
    create_ledger,
    event_counts,
    event_rows,
    finish,
    open_engine,
    order,
    projection_row,
    read_only,
    run_lined_up,
    spawn,
    standalone_def,
    unique_def,
    wait_for,
)

from redemption_core.domain.limits import Limits
from redemption_core.engine.redemption import RedeemRequest
from redemption_core.ledger.verify import verify_ledger

PROCESSES = 8
pytestmark = pytest.mark.usefixtures("ledger_backend")


def test_a_single_use_code_is_redeemed_exactly_once_when_eight_processes_race_for_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("once", "ONLY-ONCE", limits={"per_voucher": 1})])
    specs = [
        {"home": str(home), "requests": [{"code": "only-once", "customer_id": f"racer-{i}"}]}
        for i in range(PROCESSES)
    ]

    results = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    winners = [result for result in results if result["ok"]]
    assert len(winners) == 1
    losers = [result for result in results if not result["ok"]]
    assert [result["reasons"] for result in losers] == [["quantity_exceeded"]] * (PROCESSES - 1)
    counts = event_counts(path)
    assert counts["redemption_succeeded"] == 1
    assert counts["redemption_rejected"] == PROCESSES - 1
    [succeeded] = event_rows(path, "redemption_succeeded")
    assert succeeded["redemption_id"] == winners[0]["redemption_id"]
    assert projection_row(path, "vouchers", "code", "ONLY-ONCE")["redemptions"] == 1
    assert verify_ledger(path).clean


def test_a_campaign_budget_shared_by_many_codes_is_never_overspent_under_contention(
    tmp_path: Path,
) -> None:
    # 24 codes of 10.00 off each against a budget of 105.00: at most ten may go through.
    home = tmp_path / "home"
    budget, amount_off, codes_per_process = 10_500, 1000, 3
    path = create_ledger(
        home, [unique_def("capped", amount_off=amount_off, limits={"budget": budget})]
    )
    with open_engine(home) as engine:
        codes = engine.generate_codes("capped", PROCESSES * codes_per_process)
        for i, code in enumerate(codes):
            engine.publish(code, f"holder-{i}")
    specs = [
        {
            "home": str(home),
            "requests": [
                {"code": codes[i], "customer_id": f"holder-{i}"}
                for i in range(p * codes_per_process, (p + 1) * codes_per_process)
            ],
        }
        for p in range(PROCESSES)
    ]

    results = [
        result for child in run_lined_up("call", specs, tmp_path / "line") for result in child
    ]

    spent = sum(result["discount"] for result in results if result["ok"])
    assert spent <= budget
    assert spent == (budget // amount_off) * amount_off  # the budget is used up, not wasted
    rejected = [result for result in results if not result["ok"]]
    assert rejected
    assert all(result["reasons"] == ["campaign_budget_exceeded"] for result in rejected)
    assert projection_row(path, "campaigns", "campaign_id", "capped")["budget_used"] == spent
    ledger_spent = sum(
        row["payload"]["discount"] for row in event_rows(path, "redemption_succeeded")
    )
    assert ledger_spent == spent
    assert verify_ledger(path).clean


def test_single_use_codes_are_used_once_when_processes_redeem_overlapping_batches(
    tmp_path: Path,
) -> None:
    # Four batches of the same twelve codes, each in its own order and for other customers:
    # batches read ahead and lock many vouchers at once.
    home = tmp_path / "home"
    batched = unique_def("batched", rules={"holder_only": False})
    path = create_ledger(home, [batched])
    with open_engine(home) as engine:
        codes = engine.generate_codes("batched", 12)
    specs = [
        {
            "home": str(home),
            "requests": [
                {
                    "op": "redeem_many",
                    "requests": [
                        {"code": code, "customer_id": f"batch-{p}-{i}"}
                        for i, code in enumerate(codes[p:] + codes[:p])
                    ],
                }
            ],
        }
        for p in range(0, 12, 3)
    ]

    batches = [child[0]["results"] for child in run_lined_up("call", specs, tmp_path / "line")]

    winners = [r for batch in batches for r in batch if r["ok"]]
    assert len(winners) == 12
    assert all(r["reasons"] == ["quantity_exceeded"] for b in batches for r in b if not r["ok"])
    assert projection_row(path, "campaigns", "campaign_id", "batched")["redemptions"] == 12
    succeeded = event_rows(path, "redemption_succeeded")
    assert len({row["voucher_id"] for row in succeeded}) == len(succeeded) == 12
    assert verify_ledger(path).clean


def test_a_per_customer_limit_holds_when_one_customer_redeems_from_eight_processes_at_once(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("one-each", "ONE-EACH", limits={"per_customer": 1})])
    specs = [
        {"home": str(home), "requests": [{"code": "ONE-EACH", "customer_id": "alice"}]}
        for _ in range(PROCESSES)
    ]

    results = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    assert sum(result["ok"] for result in results) == 1
    assert sorted(result["reasons"] for result in results if not result["ok"]) == [
        ["customer_limit_exceeded"]
    ] * (PROCESSES - 1)
    assert event_counts(path)["redemption_succeeded"] == 1
    with open_engine(home) as engine:  # the projection remembers alice's one use
        again = engine.redeem(RedeemRequest("ONE-EACH", order(), customer_id="alice"))
        other = engine.redeem(RedeemRequest("ONE-EACH", order(), customer_id="bob"))
    assert [str(reason.code) for reason in again.reasons] == ["customer_limit_exceeded"]
    assert other.ok
    assert verify_ledger(path).clean


def test_a_per_customer_limit_holds_when_one_customer_redeems_eight_different_codes_at_once(
    tmp_path: Path,
) -> None:
    # Eight codes of one campaign without campaign-wide limits: no voucher and no campaign
    # counter is shared between the racers, only the customer.
    home = tmp_path / "home"
    path = create_ledger(home, [unique_def("one-each", limits={"per_customer": 1})])
    with open_engine(home) as engine:
        codes = engine.generate_codes("one-each", PROCESSES)
        for code in codes:
            engine.publish(code, "alice")
    specs = [
        {"home": str(home), "requests": [{"code": code, "customer_id": "alice"}]} for code in codes
    ]

    results = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    assert sum(result["ok"] for result in results) == 1
    assert event_counts(path)["redemption_succeeded"] == 1
    assert verify_ledger(path).clean


def test_a_new_customer_offer_is_used_once_when_one_customer_races_eight_campaigns_for_it(
    tmp_path: Path,
) -> None:
    # Eight campaigns for new customers only: whichever redemption comes first makes the
    # customer no longer new for the others.
    home = tmp_path / "home"
    path = create_ledger(
        home,
        [
            standalone_def(f"welcome-{i}", f"WELCOME-{i}", rules={"new_customers_only": True})
            for i in range(PROCESSES)
        ],
    )
    specs = [
        {"home": str(home), "requests": [{"code": f"WELCOME-{i}", "customer_id": "newbie"}]}
        for i in range(PROCESSES)
    ]

    results = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    assert sum(result["ok"] for result in results) == 1
    assert all(r["reasons"] == ["customer_not_new"] for r in results if not r["ok"])
    assert verify_ledger(path).clean


def test_a_single_use_code_is_held_for_only_one_checkout_when_eight_validate_at_once(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("once", "ONLY-ONCE", limits={"per_voucher": 1})])
    specs = [
        {
            "home": str(home),
            "requests": [
                {"op": "validate", "code": "ONLY-ONCE", "customer_id": f"c{i}", "hold_seconds": 600}
            ],
        }
        for i in range(PROCESSES)
    ]

    holds = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    [held] = [hold for hold in holds if hold["valid"]]
    assert all(hold["reasons"] == ["quantity_exceeded"] for hold in holds if not hold["valid"])
    assert event_counts(path)["validation_hold_created"] == 1
    with open_engine(home) as engine:
        stranger = engine.redeem(RedeemRequest("ONLY-ONCE", order(), customer_id="c-other"))
        holder = engine.redeem(
            RedeemRequest("ONLY-ONCE", order(), customer_id="c0", session_id=held["session_id"])
        )
    assert [str(reason.code) for reason in stranger.reasons] == ["quantity_exceeded"]
    assert holder.ok
    assert verify_ledger(path).clean


def test_one_device_gets_no_more_open_holds_than_its_limit_when_it_holds_eight_codes_at_once(
    tmp_path: Path,
) -> None:
    # Eight campaigns and eight customers: only the device is shared between the racers.
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def(f"c{i}", f"HOLD-{i}") for i in range(PROCESSES)])
    specs = [
        {
            "home": str(home),
            "requests": [
                {
                    "op": "validate",
                    "code": f"HOLD-{i}",
                    "customer_id": f"c{i}",
                    "device_id": "kiosk-1",
                    "hold_seconds": 600,
                }
            ],
        }
        for i in range(PROCESSES)
    ]

    holds = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    limit = Limits().holds_per_device
    assert sum(hold["valid"] for hold in holds) == limit
    assert [h["reasons"] for h in holds if not h["valid"]] == [["hold_limit_exceeded"]] * (
        PROCESSES - limit
    )
    assert event_counts(path)["validation_hold_created"] == limit
    assert verify_ledger(path).clean


def test_a_redemption_is_rolled_back_exactly_once_when_eight_processes_roll_it_back_at_once(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("capped", "CAPPED", limits={"budget": 5000})])
    with open_engine(home) as engine:
        redeemed = engine.redeem(RedeemRequest("CAPPED", order(), customer_id="alice"))
    specs = [
        {
            "home": str(home),
            "requests": [{"op": "rollback", "redemption_id": redeemed.redemption_id}],
        }
        for _ in range(PROCESSES)
    ]

    rollbacks = [child[0] for child in run_lined_up("call", specs, tmp_path / "line")]

    assert sum(rollback["ok"] for rollback in rollbacks) == 1
    assert sorted(rollback["reasons"] for rollback in rollbacks if not rollback["ok"]) == [
        ["already_rolled_back"]
    ] * (PROCESSES - 1)
    counts = event_counts(path)
    assert (counts["redemption_rolled_back"], counts["rollback_rejected"]) == (1, PROCESSES - 1)
    campaign = projection_row(path, "campaigns", "campaign_id", "capped")
    assert (campaign["budget_used"], campaign["redemptions"]) == (0, 0)  # given back once only
    assert verify_ledger(path).clean


def test_limits_hold_under_a_random_mix_of_redemptions_rollbacks_and_holds_from_eight_processes(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    budget = standalone_def("budget", "BUDGET", limits={"budget": 20_000})
    budget["discount"] = {"type": "percent", "percent_off": 20}
    path = create_ledger(
        home,
        [
            budget,
            standalone_def("twice", "TWICE", limits={"per_customer": 2}),
            standalone_def("thrice", "THRICE", limits={"per_voucher": 3}),
        ],
    )
    specs = [
        {"home": str(home), "seed": seed, "count": 150, "codes": ["BUDGET", "TWICE", "THRICE"]}
        for seed in range(PROCESSES)
    ]

    run_lined_up("mixed", specs, tmp_path / "line")

    rolled_back = {row["redemption_id"] for row in event_rows(path, "redemption_rolled_back")}
    live = [
        row
        for row in event_rows(path, "redemption_succeeded")
        if row["redemption_id"] not in rolled_back
    ]
    spent = sum(row["payload"]["discount"] for row in live if row["campaign_id"] == "budget")
    assert spent <= 20_000
    assert projection_row(path, "campaigns", "campaign_id", "budget")["budget_used"] == spent
    per_customer = Counter(row["customer_id"] for row in live if row["campaign_id"] == "twice")
    assert max(per_customer.values(), default=0) <= 2
    assert sum(row["campaign_id"] == "thrice" for row in live) <= 3
    assert len(rolled_back) == event_counts(path)["redemption_rolled_back"]  # each once only
    report = verify_ledger(path)
    assert report.clean, report.differences


def test_a_reader_process_reads_while_a_writer_process_writes_without_errors(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("busy", "BUSY")])
    started, stop = tmp_path / "started", tmp_path / "stop"
    reader = spawn(
        "read-loop",
        {"path": str(path), "started": str(started), "stop": str(stop), "pause_s": 0.003},
    )
    wait_for(started.exists, 20, "the reader to start")

    writer = spawn("write-many", {"home": str(home), "code": "BUSY", "count": 300, "tag": "w"})
    [written] = finish(writer)
    stop.touch()
    [seen] = finish(reader)

    written_doc, seen_doc = json.loads(written), json.loads(seen)
    assert written_doc["written"] == 300
    assert seen_doc["errors"] == []
    assert seen_doc["unstable"] == []  # a snapshot never moved under the reader
    sequence = seen_doc["seen"]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) >= 3  # the reader saw the ledger grow, snapshot by snapshot
    assert seen_doc["events_read"] == event_counts(path).total()


def test_an_open_read_snapshot_does_not_block_a_writer_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("busy", "BUSY")])
    reader = read_only(path)
    reader.execute("BEGIN")
    before = reader.execute("SELECT count(*) FROM events").fetchone()[0]

    # The writer's busy timeout is 60 s: were it blocked by the snapshot, this would time out.
    writer = spawn("write-many", {"home": str(home), "code": "BUSY", "count": 20, "tag": "w"})
    finish(writer, timeout=20)

    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == before
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == before + 20
    reader.close()


def test_an_open_write_transaction_neither_blocks_a_reader_nor_shows_it_uncommitted_rows(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("busy", "BUSY")])
    holding, release = tmp_path / "holding", tmp_path / "release"
    writer = spawn(
        "hold-write", {"home": str(home), "holding": str(holding), "release": str(release)}
    )
    wait_for(holding.exists, 20, "the writer to hold its transaction open")

    # A busy timeout of 0.2 s: a reader that had to wait for the writer would fail here.
    reader = read_only(path, timeout=0.2)
    count_during = reader.execute("SELECT count(*) FROM events").fetchone()[0]
    members_during = reader.execute("SELECT count(*) FROM segment_members").fetchone()[0]
    release.touch()
    finish(writer)
    count_after = reader.execute("SELECT count(*) FROM events").fetchone()[0]
    reader.close()

    assert members_during == 0
    assert count_after == count_during + 1
    assert verify_ledger(path).clean


def test_verify_run_while_a_writer_process_writes_always_finds_the_projection_clean(
    tmp_path: Path,
) -> None:
    # verify reads events and projection from one snapshot; two snapshots would disagree.
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("busy", "BUSY")])
    writer = spawn("write-many", {"home": str(home), "code": "BUSY", "count": 600, "tag": "w"})

    reports = []
    while writer.poll() is None:
        reports.append(verify_ledger(path))
    finish(writer)

    assert len(reports) >= 3
    assert [report.differences for report in reports if not report.clean] == []
    assert len({report.events for report in reports}) >= 3  # it saw the ledger grow
