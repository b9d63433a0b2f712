"""Benchmark of the redemption core on PostgreSQL (part of `make bench-core`).

    python bench/core_pg.py        # on its own; bench/core.py runs it after the SQLite part

A throwaway cluster is started for the run (initdb in a temporary directory, a free loopback
port, fsync=on, synchronous_commit=on: every commit is flushed to disk) and removed at the end.
The engine connects as the application role, as in production. What is timed:

- pg_redeem_per_s_single: engine.redeem, one transaction per redemption, one process.
- pg_redeem_per_s_grouped: engine.redeem_many, one transaction per batch (BATCH_SIZE).
- pg_redeem_per_s_8proc: eight processes, each with its own engine, redeeming their own codes
  of the same campaign with engine.redeem at once (lined up behind a start file); the rate is
  all redemptions over the time from the start to the last process done.
- pg_raw_insert_per_s: pgbench inserting event-sized rows (the grouped runs' average row and
  payload size) into a plain table, one client, a transaction per batch of BATCH_SIZE rows
  (one INSERT ... SELECT over generate_series: the server's insert rate, not round trips).

Alternatives measured beside them (the choices in docs/runbook.md):
- pg_redeem_per_s_8proc_serializable: the eight processes again with SERIALIZABLE transactions
  and retries instead of row locks.
- pgbench, eight clients, one row per transaction (median of RUNS), into: a plain table
  (raw_8clients_plain), the same with the txid column and its index that the extract's
  visibility horizon needs (raw_8clients_txid), and the plain table with every append
  serialised through one advisory lock held to the commit (raw_8clients_append_lock): the
  costs of the ways out of the sequence trap.

The campaign is bench/core.py's (single-use codes held by their customers, a per-customer
limit, a budget): the budget makes every redemption of the campaign lock its counters.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from core import (  # noqa: E402
    BATCH_SIZE,
    Workload,
    chunks,
    emit,
    rate_record,
    rounded,
    run_grouped,
    run_single,
)
from pg_cluster import Cluster  # noqa: E402

from redemption_core.domain.events import COLUMNS  # noqa: E402
from redemption_core.domain.orders import Order, OrderItem, RequestContext  # noqa: E402
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine  # noqa: E402
from redemption_core.ledger.postgres import PostgresLedgerStore  # noqa: E402
from redemption_core.ledger.store import WriteConflict  # noqa: E402

RUNS = 3
SINGLE_PER_RUN = 400
GROUPED_BATCHES = 4
PROCESSES = 8
PER_PROCESS = 150
PGBENCH_SECONDS = 5
TARGETS = {"grouped_to_raw_ratio": 0.3, "8proc_over_single": 1.0}


def _open_engine(url: str, *, serializable: bool = False) -> RedemptionEngine:
    from redemption_core.ledger.home import context_hasher

    store = PostgresLedgerStore(url, serializable=serializable)
    return RedemptionEngine(store, context_hasher(Path(os.environ["PROMO_HOME"])))


# -- eight processes ---------------------------------------------------------------------------
def worker(spec_path: str) -> None:
    """One of the eight: redeem its requests one by one after the start file appears."""
    # psycopg logs each transaction PostgreSQL gives up in a pipeline; counted below instead.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    spec = json.loads(Path(spec_path).read_text())
    engine = _open_engine(spec["url"], serializable=spec["serializable"])
    requests = [
        RedeemRequest(
            code=r["code"],
            order=Order(
                amount=r["amount"],
                currency="EUR",
                items=tuple(OrderItem(*item) for item in r["items"]),
                id=r["order_id"],
            ),
            customer_id=r["customer"],
            context=RequestContext(**r["context"]),
        )
        for r in spec["requests"]
    ]
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.0005)
    failed = conflicts = 0
    for request in requests:
        while True:  # SERIALIZABLE may give up more often than the engine retries by itself
            try:
                failed += not engine.redeem(request).ok
                break
            except WriteConflict:
                conflicts += 1
    done = time.time()
    engine.close()
    print(json.dumps({"done": done, "failed": failed, "gave_up": conflicts}), flush=True)


def _request_document(request: RedeemRequest) -> dict[str, Any]:
    context = request.context
    return {
        "code": request.code,
        "customer": request.customer_id,
        "order_id": request.order.id,
        "amount": request.order.amount,
        "items": [
            [i.product_id, i.quantity, i.unit_price, i.category] for i in request.order.items
        ],
        "context": {
            "device_id": context.device_id,
            "ip": context.ip,
            "store_id": context.store_id,
            "sales_channel": context.sales_channel,
        },
    }


def run_processes(
    work: Workload, url: str, folder: Path, *, serializable: bool
) -> tuple[float, int]:
    """Seconds from the start to the last process done, and how many times the engine gave a
    redemption up after its own retries (WriteConflict), to be sent again."""
    folder.mkdir(parents=True)
    go = folder / "go"
    children = []
    for n in range(PROCESSES):
        spec = {
            "url": url,
            "serializable": serializable,
            "ready": str(folder / f"ready-{n}"),
            "go": str(go),
            "requests": [
                _request_document(r) for r in work.redeem_requests(work.take(PER_PROCESS))
            ],
        }
        path = folder / f"spec-{n}.json"
        path.write_text(json.dumps(spec))
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(path)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    while not all((folder / f"ready-{n}").exists() for n in range(PROCESSES)):
        if any(child.poll() is not None for child in children):
            raise SystemExit("bench: a worker died before the start")
        time.sleep(0.01)
    started = time.time()
    go.touch()
    results = [json.loads(child.communicate()[0].splitlines()[-1]) for child in children]
    if any(result["failed"] for result in results):
        raise SystemExit(f"bench 8proc: redemptions failed: {results}")
    return max(result["done"] for result in results) - started, sum(
        result["gave_up"] for result in results
    )


# -- pgbench -----------------------------------------------------------------------------------
def pgbench(cluster: Cluster, url: str, script: str, *, clients: int, seconds: int) -> float:
    """Transactions per second of `script`, run by pgbench as the cluster's OS user."""
    folder = Path(tempfile.mkdtemp(prefix="promo-pgbench-"))
    os.chmod(folder, 0o755)
    path = folder / "script.sql"
    path.write_text(script)
    os.chmod(path, 0o644)
    out = subprocess.run(
        [
            *cluster._as_user,
            str(cluster._bin / "pgbench"),
            "-n",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(seconds),
            "-f",
            str(path),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    raise SystemExit(f"bench: no tps in pgbench's output:\n{out}")


def raw_tables(url: str, row_bytes: float, payload_bytes: float, rows: int) -> dict[str, str]:
    """Create the raw tables; the INSERT of `rows` event-sized rows into each."""
    import psycopg

    columns = ", ".join(f"{name} text" for name in COLUMNS)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE TABLE raw_plain (seq bigint GENERATED ALWAYS AS IDENTITY, {columns})")
        db.execute(
            f"CREATE TABLE raw_txid (seq bigint GENERATED ALWAYS AS IDENTITY, {columns}, txid"
            " bigint NOT NULL DEFAULT (CAST(CAST(pg_current_xact_id() AS text) AS bigint)))"
        )
        db.execute("CREATE INDEX ON raw_txid (txid)")
    # The other columns share what is left of the row beside the payload.
    other = max(1, int((row_bytes - payload_bytes) / (len(COLUMNS) - 1)))
    values = ", ".join(
        f"repeat(md5(random()::text), {max(1, int(payload_bytes) // 32)})"
        if name == "payload"
        else f"left(md5(random()::text), {min(other, 32)})"
        for name in COLUMNS
    )
    names = ", ".join(COLUMNS)
    return {
        table: f"INSERT INTO {table} ({names}) SELECT {values} FROM generate_series(1, {rows})"
        for table in ("raw_plain", "raw_txid")
    }


# -- the run -------------------------------------------------------------------------------------
def pg_run(batch_size: int = BATCH_SIZE) -> dict[str, Any]:
    cluster = Cluster(fsync=True, settings={"max_locks_per_transaction": "256"}).start()
    home = Path(tempfile.mkdtemp(prefix="promo-bench-pg-"))
    os.environ["PROMO_HOME"] = str(home)
    try:
        url = cluster.create_ledger()
        engine = _open_engine(url)
        with engine.store.read() as tx:
            settings = dict(
                tx.query(
                    "SELECT name, setting FROM pg_settings WHERE name IN"
                    " ('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')",
                    (),
                )
            )
        if settings.get("fsync") != "on" or settings.get("synchronous_commit") != "on":
            raise SystemExit(f"bench: the server is not durable: {settings}")
        work = Workload(engine)
        work.create_campaign()
        need = (
            50
            + RUNS * SINGLE_PER_RUN
            + (RUNS * GROUPED_BATCHES + 1) * batch_size
            + 2 * RUNS * PROCESSES * PER_PROCESS
        )
        work.generate(need)
        work.publish_all()

        run_single(engine, work.redeem_requests(work.take(50)))  # warm-up
        single_rates = []
        for run in range(1, RUNS + 1):
            requests = work.redeem_requests(work.take(SINGLE_PER_RUN))
            record = rate_record(
                "pg_redeem_single", run, len(requests), run_single(engine, requests)
            )
            emit(record)
            single_rates.append(record["per_s"])

        run_grouped(engine, chunks(work.redeem_requests(work.take(batch_size)), batch_size))
        grouped_rates = []
        for run in range(1, RUNS + 1):
            codes = work.take(GROUPED_BATCHES * batch_size)
            batches = chunks(work.redeem_requests(codes), batch_size)
            elapsed = run_grouped(engine, batches)
            record = rate_record(
                "pg_redeem_grouped", run, len(codes), elapsed, batch_size=batch_size
            )
            emit(record)
            grouped_rates.append(record["per_s"])
        with engine.store.read() as tx:
            [(row_bytes, payload_bytes)] = tx.query(
                "SELECT avg(octet_length(event_id) + octet_length(payload) + coalesce(octet_length("
                "device_hash), 0) + coalesce(octet_length(ip_hash), 0) + 120),"
                " avg(octet_length(payload)) FROM events WHERE event_type = 'redemption_succeeded'",
                (),
            )
        engine.close()

        folder = home / "procs"
        eight_runs: dict[str, list[float]] = {"rows": [], "serializable": []}
        for run in range(1, RUNS + 1):  # interleaved: load drifts hit both alike
            for name, serializable in (("rows", False), ("serializable", True)):
                count = PROCESSES * PER_PROCESS
                elapsed, gave_up = run_processes(
                    work, url, folder / f"{name}-{run}", serializable=serializable
                )
                record = rate_record(
                    f"pg_redeem_8proc_{name}", run, count, elapsed, gave_up=gave_up
                )
                emit(record)
                eight_runs[name].append(record["per_s"])
        eight = {name: statistics.median(runs) for name, runs in eight_runs.items()}

        owner = cluster.admin_url(psycopg_dbname(url))
        batched = raw_tables(owner, float(row_bytes), float(payload_bytes), batch_size)
        raw_rates = []
        for run in range(1, RUNS + 1):
            script = f"{batched['raw_plain']};\n"
            tps = pgbench(cluster, owner, script, clients=1, seconds=PGBENCH_SECONDS)
            raw_rates.append(rounded(tps * batch_size))
            emit({"measure": "pg_raw_insert", "run": run, "per_s": raw_rates[-1]})
        one = {
            table: sql.replace(f"generate_series(1, {batch_size})", "generate_series(1, 1)")
            for table, sql in batched.items()
        }
        scripts = {
            "raw_8clients_plain": f"{one['raw_plain']};\n",
            "raw_8clients_txid": f"{one['raw_txid']};\n",
            "raw_8clients_append_lock": "BEGIN;\nSELECT pg_advisory_xact_lock(42);\n"
            f"{one['raw_plain']};\nCOMMIT;\n",
        }
        alternative_runs: dict[str, list[float]] = {name: [] for name in scripts}
        for run in range(1, RUNS + 1):
            for name, script in scripts.items():  # interleaved: load drifts hit all alike
                tps = pgbench(cluster, owner, script, clients=8, seconds=PGBENCH_SECONDS)
                alternative_runs[name].append(rounded(tps))
            emit(
                {
                    "measure": "pg_sequence_trap_alternatives",
                    "run": run,
                    **{name: runs[-1] for name, runs in alternative_runs.items()},
                }
            )
        alternatives = {name: statistics.median(runs) for name, runs in alternative_runs.items()}
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    single = statistics.median(single_rates)
    grouped = statistics.median(grouped_rates)
    raw = statistics.median(raw_rates)
    return {
        "pg_redeem_per_s_single": single,
        "pg_redeem_per_s_grouped": grouped,
        "pg_redeem_per_s_8proc": eight["rows"],
        "pg_raw_insert_per_s": raw,
        "pg_grouped_to_raw_ratio": round(grouped / raw, 4),
        "pg_8proc_to_single_ratio": round(eight["rows"] / single, 3),
        "pg_redeem_per_s_8proc_serializable": eight["serializable"],
        "pg_sequence_trap_inserts_per_s": {k: rounded(v) for k, v in alternatives.items()},
        "pg_runs": {
            "redeem_per_s_single": single_rates,
            "redeem_per_s_grouped": grouped_rates,
            "raw_insert_per_s": raw_rates,
            "redeem_per_s_8proc": eight_runs["rows"],
            "redeem_per_s_8proc_serializable": eight_runs["serializable"],
        },
        "pg_counts": {
            "single_per_run": SINGLE_PER_RUN,
            "grouped_per_run": GROUPED_BATCHES * batch_size,
            "batch_size": batch_size,
            "processes": PROCESSES,
            "per_process": PER_PROCESS,
            "pgbench_seconds": PGBENCH_SECONDS,
        },
        "pg_server": settings,
        "pg_targets": TARGETS,
        "pg_targets_met": {
            "grouped_to_raw_ratio": grouped / raw >= TARGETS["grouped_to_raw_ratio"],
            "8proc_over_single": eight["rows"] > single,
        },
    }


def psycopg_dbname(url: str) -> str:
    import psycopg

    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        emit(pg_run())
