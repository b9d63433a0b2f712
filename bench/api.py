"""Benchmark of the HTTP API: durable redemptions per second and latency over real HTTP.

    python bench/api.py                  # the full run (make bench-api)
    python bench/api.py --seconds 3      # shorter phases

What runs, on a fresh ledger in a temporary PROMO_HOME (removed at the end):

- the floor, in this process before the server starts: engine.redeem_many in batches of 256
  on a ledger of its own with the same campaign and requests (inprocess_grouped_per_s);
- `promo serve --workers 2` (uvicorn, two worker processes over the one ledger, each with its
  writer thread group-committing the redemptions that arrive together);
- a load generator in another process (bench/api.py --load, an asyncio HTTP/1.1 client of
  our own on uvloop: one keep-alive connection per simulated client, each sending its next
  request when the last was answered) at 1, 8 and 64 clients redeeming, then 64 validating.

Each redemption is a single-use code published to its own customer, redeemed with a cart of
two or three lines and a request context, by a MERCHANT key; every answer counted as a
redemption is a 200 with ok=true, i.e. durable (WAL, synchronous=FULL). At the end the ledger
must hold exactly the acknowledged redemptions. Rate limits are raised for the run (limits.yaml:
the point is what the service can do, not what the default policy allows one key); the
guessing back-off and everything else stays as in production.

The last line is one JSON object: api_redeem_per_s_c{1,8,64}, api_redeem_p50/p99_ms_c{...},
api_validate_p50/p99_ms_c64, inprocess_grouped_per_s, and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redemption_core.domain.campaigns import campaign_from_dict  # noqa: E402
from redemption_core.domain.events import Event, EventType  # noqa: E402
from redemption_core.domain.orders import Order, OrderItem, RequestContext  # noqa: E402
from redemption_core.domain.parsing import iso  # noqa: E402
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine  # noqa: E402

TARGETS = {"api_redeem_per_s_c64": 5_000, "api_validate_p99_ms_c64": 10.0}
CAMPAIGN_ID = "bench-api"
CLIENT_LEVELS = (1, 8, 64)
GROUPED_BATCH = 256
GROUPED_REQUESTS = 20_000
CODES_PER_CLIENT_SECOND = 12_000  # more than a client level can use in a second
LIMITS = {
    "per_key": {"rate": 1_000_000, "burst": 1_000_000},
    "per_ip": {"rate": 1_000_000, "burst": 1_000_000},
}
CATALOG = [(f"sku-{n:03d}", ("mains", "drinks", "sides")[n % 3], 300 + 10 * n) for n in range(60)]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


# -- the workload --------------------------------------------------------------------------------
def campaign_definition() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": CAMPAIGN_ID,
        "name": "API benchmark",
        "currency": "EUR",
        "status": "active",
        "voucher": {"kind": "unique"},
        "discount": {"type": "percent", "percent_off": 10, "max_discount": 2000},
        "active_from": iso(now - timedelta(days=1)),
        "active_until": iso(now + timedelta(days=30)),
        "rules": {"min_order_amount": 500},
        "limits": {"per_customer": 1, "budget": 10**12},
    }


def prepare(home: Path, count: int) -> list[tuple[str, str]]:
    """A ledger with the campaign and `count` codes, each published to its own customer."""
    with RedemptionEngine.open(home) as engine:
        engine.create_campaign(campaign_from_dict(campaign_definition()))
        codes = engine.generate_codes(CAMPAIGN_ID, count)
        with engine.store.read() as tx:
            ids = {row[0]: row[1] for row in tx.vouchers_of_campaign(CAMPAIGN_ID)}  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        pairs = [(code, f"cust-{n:07d}") for n, code in enumerate(codes)]
        for start in range(0, len(pairs), 20_000):
            with engine.store.write() as tx:
                tx.append_many(
                    [
                        Event(
                            EventType.VOUCHER_PUBLISHED,
                            now,
                            payload={"code": code},
                            campaign_id=CAMPAIGN_ID,
                            voucher_id=ids[code],
                            customer_id=customer,
                        )
                        for code, customer in pairs[start : start + 20_000]
                    ]
                )
    random.Random(7).shuffle(pairs)
    return pairs


def cart(rng: random.Random, order_id: str) -> dict[str, Any]:
    items = [
        {"product_id": p, "category": c, "quantity": rng.randint(1, 2), "unit_price": price}
        for p, c, price in rng.sample(CATALOG, rng.randint(2, 3))
    ]
    return {"id": order_id, "currency": "EUR", "items": items}


def request_body(rng: random.Random, code: str, customer: str, number: int) -> dict[str, Any]:
    return {
        "code": code,
        "order": cart(rng, f"o-{number}"),
        "customer_id": customer,
        "context": {
            "device_id": f"dev-{customer}",
            "ip": f"198.51.{number % 200}.{number % 250 + 1}",
            "store_id": f"store-{number % 40:03d}",
            "sales_channel": "pos",
        },
    }


def inprocess_grouped(home: Path, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """engine.redeem_many over the same requests, batch by batch: the floor the API chases."""
    rng = random.Random(11)
    requests = []
    for number, (code, customer) in enumerate(pairs):
        body = request_body(rng, code, customer, number)
        items = tuple(
            OrderItem(i["product_id"], i["quantity"], i["unit_price"], i["category"])
            for i in body["order"]["items"]
        )
        order = Order(sum(i.total for i in items), "EUR", items, body["order"]["id"])
        requests.append(RedeemRequest(code, order, customer, RequestContext(**body["context"])))
    with RedemptionEngine.open(home) as engine:
        started = time.perf_counter()
        ok = 0
        for start in range(0, len(requests), GROUPED_BATCH):
            results = engine.redeem_many(requests[start : start + GROUPED_BATCH])
            ok += sum(1 for r in results if getattr(r, "ok", False))
        elapsed = time.perf_counter() - started
    if ok != len(requests):
        raise SystemExit(f"bench: in-process floor redeemed {ok} of {len(requests)}")
    return {"inprocess_grouped_per_s": round(ok / elapsed), "requests": ok, "batch": GROUPED_BATCH}


# -- the load generator (run in its own process with --load) -------------------------------------
async def _connection(
    port: int,
    path: str,
    key: str,
    bodies: list[bytes],
    stop_at: float,
    latencies: list[float],
    statuses: Counter,
    acknowledged: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
    ).encode()
    try:
        for body in bodies:
            if time.perf_counter() >= stop_at:
                break
            sent = time.perf_counter()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            response_head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in response_head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            status = int(response_head[9:12])
            statuses[status] += 1
            if status == 200 and path.endswith("redemptions"):
                document = json.loads(answer)
                if document["ok"]:
                    acknowledged.append(document["redemption_id"])
    finally:
        writer.close()


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    bodies = [json.dumps(b).encode() for b in spec["bodies"]]
    clients = spec["clients"]
    per_client = [bodies[i::clients] for i in range(clients)]
    latencies: list[float] = []
    statuses: Counter = Counter()
    acknowledged: list[str] = []
    started = time.perf_counter()
    stop_at = started + spec["seconds"]
    await asyncio.gather(
        *(
            _connection(
                spec["port"],
                spec["path"],
                spec["key"],
                mine,
                stop_at,
                latencies,
                statuses,
                acknowledged,
            )
            for mine in per_client
        )
    )
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "acknowledged": acknowledged,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


def load_main(spec_path: Path) -> None:
    import uvloop

    spec = json.loads(spec_path.read_text())
    result = uvloop.run(_load(spec))
    spec_path.with_suffix(".out").write_text(json.dumps(result))


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator in a process of its own; spec and result go through files."""
    with tempfile.TemporaryDirectory(prefix="bench-api-load-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        subprocess.run([sys.executable, __file__, "--load", str(spec_path)], check=True)
        return json.loads(spec_path.with_suffix(".out").read_text())


# -- the server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Path, port: int, workers: int) -> subprocess.Popen:
    (home / "limits.yaml").write_text(json.dumps(LIMITS))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "redemption_core.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env={**os.environ, "PROMO_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as probe:
                probe.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"200 OK" in probe.recv(200):
                    time.sleep(2)  # the other worker
                    return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("bench: the server did not start")


def stop_server(server: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
            server.wait(15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        load_main(args.load)
        return
    load_at_start = os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        summary = run(scratch, args.seconds, args.workers)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary["loadavg_at_start"] = [round(v, 2) for v in load_at_start]
    summary["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    summary["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    emit(summary)


def run(scratch: Path, seconds: float, workers: int) -> dict[str, Any]:
    needed = int(CODES_PER_CLIENT_SECOND * seconds * len(CLIENT_LEVELS)) + 20_000
    floor_pairs = prepare(scratch / "floor", GROUPED_REQUESTS)
    floor = inprocess_grouped(scratch / "floor", floor_pairs)
    emit({"phase": "inprocess_grouped", **floor})

    home = scratch / "api"
    pairs = prepare(home, needed)
    with RedemptionEngine.open(home) as engine:
        key = engine.issue_key("MERCHANT", name="bench").token
    rng = random.Random(13)
    bodies = [request_body(rng, code, customer, n) for n, (code, customer) in enumerate(pairs)]
    port = free_port()
    server = start_server(home, port, workers)
    summary: dict[str, Any] = {"workers": workers, "phase_seconds": seconds, **floor}
    acknowledged: list[str] = []
    try:
        cursor = 0
        warm = run_load(
            {
                "port": port,
                "path": "/v1/redemptions",
                "key": key,
                "clients": 16,
                "seconds": 1.0,
                "bodies": bodies[cursor : cursor + 5_000],
            }
        )
        cursor += 5_000
        acknowledged += warm["acknowledged"]
        for clients in CLIENT_LEVELS:
            share = int(CODES_PER_CLIENT_SECOND * seconds)
            result = run_load(
                {
                    "port": port,
                    "path": "/v1/redemptions",
                    "key": key,
                    "clients": clients,
                    "seconds": seconds,
                    "bodies": bodies[cursor : cursor + share],
                }
            )
            cursor += share
            ok = len(result["acknowledged"])
            acknowledged += result["acknowledged"]
            rate = ok / result["seconds"]
            record = {
                "phase": f"redeem_c{clients}",
                "durable_redemptions": ok,
                "per_s": round(rate),
                "p50_ms": round(result["p50_ms"], 2),
                "p99_ms": round(result["p99_ms"], 2),
                "statuses": result["statuses"],
            }
            emit(record)
            if ok != result["requests"]:
                raise SystemExit(f"bench: {result['requests'] - ok} redemptions not ok: {record}")
            summary[f"api_redeem_per_s_c{clients}"] = record["per_s"]
            summary[f"api_redeem_p50_ms_c{clients}"] = record["p50_ms"]
            summary[f"api_redeem_p99_ms_c{clients}"] = record["p99_ms"]
        # Validations of codes still unredeemed (valid answers, with every rule evaluated).
        validating = run_load(
            {
                "port": port,
                "path": "/v1/validations",
                "key": key,
                "clients": 64,
                "seconds": seconds,
                "bodies": bodies[cursor:],
            }
        )
        emit(
            {
                "phase": "validate_c64",
                "per_s": round(validating["requests"] / validating["seconds"]),
                "p50_ms": round(validating["p50_ms"], 2),
                "p99_ms": round(validating["p99_ms"], 2),
                "statuses": validating["statuses"],
            }
        )
        summary["api_validate_per_s_c64"] = round(validating["requests"] / validating["seconds"])
        summary["api_validate_p50_ms_c64"] = round(validating["p50_ms"], 2)
        summary["api_validate_p99_ms_c64"] = round(validating["p99_ms"], 2)
    finally:
        stop_server(server)
    db = sqlite3.connect(home / "ledger.sqlite")
    try:
        durable = {
            row[0]
            for row in db.execute(
                "SELECT redemption_id FROM events WHERE event_type = 'redemption_succeeded'"
            )
        }
    finally:
        db.close()
    summary["acknowledged_all_durable"] = set(acknowledged) <= durable
    summary["api_vs_inprocess_c64"] = round(
        summary["api_redeem_per_s_c64"] / summary["inprocess_grouped_per_s"], 3
    )
    summary["targets"] = TARGETS
    summary["targets_met"] = {
        "api_redeem_per_s_c64": summary["api_redeem_per_s_c64"] >= TARGETS["api_redeem_per_s_c64"],
        "api_validate_p99_ms_c64": summary["api_validate_p99_ms_c64"]
        < TARGETS["api_validate_p99_ms_c64"],
    }
    return summary


if __name__ == "__main__":
    main()
