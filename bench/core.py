"""Benchmark of the redemption core: durable redemption throughput, validation latency,
code generation, and the raw durable insert rate of the same SQLite store for comparison;
then the PostgreSQL figures (bench/core_pg.py) in the same run.

    python bench/core.py                      # the full run (make bench-core)
    python bench/core.py --profile grouped    # one run of a part under cProfile (stderr)

Everything runs against a fresh ledger in a temporary PROMO_HOME that is removed at the end.
The store is opened with its default durable=True (WAL, synchronous=FULL: every commit
fsyncs). What is timed:

- codes: engine.generate_codes into the ledger, end to end (fresh-code checks, events,
  projection, commits). The codes generated here are the campaign's codes used below.
- single: engine.redeem, one write transaction (one fsync) per redemption.
- grouped: engine.redeem_many, one transaction per batch of --batch-size requests.
- validate: engine.validate, per-call latency; the engine buffers validation events and
  writes them every 256 calls inside a call, and those calls are part of the measure.
- raw: plain executemany of event rows into a table with the events columns in a fresh
  SQLite database opened with the store's own pragmas (WAL, synchronous=FULL), one
  transaction per batch, same batch size and row count as grouped. The rows are copies of
  the redemption events the grouped runs wrote, so shape and payload size are the real ones.
  The same rows are also inserted into a table with the ledger's real events DDL (unique
  event_id, AUTOINCREMENT, json_valid check, triggers), reported as raw_events_ddl_insert_per_s,
  and, as raw_events_ddl_prefilled_insert_per_s, every grouped run's rows are replayed into
  that DDL in a database holding a copy of the ledger's events from before the grouped runs:
  the events-table share of the grouped runs alone, at the ledger's real size.

Requests (orders, contexts) are built before the clock starts: they stand for what the API
layer hands the engine. Before each timed loop the harness's own objects are frozen out of the
garbage collector (gc.freeze), so that a full GC pass over the harness's heap (setup data,
prepared requests: ~90-150 ms) is not charged to the core; collections of what the core
allocates while timed still count. Codes are redeemed in random order (customers come back in
no particular order), not in the order they were created. Every figure is the median of
several runs; the runs are listed. Each measurement prints a JSON line as it completes; the
last line is the summary object.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import math
import os
import platform
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script (`python bench/core.py`): import the redemption_core of this tree, whatever
# else the environment's path would find first.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redemption_core  # noqa: E402
from redemption_core.domain.campaigns import campaign_from_dict  # noqa: E402
from redemption_core.domain.codes import CodeConfig, CodeGenerator  # noqa: E402
from redemption_core.domain.events import COLUMNS, Event, EventType  # noqa: E402
from redemption_core.domain.orders import Order, OrderItem, RequestContext  # noqa: E402
from redemption_core.domain.parsing import iso  # noqa: E402
from redemption_core.engine.redemption import (  # noqa: E402
    RedeemRequest,
    RedemptionEngine,
    RedemptionResult,
)
from redemption_core.ledger.sqlite import connect  # noqa: E402
from redemption_core.ledger.sqlite_schema import EVENTS_SCHEMA  # noqa: E402


def code_fingerprint() -> dict[str, Any]:
    """Which redemption_core was measured: a hash of its sources as imported, and git state."""
    imported = Path(redemption_core.__file__).resolve().parent
    if imported != ROOT / "redemption_core":
        raise SystemExit(f"bench: imported redemption_core from {imported}, not from {ROOT}")
    digest = hashlib.sha256()
    for path in sorted((ROOT / "redemption_core").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    info: dict[str, Any] = {"core_sha256": digest.hexdigest()[:16]}
    try:
        git = ["git", "-C", str(ROOT)]
        info["git_head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "redemption_core"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        info["core_uncommitted_files"] = sorted(line[3:] for line in changed if line.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


CODE = code_fingerprint()  # taken right after the import, before anything can change
LOAD_AT_START = os.getloadavg()  # other work on the machine skews every figure

RUNS = 3
RAW_RUNS = 5  # cheap (a fraction of a second each) and the noisiest figure
CODES_PER_RUN = 40_000
SINGLE_PER_RUN = 3_000
SINGLE_WARMUP = 200
BATCH_SIZE = 1_000
GROUPED_BATCHES = 20
GROUPED_WARMUP_BATCHES = 1
VALIDATE_PER_RUN = 20_000
VALIDATE_WARMUP = 1_000
VALIDATE_VALID_SHARE = 0.8  # the rest is split evenly over four kinds of invalid request
VALIDATE_POOL = 10_000  # unredeemed codes validations draw from

TARGETS = {"redeem_per_s_single": 3_000, "redeem_per_s_grouped": 20_000, "validate_p99_ms": 1.0}

CAMPAIGN_ID = "bench-spring-sale"
CURRENCY = "EUR"
SALES_CHANNELS = ("web", "app", "pos")
STORES = (*(f"store-{n:03d}" for n in range(1, 41)), "web-eu")
MIN_ORDER = 1_500
CATEGORIES = ("shoes", "shirts", "trousers", "bags", "accessories", "outdoor")
PUBLISH_CHUNK = 20_000


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def rounded(value: float, digits: int = 1) -> float:
    return round(value, digits)


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


class Workload:
    """A campaign with real rules, its codes published one per customer, and requests."""

    def __init__(self, engine: RedemptionEngine, seed: int = 20_240_601) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.holders: dict[str, str] = {}  # code -> customer
        self.fresh: list[str] = []  # published codes not yet used, in the order to redeem
        self.redeemed: list[str] = []
        self.orders_made = 0
        self.catalog = [
            (f"sku-{n:04d}", CATEGORIES[n % len(CATEGORIES)], self.rng.randrange(800, 9_000, 10))
            for n in range(200)
        ]

    def create_campaign(self) -> None:
        now = datetime.now(UTC)
        definition = {
            "id": CAMPAIGN_ID,
            "name": "Benchmark spring sale",
            "currency": CURRENCY,
            "status": "active",
            "voucher": {"kind": "unique"},  # single-use (per_voucher 1), holder only
            "discount": {"type": "percent", "percent_off": 15, "max_discount": 2_500},
            "active_from": iso(now - timedelta(days=1)),
            "active_until": iso(now + timedelta(days=30)),
            "rules": {
                "min_order_amount": MIN_ORDER,
                "sales_channels": list(SALES_CHANNELS),
                "stores": list(STORES),
                "valid_days_after_publication": 30,
            },
            "limits": {"per_customer": 1, "budget": 10**11},
        }
        self.engine.create_campaign(campaign_from_dict(definition))

    def generate(self, count: int) -> list[str]:
        return self.engine.generate_codes(CAMPAIGN_ID, count)

    def publish_all(self) -> float:
        """Publish every unpublished code to its own customer, straight through the store.

        Setup only: engine.publish would take one durable transaction per code.
        """
        started = time.perf_counter()
        with self.engine.store.read() as tx:
            rows = tx.vouchers_of_campaign(CAMPAIGN_ID)  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        events = []
        for code, voucher_id, holder, *_ in rows:
            if holder is not None:
                continue
            customer = f"cust-{len(self.holders) + 1:07d}"
            self.holders[code] = customer
            self.fresh.append(code)
            events.append(
                Event(
                    EventType.VOUCHER_PUBLISHED,
                    now,
                    payload={"code": code},
                    campaign_id=CAMPAIGN_ID,
                    voucher_id=voucher_id,
                    customer_id=customer,
                    channel="email",
                )
            )
        for start in range(0, len(events), PUBLISH_CHUNK):
            with self.engine.store.write() as tx:
                tx.append_many(events[start : start + PUBLISH_CHUNK])
        # Customers come back in no particular order: redeem the codes in random order, not
        # in the order they were created (which would keep the rows touched close together).
        self.rng.shuffle(self.fresh)
        return time.perf_counter() - started

    def take(self, count: int) -> list[str]:
        if count > len(self.fresh):
            raise SystemExit(f"bench setup: {count} codes wanted, {len(self.fresh)} left")
        codes, self.fresh = self.fresh[:count], self.fresh[count:]
        return codes

    def order(self, *, below_minimum: bool = False) -> Order:
        self.orders_made += 1
        order_id = f"ord-{self.orders_made:09d}"
        if below_minimum:
            item = OrderItem("sku-cheap", 1, 990, "accessories")
            return Order(amount=990, currency=CURRENCY, items=(item,), id=order_id)
        items = tuple(
            OrderItem(product, self.rng.randint(1, 3), price, category)
            for product, category, price in self.rng.sample(self.catalog, self.rng.randint(2, 3))
        )
        amount = sum(item.total for item in items)
        return Order(amount=amount, currency=CURRENCY, items=items, id=order_id)

    def context(self, customer: str) -> RequestContext:
        rng = self.rng
        channel = rng.choice(SALES_CHANNELS)
        return RequestContext(
            device_id=f"dev-{customer}-{rng.randrange(3)}",
            ip=f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            store_id="web-eu" if channel != "pos" else rng.choice(STORES[:-1]),
            sales_channel=channel,
        )

    def redeem_requests(self, codes: Sequence[str]) -> list[RedeemRequest]:
        return [
            RedeemRequest(
                code=code,
                order=self.order(),
                customer_id=self.holders[code],
                context=self.context(self.holders[code]),
            )
            for code in codes
        ]

    def validations(self, count: int, pool: Sequence[str]) -> list[tuple[Any, ...]]:
        """(code, order, customer, context, expected_valid), shuffled.

        Invalid kinds: a redeemed code (quantity and per-customer limits), an unknown code,
        another customer's code, an order below the minimum.
        """
        invalid_each = round(count * (1 - VALIDATE_VALID_SHARE) / 4)
        valid = count - 4 * invalid_each
        rng = self.rng
        unknown = CodeGenerator(CodeConfig()).generate(invalid_each)
        items: list[tuple[Any, ...]] = []
        for _ in range(valid):
            code = rng.choice(pool)
            customer = self.holders[code]
            items.append((code, self.order(), customer, self.context(customer), True))
        for _ in range(invalid_each):
            code = rng.choice(self.redeemed)
            customer = self.holders[code]
            items.append((code, self.order(), customer, self.context(customer), False))
        for code in unknown:
            customer = f"cust-{rng.randrange(1, len(self.holders)):07d}"
            items.append((code, self.order(), customer, self.context(customer), False))
        for _ in range(invalid_each):
            code, other = rng.sample(pool, 2)
            customer = self.holders[other]
            items.append((code, self.order(), customer, self.context(customer), False))
        for _ in range(invalid_each):
            code = rng.choice(pool)
            customer = self.holders[code]
            order = self.order(below_minimum=True)
            items.append((code, order, customer, self.context(customer), False))
        rng.shuffle(items)
        return items


# -- the measured parts ----------------------------------------------------------------------
@contextmanager
def timed_section(profiler: cProfile.Profile | None = None) -> Iterator[None]:
    """Keep the harness's objects out of the GC while timing (see the module docstring),
    and profile only the timed code when asked."""
    gc.collect()
    gc.freeze()
    if profiler is not None:
        profiler.enable()
    try:
        yield
    finally:
        if profiler is not None:
            profiler.disable()
        gc.unfreeze()


def check_redeemed(results: Sequence[object], what: str) -> None:
    failed = [r for r in results if not (isinstance(r, RedemptionResult) and r.ok)]
    if failed:
        first = failed[0]
        detail = first.to_dict() if isinstance(first, RedemptionResult) else repr(first)
        raise SystemExit(f"bench {what}: {len(failed)} redemptions failed, first: {detail}")


def run_single(
    engine: RedemptionEngine,
    requests: Sequence[RedeemRequest],
    profiler: cProfile.Profile | None = None,
) -> float:
    redeem = engine.redeem
    results = []
    with timed_section(profiler):
        started = time.perf_counter()
        for request in requests:
            results.append(redeem(request))
        elapsed = time.perf_counter() - started
    check_redeemed(results, "single")
    return elapsed


def run_grouped(
    engine: RedemptionEngine,
    batches: Sequence[Sequence[RedeemRequest]],
    profiler: cProfile.Profile | None = None,
) -> float:
    redeem_many = engine.redeem_many
    results: list[object] = []
    with timed_section(profiler):
        started = time.perf_counter()
        for batch in batches:
            results.extend(redeem_many(batch))
        elapsed = time.perf_counter() - started
    check_redeemed(results, "grouped")
    return elapsed


def run_validate(
    engine: RedemptionEngine,
    items: Sequence[tuple[Any, ...]],
    profiler: cProfile.Profile | None = None,
) -> tuple[float, list[int]]:
    """Wall time (including the final flush of buffered events) and per-call latencies in ns."""
    validate = engine.validate
    clock = time.perf_counter_ns
    latencies: list[int] = []
    verdicts: list[bool] = []
    with timed_section(profiler):
        started = time.perf_counter()
        for code, order, customer, context, _ in items:
            before = clock()
            result = validate(code, order, customer_id=customer, context=context)
            latencies.append(clock() - before)
            verdicts.append(result.valid)
        engine.flush()
        elapsed = time.perf_counter() - started
    wrong = sum(verdict != item[4] for verdict, item in zip(verdicts, items, strict=True))
    if wrong:
        raise SystemExit(f"bench validate: {wrong} validations disagree with the expectation")
    return elapsed, latencies


RAW_INSERT = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
RAW_PLAIN_SCHEMA = (
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, "
    + ", ".join(f"{column} TEXT" for column in COLUMNS)
    + ")"
)


def raw_database(path: Path, ddl: str) -> sqlite3.Connection:
    db = connect(path, durable=True)  # the store's own pragmas
    check_durable(db, "raw database")
    for statement in ddl.split(";\n"):
        if statement.strip():
            db.execute(statement)
    return db


def remove_database(db: sqlite3.Connection, path: Path) -> None:
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def insert_batches(db: sqlite3.Connection, batches: Sequence[Sequence[tuple[Any, ...]]]) -> float:
    """One transaction (one fsync) per batch; the seconds it took."""
    (before,) = db.execute("SELECT count(*) FROM events").fetchone()
    with timed_section():
        started = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(RAW_INSERT, batch)
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
    (after,) = db.execute("SELECT count(*) FROM events").fetchone()
    if after - before != sum(len(batch) for batch in batches):
        raise SystemExit(f"bench raw: {after - before} rows inserted")
    return elapsed


def run_raw(directory: Path, batches: Sequence[Sequence[tuple[Any, ...]]], *, ddl: str) -> float:
    """executemany of the rows into a fresh database."""
    path = directory / "raw.sqlite"
    db = raw_database(path, ddl)
    try:
        return insert_batches(db, batches)
    finally:
        remove_database(db, path)


def run_raw_prefilled(
    directory: Path,
    ledger: Path,
    up_to_seq: int,
    runs: Sequence[Sequence[Sequence[tuple[Any, ...]]]],
) -> list[float]:
    """The events DDL, prefilled (untimed) with the ledger's events up to `up_to_seq`, then
    each run's batches in turn: the events-table share of the grouped runs, replayed."""
    path = directory / "raw-prefilled.sqlite"
    db = raw_database(path, EVENTS_SCHEMA)
    try:
        columns = ", ".join(COLUMNS)
        db.execute("ATTACH DATABASE ? AS ledger", (str(ledger),))
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            f"INSERT INTO main.events ({columns}) SELECT {columns} FROM ledger.events"
            " WHERE seq <= ? ORDER BY seq",
            (up_to_seq,),
        )
        db.execute("COMMIT")
        db.execute("DETACH DATABASE ledger")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return [insert_batches(db, batches) for batches in runs]
    finally:
        remove_database(db, path)


# -- orchestration ---------------------------------------------------------------------------
def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def rate_record(measure: str, run: int, count: int, seconds: float, **extra: Any) -> dict:
    return {
        "measure": measure,
        "run": run,
        "count": count,
        "seconds": round(seconds, 4),
        "per_s": rounded(count / seconds),
        **extra,
    }


def latency_summary(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = 1e-6
    return {
        "p50_ms": round(percentile(ordered, 50) * ms, 4),
        "p90_ms": round(percentile(ordered, 90) * ms, 4),
        "p99_ms": round(percentile(ordered, 99) * ms, 4),
        "p999_ms": round(percentile(ordered, 99.9) * ms, 4),
        "max_ms": round(ordered[-1] * ms, 4),
        "mean_ms": round(statistics.fmean(ordered) * ms, 4),
    }


def redemption_rows(engine: RedemptionEngine, after_seq: int, limit: int) -> list[tuple]:
    db: sqlite3.Connection = engine.store.connection  # type: ignore[attr-defined]
    return db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM events WHERE seq > ? AND event_type = ?"
        " ORDER BY seq LIMIT ?",
        (after_seq, str(EventType.REDEMPTION_SUCCEEDED), limit),
    ).fetchall()


def pragmas(db: sqlite3.Connection) -> dict[str, Any]:
    synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": synchronous.get(db.execute("PRAGMA synchronous").fetchone()[0], "?"),
    }


def check_durable(db: sqlite3.Connection, what: str) -> dict[str, Any]:
    found = pragmas(db)
    if found != {"journal_mode": "wal", "synchronous": "FULL"}:
        raise SystemExit(f"bench: the {what} is not WAL + synchronous=FULL: {found}")
    return found


def last_seq(engine: RedemptionEngine) -> int:
    db: sqlite3.Connection = engine.store.connection  # type: ignore[attr-defined]
    return db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


def full_run(home: Path, batch_size: int) -> dict[str, Any]:
    engine = RedemptionEngine.open(home)
    ledger_pragmas = check_durable(engine.store.connection, "ledger")  # type: ignore[attr-defined]
    work = Workload(engine)
    work.create_campaign()
    summary: dict[str, Any] = {}
    grouped_batches = RUNS * GROUPED_BATCHES + GROUPED_WARMUP_BATCHES
    needed = SINGLE_WARMUP + RUNS * SINGLE_PER_RUN + grouped_batches * batch_size + VALIDATE_POOL
    try:
        # codes: generated into the ledger, end to end; these become the campaign's codes.
        code_rates = []
        for run in range(1, RUNS + 1):
            with timed_section():
                started = time.perf_counter()
                codes = work.generate(CODES_PER_RUN)
                elapsed = time.perf_counter() - started
            if len(set(codes)) != CODES_PER_RUN:
                raise SystemExit(f"bench codes: {len(set(codes))} distinct codes")
            record = rate_record("codes", run, CODES_PER_RUN, elapsed)
            code_rates.append(record["per_s"])
            emit(record)
        if needed > RUNS * CODES_PER_RUN:  # a large --batch-size: more codes, untimed
            work.generate(needed - RUNS * CODES_PER_RUN)
        publish_s = work.publish_all()
        emit({"measure": "setup_publish", "count": len(work.holders), "seconds": publish_s})

        # single: one transaction (one fsync) per redemption.
        warmup = work.take(SINGLE_WARMUP)
        run_single(engine, work.redeem_requests(warmup))
        work.redeemed += warmup
        single_rates = []
        for run in range(1, RUNS + 1):
            codes = work.take(SINGLE_PER_RUN)
            elapsed = run_single(engine, work.redeem_requests(codes))
            work.redeemed += codes
            record = rate_record("redeem_single", run, SINGLE_PER_RUN, elapsed)
            single_rates.append(record["per_s"])
            emit(record)

        # grouped: redeem_many, one transaction per batch.
        warmup = work.take(GROUPED_WARMUP_BATCHES * batch_size)
        run_grouped(engine, chunks(work.redeem_requests(warmup), batch_size))
        work.redeemed += warmup
        grouped_rates = []
        grouped_start_seq = last_seq(engine)
        for run in range(1, RUNS + 1):
            codes = work.take(GROUPED_BATCHES * batch_size)
            batches = chunks(work.redeem_requests(codes), batch_size)
            elapsed = run_grouped(engine, batches)
            work.redeemed += codes
            record = rate_record(
                "redeem_grouped",
                run,
                len(codes),
                elapsed,
                batch_size=batch_size,
                batches=GROUPED_BATCHES,
            )
            grouped_rates.append(record["per_s"])
            emit(record)

        # validate: in-process latency, mixed valid and invalid requests.
        pool = work.take(VALIDATE_POOL)
        run_validate(engine, work.validations(VALIDATE_WARMUP, pool))
        validate_runs = []
        for run in range(1, RUNS + 1):
            items = work.validations(VALIDATE_PER_RUN, pool)
            elapsed, latencies = run_validate(engine, items)
            record = rate_record("validate", run, len(items), elapsed, **latency_summary(latencies))
            validate_runs.append(record)
            emit(record)

        # raw: the grouped runs' own event rows, same batch size, into a fresh database.
        rows_per_run = GROUPED_BATCHES * batch_size
        grouped_rows = redemption_rows(engine, grouped_start_seq, RUNS * rows_per_run)
        if len(grouped_rows) != RUNS * rows_per_run:
            raise SystemExit(f"bench raw: found {len(grouped_rows)} redemption rows")
        rows = grouped_rows[:rows_per_run]
        raw_batches = chunks(rows, batch_size)
        payload_bytes = statistics.fmean(len(row[-1].encode()) for row in rows)
        row_bytes = statistics.fmean(
            sum(len(value.encode()) for value in row if value is not None) for row in rows
        )
        raw_rates, ddl_rates = [], []
        for run in range(1, RAW_RUNS + 1):
            elapsed = run_raw(home, raw_batches, ddl=RAW_PLAIN_SCHEMA)
            record = rate_record("raw_insert", run, rows_per_run, elapsed, batch_size=batch_size)
            raw_rates.append(record["per_s"])
            emit(record)
            elapsed = run_raw(home, raw_batches, ddl=EVENTS_SCHEMA)
            record = rate_record(
                "raw_insert_events_ddl", run, rows_per_run, elapsed, batch_size=batch_size
            )
            ddl_rates.append(record["per_s"])
            emit(record)
        prefilled_rates = []
        replays = [
            chunks(grouped_rows[start : start + rows_per_run], batch_size)
            for start in range(0, len(grouped_rows), rows_per_run)
        ]
        ledger_path = engine.store.path  # type: ignore[attr-defined]
        times = run_raw_prefilled(home, ledger_path, grouped_start_seq, replays)
        for run, elapsed in enumerate(times, start=1):
            record = rate_record(
                "raw_insert_events_ddl_prefilled",
                run,
                rows_per_run,
                elapsed,
                batch_size=batch_size,
                rows_before=grouped_start_seq + (run - 1) * rows_per_run,
            )
            prefilled_rates.append(record["per_s"])
            emit(record)

        engine.flush()
        db: sqlite3.Connection = engine.store.connection  # type: ignore[attr-defined]
        ledger_events = db.execute("SELECT count(*) FROM events").fetchone()[0]

        single = statistics.median(single_rates)
        grouped = statistics.median(grouped_rates)
        raw = statistics.median(raw_rates)
        p50 = statistics.median(r["p50_ms"] for r in validate_runs)
        p99 = statistics.median(r["p99_ms"] for r in validate_runs)
        summary = {
            "redeem_per_s_single": rounded(single),
            "redeem_per_s_grouped": rounded(grouped),
            "validate_p50_ms": p50,
            "validate_p99_ms": p99,
            "codes_per_s": rounded(statistics.median(code_rates)),
            "raw_insert_per_s": rounded(raw),
            "grouped_to_raw_ratio": round(grouped / raw, 4),
            "batch_size": batch_size,
            "raw_events_ddl_insert_per_s": rounded(statistics.median(ddl_rates)),
            "raw_events_ddl_prefilled_insert_per_s": rounded(statistics.median(prefilled_rates)),
            "validate_p999_ms": statistics.median(r["p999_ms"] for r in validate_runs),
            "validate_max_ms": max(r["max_ms"] for r in validate_runs),
            "validate_per_s": rounded(statistics.median(r["per_s"] for r in validate_runs)),
            "runs": {
                "redeem_per_s_single": single_rates,
                "redeem_per_s_grouped": grouped_rates,
                "raw_insert_per_s": raw_rates,
                "raw_events_ddl_insert_per_s": ddl_rates,
                "raw_events_ddl_prefilled_insert_per_s": prefilled_rates,
                "codes_per_s": code_rates,
                "validate_p50_ms": [r["p50_ms"] for r in validate_runs],
                "validate_p99_ms": [r["p99_ms"] for r in validate_runs],
            },
            "counts": {
                "runs": RUNS,
                "single_per_run": SINGLE_PER_RUN,
                "single_warmup": SINGLE_WARMUP,
                "grouped_per_run": GROUPED_BATCHES * batch_size,
                "grouped_batches_per_run": GROUPED_BATCHES,
                "grouped_warmup_batches": GROUPED_WARMUP_BATCHES,
                "raw_runs": RAW_RUNS,
                "raw_rows_per_run": rows_per_run,
                "raw_batches_per_run": len(raw_batches),
                "validate_per_run": VALIDATE_PER_RUN,
                "validate_warmup": VALIDATE_WARMUP,
                "validate_valid_share": VALIDATE_VALID_SHARE,
                "codes_per_run": CODES_PER_RUN,
                "ledger_events_at_end": ledger_events,
            },
            "raw_row_avg_bytes": round(row_bytes, 1),
            "raw_payload_avg_bytes": round(payload_bytes, 1),
            "ledger_pragmas": ledger_pragmas,
            "ledger_mb_at_end": round(Path(ledger_path).stat().st_size / 2**20, 1),
        }
        summary["targets"] = TARGETS
        summary["targets_met"] = {
            "redeem_per_s_single": single >= TARGETS["redeem_per_s_single"],
            "redeem_per_s_grouped": grouped >= TARGETS["redeem_per_s_grouped"],
            "validate_p99_ms": p99 <= TARGETS["validate_p99_ms"],
        }
    finally:
        engine.close()
    return summary


def profiled_run(home: Path, part: str, batch_size: int) -> dict[str, Any]:
    """Setup as in the full run (untimed), a warm-up, then one run of `part` under cProfile."""
    engine = RedemptionEngine.open(home)
    check_durable(engine.store.connection, "ledger")  # type: ignore[attr-defined]
    work = Workload(engine)
    work.create_campaign()
    try:
        need = {
            "single": SINGLE_WARMUP + SINGLE_PER_RUN,
            "grouped": (GROUPED_WARMUP_BATCHES + GROUPED_BATCHES) * batch_size,
            "validate": 2 * batch_size + VALIDATE_POOL,
        }[part]
        # Roughly the ledger size the full run has reached by then.
        work.generate(max(need, RUNS * CODES_PER_RUN))
        work.publish_all()
        profiler = cProfile.Profile()
        if part == "single":
            run_single(engine, work.redeem_requests(work.take(SINGLE_WARMUP)))
            requests = work.redeem_requests(work.take(SINGLE_PER_RUN))
            elapsed = run_single(engine, requests, profiler)
            record = rate_record("redeem_single", 1, len(requests), elapsed)
        elif part == "grouped":
            warmup = work.take(GROUPED_WARMUP_BATCHES * batch_size)
            run_grouped(engine, chunks(work.redeem_requests(warmup), batch_size))
            codes = work.take(GROUPED_BATCHES * batch_size)
            batches = chunks(work.redeem_requests(codes), batch_size)
            elapsed = run_grouped(engine, batches, profiler)
            record = rate_record("redeem_grouped", 1, len(codes), elapsed, batch_size=batch_size)
        else:
            redeemed = work.take(2 * batch_size)
            run_grouped(engine, chunks(work.redeem_requests(redeemed), batch_size))
            work.redeemed += redeemed
            pool = work.take(VALIDATE_POOL)
            run_validate(engine, work.validations(VALIDATE_WARMUP, pool))
            items = work.validations(VALIDATE_PER_RUN, pool)
            elapsed, latencies = run_validate(engine, items, profiler)
            record = rate_record("validate", 1, len(items), elapsed, **latency_summary(latencies))
    finally:
        engine.close()
    record["profiled"] = True
    emit(record)
    stats = pstats.Stats(profiler, stream=sys.stderr)
    stats.strip_dirs()
    print(f"\n=== cProfile of {part}: top 25 by cumulative time ===", file=sys.stderr)
    stats.sort_stats("cumulative").print_stats(25)
    print(f"=== cProfile of {part}: top 15 by own (total) time ===", file=sys.stderr)
    stats.sort_stats("tottime").print_stats(15)
    sys.stderr.flush()
    return {"profile": part, **{k: v for k, v in record.items() if k != "measure"}}


def environment(home: Path) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "bench_dir": str(home.parent),
        "loadavg_at_start": [round(x, 2) for x in LOAD_AT_START],
        **CODE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        choices=("single", "grouped", "validate"),
        help="run one part under cProfile; statistics go to stderr",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to create the temporary PROMO_HOME"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary PROMO_HOME")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    home = Path(tempfile.mkdtemp(prefix="promo-bench-", dir=args.dir))
    os.environ["PROMO_HOME"] = str(home)  # nothing may fall back to ./data
    started = time.perf_counter()
    try:
        if args.profile:
            summary = profiled_run(home, args.profile, args.batch_size)
        else:
            summary = full_run(home, args.batch_size)
            # The same figures on PostgreSQL, on a server the benchmark starts (core_pg.py).
            from core_pg import pg_run

            summary.update(pg_run(args.batch_size))
            summary["pg_grouped_to_sqlite_grouped_ratio"] = round(
                summary["pg_redeem_per_s_grouped"] / summary["redeem_per_s_grouped"], 4
            )
        summary["environment"] = environment(home)
        summary["bench_seconds"] = round(time.perf_counter() - started, 1)
    finally:
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    emit(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
