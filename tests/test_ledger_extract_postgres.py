"""The extract from a PostgreSQL ledger: every event in the lake exactly once, whatever the
order in which concurrent writers commit, and the same lake as from SQLite for the same events.

PostgreSQL hands out seqs at insert and transactions commit in another order, so an extract
that remembered the highest seq it had read would skip an event committed later with a
lower seq. The extract takes transactions below a visibility horizon instead
(pipelines/ledger_extract.py).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from pg_cluster import Cluster
from reliability_helpers import Reader, run_lined_up

from pipelines.ledger_extract import Lake, PostgresLedger, sync_lake
from redemption_core.domain.events import Event, EventType
from redemption_core.ledger.postgres import PostgresLedgerStore, copy_ledger
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.simulate import SimulationConfig, simulate

WRITERS = 4
EVENTS = 150  # per writer


@pytest.fixture(scope="module")
def sqlite_ledger_with_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated business in a SQLite ledger (days of every kind of event)."""
    home = tmp_path_factory.mktemp("simulated")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROMO_LEDGER_URL", raising=False)
        simulate(home, SimulationConfig(customers=60, days=6, seed=5), progress=None)
    return home / "ledger.sqlite"


def lake_seqs(lake: Lake) -> list[int]:
    seqs: list[int] = []
    for path in lake.day_files():
        seqs.extend(pq.read_table(path, columns=["seq"])["seq"].to_pylist())
    return seqs


def member_added(customer_id: str) -> Event:
    return Event(
        EventType.SEGMENT_MEMBER_ADDED,
        datetime.now(UTC),
        payload={"segment_id": "trap"},
        customer_id=customer_id,
    )


def test_an_event_committed_after_a_later_seq_was_extracted_still_reaches_the_lake(
    tmp_path: Path, postgres_url: str
) -> None:
    # The trap itself, step by step: A takes seq n and stays open, B takes n + 1 and
    # commits, the extract runs, then A commits.
    ledger, lake = PostgresLedger(postgres_url), Lake(tmp_path / "lake")
    first, second = PostgresLedgerStore(postgres_url), PostgresLedgerStore(postgres_url)
    with first.write(concurrent=True) as slow:
        slow.append(member_added("slow"))
        slow.flush()  # type: ignore[attr-defined]
        slow.query("SELECT 1", ())  # the insert is done: its seq is taken
        with second.write(concurrent=True) as fast:
            fast.append(member_added("fast"))
        during = sync_lake(ledger, lake)
    after = sync_lake(ledger, lake)
    first.close()
    second.close()

    assert during.new_events == 0  # B's event waits behind A's open transaction
    assert after.new_events == 2
    assert sorted(lake_seqs(lake)) == [1, 2]


def test_an_extract_running_beside_concurrent_writers_takes_every_event_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    ledger = PostgresLedger(postgres_url)
    lake = Lake(tmp_path / "lake")
    reader = Reader(postgres_url)
    naive_seen: set[int] = set()  # what a watermark on seq would have taken
    stop = threading.Event()
    runs = []

    def extract_until_stopped() -> None:
        while not stop.is_set():
            runs.append(sync_lake(ledger, lake))

    def watermark_until_stopped() -> None:
        watermark = 0
        while not stop.is_set():
            rows = reader.execute(
                "SELECT seq FROM events WHERE seq > ? ORDER BY seq", (watermark,)
            ).fetchall()
            naive_seen.update(row[0] for row in rows)
            watermark = max([watermark, *naive_seen])
            stop.wait(0.002)

    threads = [
        threading.Thread(target=extract_until_stopped),
        threading.Thread(target=watermark_until_stopped),
    ]
    for thread in threads:
        thread.start()
    specs = [
        {"ledger": postgres_url, "seed": i, "tag": f"w{i}", "count": EVENTS, "max_pause_s": 0.03}
        for i in range(WRITERS)
    ]
    try:
        run_lined_up("slow-commits", specs, tmp_path / "line")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    final = sync_lake(ledger, lake)

    ledger_seqs = {row[0] for row in reader.execute("SELECT seq FROM events", ()).fetchall()}
    reader.close()
    in_lake = lake_seqs(lake)
    assert len(ledger_seqs) == WRITERS * EVENTS
    assert sorted(in_lake) == sorted(ledger_seqs)  # every event, none twice
    assert len(runs) >= 3 and sum(run.new_events for run in [*runs, final]) == len(ledger_seqs)
    # The trap was there: a watermark on seq missed events that committed out of seq order.
    assert ledger_seqs - naive_seen
    state = json.loads(lake.state_path.read_text())
    assert state["position"] > 0


def test_a_postgresql_ledger_and_its_sqlite_original_give_the_same_lake_byte_for_byte(
    tmp_path: Path,
    postgres_url: str,
    postgres_cluster: Cluster,
    sqlite_ledger_with_history: Path,
) -> None:
    source = SqliteLedgerStore(sqlite_ledger_with_history, read_only=True)
    owner = postgres_cluster.admin_url(psycopg.conninfo.conninfo_to_dict(postgres_url)["dbname"])
    copied = copy_ledger(source, owner)  # migrating is the owner's work
    source.close()
    from_sqlite, from_postgres = Lake(tmp_path / "lake-sqlite"), Lake(tmp_path / "lake-pg")

    sync_lake(sqlite_ledger_with_history, from_sqlite)
    sync_lake(PostgresLedger(postgres_url), from_postgres)

    files = [path.relative_to(from_sqlite.root) for path in from_sqlite.day_files()]
    assert copied > 100 and len(files) >= 3
    assert files == [path.relative_to(from_postgres.root) for path in from_postgres.day_files()]
    for name in files:
        assert (from_sqlite.root / name).read_bytes() == (from_postgres.root / name).read_bytes()
