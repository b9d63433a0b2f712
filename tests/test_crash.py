"""Crashes: SIGKILL a child in the middle of its work, again and again, then inspect the ledger.

ARCHITECTURE.md: a crash at any instant (kill -9) leaves a ledger that is a prefix of what was
committed. The child acknowledges a redemption on stdout only after the engine returned, so
every acknowledged redemption must be in the ledger, and at most the one in flight may be
there unacknowledged; nothing may be half-written, and the next engine carries on. Every test
runs on both ledgers; on PostgreSQL the server itself is also crashed mid-load.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pg_cluster import Cluster
from reliability_helpers import (
    KillableChild,
    Ledger,
    create_ledger,
    event_counts,
    loop_request,
    open_engine,
    order,
    read_only,
    standalone_def,
    unique_def,
    wait_for,
)

from redemption_core.engine.redemption import CODES_PER_TRANSACTION, RedeemRequest
from redemption_core.ledger.verify import verify_ledger

SEED = 20_260_304
pytestmark = pytest.mark.usefixtures("ledger_backend")


def assert_ledger_is_whole(path: Ledger) -> None:
    """Integrity, no gaps in seq, every payload complete JSON, projection explained.

    PostgreSQL hands out seqs from a sequence, which a transaction that rolls back (the one
    the kill cut short) does not give back: there, seqs only have to increase."""
    db = read_only(path)
    try:
        if not db.postgres:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    seqs = [seq for seq, _ in rows]
    if db.postgres:
        assert len(set(seqs)) == len(seqs) and all(seq > 0 for seq in seqs)
    else:
        assert seqs == list(range(1, len(rows) + 1))
    for seq, payload in rows:
        assert isinstance(json.loads(payload), dict), f"event {seq} is not a JSON object"
    report = verify_ledger(path)
    assert report.clean, report.differences
    assert report.events == len(rows)


def redemption_ids(path: Ledger, *, customer_id: str) -> set[str]:
    db = read_only(path)
    try:
        rows = db.execute(
            "SELECT redemption_id FROM events WHERE event_type = 'redemption_succeeded'"
            " AND customer_id = ?",
            (customer_id,),
        ).fetchall()
    finally:
        db.close()
    return {row[0] for row in rows}


def assert_a_new_engine_can_redeem(home: Path, code: str) -> None:
    with open_engine(home) as engine:
        result = engine.redeem(RedeemRequest(code, order(), customer_id="after-crash"))
    assert result.ok, result.reasons


def test_every_acknowledged_redemption_survives_a_kill_at_a_random_instant(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("loop", "LOOP")])
    rng = random.Random(SEED)
    acknowledged_total = 0

    for round_ in range(15):
        tag = f"k{round_}"
        child = KillableChild("redeem-loop", {"home": str(home), "code": "LOOP", "tag": tag})
        child.wait_ready()
        time.sleep(rng.uniform(0.05, 0.4))
        acked = child.kill_hard()

        in_ledger = redemption_ids(path, customer_id=f"{tag}-c")
        assert set(acked) <= in_ledger, f"round {round_}: acknowledged, then lost"
        assert len(in_ledger - set(acked)) <= 1  # only the one in flight may be unacknowledged
        assert_ledger_is_whole(path)
        assert_a_new_engine_can_redeem(home, "LOOP")
        acknowledged_total += len(acked)

    assert acknowledged_total > 15  # the kills landed in the middle of the work


def test_retrying_after_a_kill_with_the_same_keys_redeems_each_request_exactly_once(
    tmp_path: Path,
) -> None:
    # The client saw ACKs for requests 1..n and no answer for n + 1, so it retries all of
    # them: the acknowledged ones replay, the one in flight goes through at most once.
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("loop", "LOOP")])
    rng = random.Random(SEED + 3)

    for round_ in range(4):
        tag = f"r{round_}"
        child = KillableChild("redeem-loop", {"home": str(home), "code": "LOOP", "tag": tag})
        child.wait_ready()
        time.sleep(rng.uniform(0.05, 0.3))
        acked = child.kill_hard()

        with open_engine(home) as engine:
            retries = [
                engine.redeem(loop_request("LOOP", tag, number))
                for number in range(1, len(acked) + 2)
            ]

        assert [retry.redemption_id for retry in retries[: len(acked)]] == acked
        assert all(retry.replayed for retry in retries[: len(acked)])
        assert retries[-1].ok
        assert len(redemption_ids(path, customer_id=f"{tag}-c")) == len(acked) + 1
        db = read_only(path)
        keyed = db.execute(
            "SELECT idempotency_key, count(*) FROM events WHERE idempotency_key LIKE ?"
            " GROUP BY 1 HAVING count(*) > 1",
            (f"{tag}-%",),
        ).fetchall()
        db.close()
        assert keyed == []
        assert_ledger_is_whole(path)


def test_a_kill_during_batch_redemptions_keeps_each_batch_all_or_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("batch", "BATCH")])
    rng = random.Random(SEED + 1)
    batch = 50

    for round_ in range(6):
        tag = f"b{round_}"
        child = KillableChild(
            "redeem-many-loop", {"home": str(home), "code": "BATCH", "tag": tag, "batch": batch}
        )
        child.wait_ready()
        time.sleep(rng.uniform(0.05, 0.4))
        acked = set(child.kill_hard())

        in_ledger = redemption_ids(path, customer_id=f"{tag}-c")
        assert acked <= in_ledger
        assert len(in_ledger) % batch == 0  # never a part of a batch
        assert len(in_ledger) - len(acked) in (0, batch)
        assert_ledger_is_whole(path)
        assert_a_new_engine_can_redeem(home, "BATCH")


def test_a_kill_during_code_generation_leaves_only_whole_transactions_of_codes(
    tmp_path: Path, fresh_ledger: Callable[[], None]
) -> None:
    rng = random.Random(SEED + 2)
    chunk = CODES_PER_TRANSACTION
    count = 3 * chunk + chunk // 2

    for round_ in range(2):
        fresh_ledger()
        home = tmp_path / f"home-{round_}"
        path = create_ledger(home, [unique_def("many")])
        child = KillableChild(
            "generate", {"home": str(home), "campaign_id": "many", "count": count}
        )
        child.wait_ready()
        # Kill once the first transaction of codes is in, somewhere inside a later one.
        wait_for(lambda: event_counts(path)["voucher_created"] > 0, 30, "the first codes")  # noqa: B023
        time.sleep(rng.uniform(0.02, 0.3))
        child.kill_hard()

        vouchers = event_counts(path)["voucher_created"]
        assert vouchers in (chunk, 2 * chunk, 3 * chunk, count)
        db = read_only(path)
        projected = db.execute("SELECT vouchers FROM campaigns WHERE campaign_id = 'many'")
        assert projected.fetchone() == (vouchers,)
        assert db.execute("SELECT count(*) FROM vouchers").fetchone() == (vouchers,)
        db.close()
        assert_ledger_is_whole(path)
        with open_engine(home) as engine:
            assert len(engine.generate_codes("many", 3)) == 3


def test_every_acknowledged_redemption_survives_postgresql_crashing_mid_load(
    tmp_path: Path, ledger_backend: str, postgres_cluster: Cluster
) -> None:
    # The server is stopped as a crash would stop it (immediate: no checkpoint, recovery at
    # the next start) while a writer redeems with idempotency keys; the writer retries the
    # request it had in flight until the server answers again, as a client would.
    if ledger_backend != "postgresql" or postgres_cluster.external is not None:
        pytest.skip("crashes the throwaway PostgreSQL cluster")
    home = tmp_path / "home"
    path = create_ledger(home, [standalone_def("loop", "LOOP")])
    rng = random.Random(SEED + 4)
    child = KillableChild(
        "redeem-loop", {"home": str(home), "code": "LOOP", "tag": "pg", "retry": True}
    )
    child.wait_ready()
    try:
        for _ in range(3):
            time.sleep(rng.uniform(0.2, 0.5))
            postgres_cluster.restart(immediate=True)
        time.sleep(0.5)
    finally:
        acked = child.kill_hard()

    in_ledger = redemption_ids(path, customer_id="pg-c")
    assert len(acked) > 10
    assert set(acked) <= in_ledger
    assert len(in_ledger - set(acked)) <= 1
    assert_ledger_is_whole(path)
    with open_engine(home) as engine:  # the keys the writer got answers for replay
        retries = [engine.redeem(loop_request("LOOP", "pg", n)) for n in range(1, len(acked) + 1)]
    assert [retry.redemption_id for retry in retries] == acked
