"""Helpers for the reliability tests: ledgers to start from, child processes, ledger inspection.

Every helper takes a "ledger": a SQLite file's path, or a postgresql:// URL (what
`create_ledger` returns under the `ledger_backend` fixture), and reads it from outside the
engine the way the pipeline or the console would.

The child processes are real OS processes: this file doubles as the script they run
(`python reliability_helpers.py <role> <json spec>`), so each child imports only the core,
opens its own engine on the shared ledger and reports on stdout, one JSON document or one
`ACK <id>` per line, flushed only after the engine call returned.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from redemption_core.domain.events import Event, EventType
from redemption_core.domain.orders import Order, OrderItem, RequestContext
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine, RedemptionResult
from redemption_core.ledger.dialect import to_pyformat
from redemption_core.ledger.home import ledger_path, ledger_url
from redemption_core.ledger.postgres import PostgresLedgerStore
from redemption_core.ledger.postgres_schema import (
    POSTGRES_REVISION,
    postgres_statements,
    schema_version,
)
from redemption_core.ledger.sqlite import SqliteLedgerStore
from redemption_core.ledger.store import LedgerStore

Ledger = Path | str  # a SQLite file, or a postgresql:// URL

HELPERS = Path(__file__).resolve()
CHILD_TIMEOUT_S = 60.0


# -- older ledgers -----------------------------------------------------------------------------
# What each schema version added, undone: a new ledger made older, to test its migration.
DOWNGRADES: dict[int, str] = {
    # 3 -> 2: audience one row per customer and promotion, redemptions without rollback_cause
    3: """
ALTER TABLE audience RENAME TO audience_v3;
CREATE TABLE audience (campaign_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT, decided_at TEXT NOT NULL,
    PRIMARY KEY (campaign_id, customer_id)) WITHOUT ROWID;
INSERT INTO audience SELECT campaign_id, customer_id, outcome, reason, decided_at FROM audience_v3;
DROP TABLE audience_v3;
ALTER TABLE redemptions DROP COLUMN rollback_cause;
""",
    # 2 -> 1: holds without device and IP, redemptions without store_id, no api_keys
    2: """
DROP INDEX holds_by_device;
DROP INDEX holds_by_ip;
DROP INDEX holds_by_customer;
ALTER TABLE holds DROP COLUMN device_hash;
ALTER TABLE holds DROP COLUMN ip_hash;
ALTER TABLE redemptions DROP COLUMN store_id;
DROP TABLE api_keys;
""",
}


def downgrade_ledger(ledger: Ledger, version: int) -> None:
    """Reshape a closed ledger of the current schema into the tables of `version` (on
    PostgreSQL, `ledger` is its owner's URL: the application role may not)."""
    if is_postgres(ledger):
        _downgrade_postgres(str(ledger), version)
        return
    db = sqlite3.connect(ledger, isolation_level=None)
    try:
        current = db.execute("PRAGMA user_version").fetchone()[0]
        for step in range(current, version, -1):
            db.executescript(DOWNGRADES[step])
        db.execute(f"PRAGMA user_version = {version}")
    finally:
        db.close()


def _downgrade_postgres(owner: str, version: int) -> None:
    with psycopg.connect(owner, autocommit=True) as db, db.transaction():
        [(current,)] = db.execute(
            "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
        ).fetchall()
        for step in range(schema_version(current)[0], version, -1):
            for statement in postgres_statements(DOWNGRADES[step]):
                db.execute(statement)
        db.execute(
            "UPDATE ledger_meta SET value = %s WHERE key = 'schema_version'",
            (f"{version}.{POSTGRES_REVISION}",),
        )


def ledger_schema_version(ledger: Ledger) -> int:
    """The schema version a ledger's tables are at (PostgreSQL: SQLite's number it carries)."""
    if is_postgres(ledger):
        with psycopg.connect(str(ledger), autocommit=True) as db:
            [(value,)] = db.execute(
                "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
            ).fetchall()
        return schema_version(value)[0]
    db = sqlite3.connect(ledger)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


# -- definitions and ledgers -------------------------------------------------------------------
def standalone_def(
    campaign_id: str,
    code: str,
    *,
    amount_off: int = 1000,
    currency: str = "EUR",
    limits: Mapping[str, Any] | None = None,
    rules: Mapping[str, Any] | None = None,
    status: str = "active",
) -> dict[str, Any]:
    """An active campaign with one shared code and a fixed amount off."""
    definition: dict[str, Any] = {
        "id": campaign_id,
        "currency": currency,
        "status": status,
        "voucher": {"kind": "standalone", "code": code},
        "discount": {"type": "amount", "amount_off": amount_off},
    }
    if limits:
        definition["limits"] = dict(limits)
    if rules:
        definition["rules"] = dict(rules)
    return definition


def unique_def(
    campaign_id: str,
    *,
    amount_off: int = 1000,
    limits: Mapping[str, Any] | None = None,
    rules: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An active EUR campaign of generated single-use codes, each for its holder only."""
    definition: dict[str, Any] = {
        "id": campaign_id,
        "currency": "EUR",
        "status": "active",
        "voucher": {"kind": "unique"},
        "discount": {"type": "amount", "amount_off": amount_off},
    }
    if limits:
        definition["limits"] = dict(limits)
    if rules:
        definition["rules"] = dict(rules)
    return definition


def open_engine(home: Path, **kwargs: Any) -> RedemptionEngine:
    return RedemptionEngine.open(home, **kwargs)


def ledger_of(home: Path) -> Ledger:
    """The ledger the engine of `home` uses: PROMO_LEDGER_URL's, else the home's file."""
    return ledger_url() or ledger_path(home)


def ledger_of_store(store: LedgerStore) -> Ledger:
    """Where a store's ledger is, as verify_ledger and the readers here take it."""
    if isinstance(store, PostgresLedgerStore):
        return store.url
    return Path(store.path)  # type: ignore[attr-defined]


def is_postgres(ledger: Ledger) -> bool:
    return isinstance(ledger, str) and ledger.startswith("postgresql://")


def store_for(ledger: Ledger, *, read_only: bool = False) -> LedgerStore:
    if is_postgres(ledger):
        return PostgresLedgerStore(str(ledger), read_only=read_only)
    return SqliteLedgerStore(Path(ledger), read_only=read_only)


def create_ledger(home: Path, definitions: Iterable[Mapping[str, Any]]) -> Ledger:
    """A ledger for `home` holding these campaigns; the engine is closed again."""
    with open_engine(home) as engine:
        for definition in definitions:
            engine.create_from_definition(definition)
    return ledger_of(home)


def order(amount: int = 5000, *, currency: str = "EUR", order_id: str | None = None) -> Order:
    return Order(amount=amount, currency=currency, id=order_id)


def cart(amount: int = 5000) -> Order:
    """An order with one line: what a hold needs."""
    return Order(amount=amount, currency="EUR", items=(OrderItem("sku-cart", 1, amount),))


# -- reading the ledger from outside the engine -----------------------------------------------
class Reader:
    """A plain read-only connection, as the pipeline or the console would open one, to either
    ledger: SQL with `?` parameters; "BEGIN" opens one snapshot until "COMMIT". `timeout`: how
    long a statement may wait for a lock before it fails (a reader must never wait)."""

    def __init__(self, ledger: Ledger, *, timeout: float = 5.0) -> None:
        self.postgres = is_postgres(ledger)
        if self.postgres:
            self.db: Any = psycopg.connect(str(ledger), autocommit=True)
            self.db.execute(f"SET lock_timeout = {int(timeout * 1000) or 1}")
        else:
            self.db = sqlite3.connect(
                f"file:{Path(ledger).resolve()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=timeout,
            )

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        if not self.postgres:
            return self.db.execute(sql, params)
        if sql.strip().upper() == "BEGIN":
            sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        return self.db.execute(to_pyformat(sql), params)

    def dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.db.close()


def read_only(ledger: Ledger, *, timeout: float = 5.0) -> Reader:
    return Reader(ledger, timeout=timeout)


def event_counts(ledger: Ledger) -> Counter[str]:
    db = read_only(ledger)
    try:
        return Counter(
            dict(db.execute("SELECT event_type, count(*) FROM events GROUP BY 1").fetchall())
        )
    finally:
        db.close()


def event_rows(ledger: Ledger, event_type: str | None = None) -> list[dict[str, Any]]:
    """Event rows as dicts (payload parsed), in sequence order."""
    db = read_only(ledger)
    try:
        query = "SELECT * FROM events"
        params: tuple[Any, ...] = ()
        if event_type is not None:
            query += " WHERE event_type = ?"
            params = (event_type,)
        rows = db.dicts(query + " ORDER BY seq", params)
    finally:
        db.close()
    return [{**row, "payload": json.loads(row["payload"])} for row in rows]


def projection_row(ledger: Ledger, table: str, key_column: str, key: str) -> dict[str, Any] | None:
    db = read_only(ledger)
    try:
        rows = db.dicts(f"SELECT * FROM {table} WHERE {key_column} = ?", (key,))
    finally:
        db.close()
    return rows[0] if rows else None


# -- child processes ---------------------------------------------------------------------------
def spawn(role: str, spec: Mapping[str, Any]) -> subprocess.Popen[str]:
    """Start a child running `role` with `spec`; stdout is a text pipe."""
    return subprocess.Popen(
        [sys.executable, str(HELPERS), role, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str], timeout: float = CHILD_TIMEOUT_S) -> list[str]:
    """Wait for a child that must succeed; its stdout lines."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError(f"child did not finish in {timeout}s; stderr:\n{err}") from None
    assert child.returncode == 0, f"child failed ({child.returncode}):\n{err}"
    return out.splitlines()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def run_lined_up(
    role: str, specs: Sequence[Mapping[str, Any]], workdir: Path
) -> list[list[dict[str, Any]]]:
    """Start one child per spec, let all of them get ready, then release them at once.

    Each child opens its engine, touches its ready file and waits for the go file, so the
    engine calls of all children overlap. Returns each child's
    results (one JSON document per line), in spec order.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    go = workdir / "go"
    ready = [workdir / f"ready-{i}" for i in range(len(specs))]
    children = [
        spawn(role, {**spec, "ready": str(ready[i]), "go": str(go)}) for i, spec in enumerate(specs)
    ]
    try:
        wait_for(
            lambda: (
                all(path.exists() for path in ready)
                or any(child.poll() is not None for child in children)
            ),
            CHILD_TIMEOUT_S,
            "the children to get ready",
        )
        go.touch()
        return [[json.loads(line) for line in finish(child)] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


class KillableChild:
    """A child whose stdout is drained as it goes (a full pipe would stall it), to be killed.

    The child prints READY once its engine is open, then its acknowledgements.
    """

    def __init__(self, role: str, spec: Mapping[str, Any]) -> None:
        self.process = spawn(role, spec)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        self._ready.wait(CHILD_TIMEOUT_S)
        if self.lines[:1] != ["READY\n"]:
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"child did not start: {self.lines[:1]}\n{err}")

    def kill_hard(self) -> list[str]:
        """SIGKILL (no cleanup of any kind runs); the ids it had acknowledged."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(CHILD_TIMEOUT_S)
        self._drain.join(CHILD_TIMEOUT_S)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        assert self.process.returncode == -signal.SIGKILL, err
        return acked_ids(self.lines)


def acked_ids(lines: Iterable[str]) -> list[str]:
    """The ids a child acknowledged; a line cut short by the kill does not count."""
    ids = []
    for line in lines:
        if line.startswith("ACK ") and line.endswith("\n"):
            ids.extend(line.split()[1:])
    return ids


# -- what the children run ---------------------------------------------------------------------
def result_document(result: RedemptionResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "redemption_id": result.redemption_id,
        "event_id": result.event_id,
        "discount": result.discount,
        "reasons": [str(reason.code) for reason in result.reasons],
        "replayed": result.replayed,
    }


def request_from(spec: Mapping[str, Any]) -> RedeemRequest:
    """A redeem request from its JSON description (code, amount, customer, key, device)."""
    context = RequestContext(device_id=spec["device_id"]) if spec.get("device_id") else None
    return RedeemRequest(
        code=spec["code"],
        order=order(spec.get("amount", 5000), order_id=spec.get("order_id")),
        customer_id=spec.get("customer_id"),
        idempotency_key=spec.get("idempotency_key"),
        **({"context": context} if context else {}),
    )


def _line_up(spec: Mapping[str, Any]) -> None:
    Path(spec["ready"]).touch()
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.0005)


def _call(engine: RedemptionEngine, request: Mapping[str, Any]) -> dict[str, Any]:
    """One engine call described by `request["op"]` (redeem unless said otherwise)."""
    op = request.get("op", "redeem")
    if op == "redeem":
        return result_document(engine.redeem(request_from(request)))
    if op == "redeem_many":
        results = engine.redeem_many([request_from(r) for r in request["requests"]])
        return {"results": [result_document(r) for r in results]}  # type: ignore[arg-type]
    if op == "validate":
        validation = engine.validate(
            request["code"],
            cart(request.get("amount", 5000)),
            customer_id=request.get("customer_id"),
            context=RequestContext(device_id=request.get("device_id")),
            hold_seconds=request.get("hold_seconds"),
        )
        return {
            "valid": validation.valid,
            "session_id": validation.session_id,
            "reasons": [str(reason.code) for reason in validation.reasons],
        }
    if op == "rollback":
        rollback = engine.rollback(
            request["redemption_id"], idempotency_key=request.get("idempotency_key")
        )
        return {
            "ok": rollback.ok,
            "rollback_id": rollback.rollback_id,
            "event_id": rollback.event_id,
            "replayed": rollback.replayed,
            "reasons": [str(reason.code) for reason in rollback.reasons],
        }
    raise ValueError(f"unknown op {op!r}")


def _child_call(spec: Mapping[str, Any]) -> None:
    """Make the spec's engine calls one by one, after lining up with the other children."""
    with RedemptionEngine.open(Path(spec["home"])) as engine:
        _line_up(spec)
        for request in spec["requests"]:
            print(json.dumps(_call(engine, request)), flush=True)


def _child_write_many(spec: Mapping[str, Any]) -> None:
    """Redeem a shared code `count` times as fast as it goes; report the time it took."""
    with RedemptionEngine.open(Path(spec["home"])) as engine:
        started = time.monotonic()
        for i in range(spec["count"]):
            result = engine.redeem(
                RedeemRequest(spec["code"], order(order_id=f"{spec['tag']}-{i}"))
            )
            assert result.ok, result.reasons
        elapsed = time.monotonic() - started
    print(json.dumps({"written": spec["count"], "seconds": elapsed}), flush=True)


def _child_read_loop(spec: Mapping[str, Any]) -> None:
    """Read the ledger in short snapshots until told to stop; report what it saw.

    Each snapshot reads the newest seq twice with a pause between: inside one snapshot the
    answer must not move, whatever the writer does meanwhile.
    """
    store = store_for(spec["path"], read_only=True)
    # No waiting: a reader that had to wait for the writer fails loudly instead.
    db = read_only(spec["path"], timeout=0)
    Path(spec["started"]).touch()
    stop = Path(spec["stop"])
    seen: list[int] = []
    unstable: list[tuple[int, int]] = []
    errors: list[str] = []
    events_read = 0
    last = 0
    while not stop.exists():
        try:
            db.execute("BEGIN")
            try:
                first = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                time.sleep(spec.get("pause_s", 0.002))
                again = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            finally:
                db.execute("COMMIT")
            if first != again:
                unstable.append((first, again))
            seen.append(first)
            new = list(store.events(after_seq=last))
            events_read += len(new)
            if new:
                last = new[-1].seq or last
        except (sqlite3.Error, psycopg.Error) as error:
            errors.append(f"{type(error).__name__}: {error}")
    store.close()
    db.close()
    print(
        json.dumps(
            {"seen": seen, "unstable": unstable, "errors": errors, "events_read": events_read}
        ),
        flush=True,
    )


def _child_hold_write(spec: Mapping[str, Any]) -> None:
    """Append one event inside a write transaction and keep it open until released."""
    with RedemptionEngine.open(Path(spec["home"])) as engine, engine.store.write() as tx:
        tx.append(
            Event(
                EventType.SEGMENT_MEMBER_ADDED,
                datetime.now(UTC),
                payload={"segment_id": "held-open"},
                customer_id="held-open",
            )
        )
        Path(spec["holding"]).touch()
        release = Path(spec["release"])
        while not release.exists():
            time.sleep(0.001)
    print(json.dumps({"committed": True}), flush=True)


def _child_mixed(spec: Mapping[str, Any]) -> None:
    """A random mix of redemptions, rollbacks and holds on the spec's codes, after lining up."""
    rng = random.Random(spec["seed"])
    redeemed: list[str] = []
    with RedemptionEngine.open(Path(spec["home"])) as engine:
        _line_up(spec)
        for number in range(spec["count"]):
            code = rng.choice(spec["codes"])
            customer = f"c{rng.randrange(2)}"
            draw = rng.random()
            if draw < 0.55:
                key = f"{spec['seed']}-{number}" if rng.random() < 0.3 else None
                result = engine.redeem(
                    RedeemRequest(
                        code,
                        order(rng.choice([1000, 3000, 9000])),
                        customer_id=customer,
                        idempotency_key=key,
                    )
                )
                if result.ok:
                    redeemed.append(result.redemption_id or "")
            elif draw < 0.9 and redeemed:
                engine.rollback(rng.choice(redeemed))
            else:
                hold = engine.validate(
                    code, cart(3000), customer_id=customer, hold_seconds=rng.choice([None, 600])
                )
                if hold.session_id and rng.random() < 0.5:
                    engine.redeem(
                        RedeemRequest(
                            code, order(3000), customer_id=customer, session_id=hold.session_id
                        )
                    )
    print(json.dumps({"done": spec["count"]}), flush=True)


def loop_request(code: str, tag: str, number: int) -> RedeemRequest:
    """The redeem-loop child's request number `number` (from 1); a retry rebuilds it exactly."""
    return RedeemRequest(
        code,
        order(order_id=f"{tag}-{number}"),
        customer_id=f"{tag}-c",
        idempotency_key=f"{tag}-{number}",
    )


def _child_redeem_loop(spec: Mapping[str, Any]) -> None:
    """Redeem forever, acknowledging each redemption only once redeem() has returned.

    With `retry`, a request that failed because the database went away is sent again (same
    idempotency key) until it is answered."""
    engine = RedemptionEngine.open(Path(spec["home"]))
    print("READY", flush=True)
    number = 0
    while True:
        number += 1
        while True:
            try:
                if number % 5 == 0:  # buffered validations ride along with the next redemption
                    engine.validate(spec["code"], order(), customer_id=f"{spec['tag']}-c")
                result = engine.redeem(loop_request(spec["code"], spec["tag"], number))
                break
            except psycopg.OperationalError:
                if not spec.get("retry"):
                    raise
                time.sleep(0.05)
        assert result.ok, result.reasons
        print(f"ACK {result.redemption_id}", flush=True)


def _child_redeem_many_loop(spec: Mapping[str, Any]) -> None:
    """Redeem in batches forever; acknowledge a batch's ids once redeem_many returned."""
    engine = RedemptionEngine.open(Path(spec["home"]))
    print("READY", flush=True)
    batch = 0
    while True:
        batch += 1
        requests = [
            RedeemRequest(
                spec["code"],
                order(order_id=f"{spec['tag']}-{batch}-{i}"),
                customer_id=f"{spec['tag']}-c",
            )
            for i in range(spec["batch"])
        ]
        results = engine.redeem_many(requests)
        ids = []
        for result in results:
            assert isinstance(result, RedemptionResult) and result.ok, result
            ids.append(result.redemption_id)
        print("ACK " + " ".join(ids), flush=True)


def _child_generate(spec: Mapping[str, Any]) -> None:
    engine = RedemptionEngine.open(Path(spec["home"]))
    print("READY", flush=True)
    codes = engine.generate_codes(spec["campaign_id"], spec["count"])
    engine.close()
    print(f"DONE {len(codes)}", flush=True)


def _child_slow_commits(spec: Mapping[str, Any]) -> None:
    """Append events in concurrent transactions that wait a random moment between taking
    their seq (the insert) and committing, so commits come out of seq order."""
    rng = random.Random(spec["seed"])
    store = store_for(spec["ledger"])
    _line_up(spec)
    for number in range(spec["count"]):
        with store.write(concurrent=True) as tx:
            tx.append(
                Event(
                    EventType.SEGMENT_MEMBER_ADDED,
                    datetime.now(UTC),
                    payload={"segment_id": "slow"},
                    customer_id=f"{spec['tag']}-{number}",
                )
            )
            tx.flush()  # type: ignore[attr-defined]
            tx.query("SELECT 1", ())  # waits for the insert: its seq is taken, uncommitted
            time.sleep(rng.uniform(0, spec["max_pause_s"]))
    store.close()
    print(json.dumps({"written": spec["count"]}), flush=True)


def _child_open_store(spec: Mapping[str, Any]) -> None:
    """Open (and so create, if missing) the ledger at the go signal."""
    _line_up(spec)
    store_for(spec["ledger"]).close()
    print(json.dumps({"opened": True}), flush=True)


ROLES = {
    "open-store": _child_open_store,
    "slow-commits": _child_slow_commits,
    "call": _child_call,
    "mixed": _child_mixed,
    "write-many": _child_write_many,
    "read-loop": _child_read_loop,
    "hold-write": _child_hold_write,
    "redeem-loop": _child_redeem_loop,
    "redeem-many-loop": _child_redeem_many_loop,
    "generate": _child_generate,
}


def main(argv: Sequence[str]) -> None:
    role, spec = argv[1], json.loads(argv[2])
    ROLES[role](spec)


if __name__ == "__main__":
    main(sys.argv)
