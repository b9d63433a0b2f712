"""Two `promo serve` instances over one PostgreSQL ledger, as two machines would run them:
each with its own PROMO_HOME (its own guard table and lock files), the same HMAC key and the
same PROMO_LEDGER_URL, on its own loopback port. Clients race through both at once; the
guarantees are the database's, not a lock either machine holds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import Server, headers
from pg_cluster import Cluster
from reliability_helpers import event_rows, projection_row, unique_def
from test_api import all_at_once, post, redeem_body, standalone

from redemption_core.engine.access import KEY_CACHE_S
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.verify import verify_ledger

RACERS = 16  # half through each server
HMAC_KEY = "cd" * 32  # the same on every machine (docs/runbook.md)


class Machines:
    def __init__(self, url: str, servers: list[Server], admin: str) -> None:
        self.url = url
        self.servers = servers
        self.admin = admin

    def server(self, number: int) -> Server:
        """Client `number`'s server: even ones go to the first, odd ones to the second."""
        return self.servers[number % 2]


@pytest.fixture(scope="module")
def machines(
    postgres_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Machines]:
    url = postgres_cluster.create_ledger()
    shared = {"PROMO_LEDGER_URL": url, "PROMO_HMAC_KEY": HMAC_KEY}
    root = tmp_path_factory.mktemp("machines")
    servers: list[Server] = []
    try:
        with pytest.MonkeyPatch.context() as env:
            for name, value in shared.items():
                env.setenv(name, value)
            with RedemptionEngine.open(root / "admin") as engine:
                admin = engine.issue_key("ADMIN", name="both machines").token
            for name in ("machine-a", "machine-b"):
                servers.append(Server(root / name, workers=1, env=shared))
            yield Machines(url, servers, admin)
    finally:
        for server in servers:
            server.stop()
        postgres_cluster.drop_ledger(url)


def test_sixteen_clients_through_two_servers_racing_for_a_single_use_code_get_one_success(
    machines: Machines,
) -> None:
    standalone(machines.servers[0], machines.admin, "race", "RACE-ONCE", limits={"per_voucher": 1})

    answers = all_at_once(
        RACERS,
        lambda n: post(
            machines.server(n), machines.admin, "/redemptions", redeem_body("RACE-ONCE", f"r{n}")
        ),
    )

    assert [a.status_code for a in answers] == [200] * RACERS
    documents = [a.json() for a in answers]
    winners = [d for d in documents if d["ok"]]
    assert len(winners) == 1
    assert all(
        [r["code"] for r in d["reasons"]] == ["quantity_exceeded"] for d in documents if not d["ok"]
    )
    rows = event_rows(machines.url, "redemption_succeeded")
    assert [r["redemption_id"] for r in rows if r["campaign_id"] == "race"] == [
        winners[0]["redemption_id"]
    ]
    assert projection_row(machines.url, "vouchers", "code", "RACE-ONCE")["redemptions"] == 1
    assert verify_ledger(machines.url).clean


def test_a_budget_shared_by_32_codes_is_never_overspent_by_a_burst_through_two_servers(
    machines: Machines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1000 off each, a budget of 10500: at most ten of the 32 may go through. A code each, so
    # only the campaign's counters are shared by the racers (and the two servers' batches).
    with machine_engine(machines, tmp_path, monkeypatch) as engine:
        engine.create_from_definition(unique_def("burst", limits={"budget": 10_500}))
        codes = engine.generate_codes("burst", 32)
        for n, code in enumerate(codes):
            engine.publish(code, f"b{n}")

    answers = all_at_once(
        32,
        lambda n: post(
            machines.server(n), machines.admin, "/redemptions", redeem_body(codes[n], f"b{n}")
        ),
    )

    documents = [a.json() for a in answers]
    assert sum(d["ok"] for d in documents) == 10
    assert Counter(r["code"] for d in documents if not d["ok"] for r in d["reasons"]) == Counter(
        {"campaign_budget_exceeded": 22}
    )
    campaign = projection_row(machines.url, "campaigns", "campaign_id", "burst")
    assert campaign["budget_used"] == 10_000 and campaign["redemptions"] == 10
    spent = [
        row["payload"]["discount"]
        for row in event_rows(machines.url, "redemption_succeeded")
        if row["campaign_id"] == "burst"
    ]
    assert spent == [1000] * 10
    assert verify_ledger(machines.url).clean


def test_one_idempotency_key_retried_through_both_servers_redeems_once(
    machines: Machines,
) -> None:
    standalone(machines.servers[0], machines.admin, "storm", "STORM-10", limits={"per_customer": 5})
    body = redeem_body("STORM-10", "alice")

    answers = all_at_once(
        RACERS,
        lambda n: post(
            machines.server(n), machines.admin, "/redemptions", body, idempotency_key="chk-both"
        ),
    )

    assert [a.status_code for a in answers] == [200] * RACERS
    documents = [a.json() for a in answers]
    assert len({d["redemption_id"] for d in documents}) == 1
    assert sum(not d["replayed"] for d in documents) == 1
    rows = [r for r in event_rows(machines.url) if r["campaign_id"] == "storm"]
    assert [r["event_type"] for r in rows if r["event_type"].startswith("redemption_")] == [
        "redemption_succeeded"
    ]


def test_a_key_revoked_on_another_machine_stops_working_on_both_servers_within_seconds(
    machines: Machines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with machine_engine(machines, tmp_path, monkeypatch) as engine:
        issued = engine.issue_key("VIEWER")
        answers = [_campaigns(server, issued.token) for server in machines.servers]
        engine.revoke_key(issued.key_id, reason="leaked")
    deadline = time.monotonic() + KEY_CACHE_S + 2.0

    while time.monotonic() < deadline and any(
        _campaigns(server, issued.token) != 401 for server in machines.servers
    ):
        time.sleep(0.1)

    assert answers == [200, 200]
    assert [_campaigns(server, issued.token) for server in machines.servers] == [401, 401]


def machine_engine(
    machines: Machines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> RedemptionEngine:
    """The engine of a third machine (the CLI of an operator) on the same ledger."""
    monkeypatch.setenv("PROMO_LEDGER_URL", machines.url)
    monkeypatch.setenv("PROMO_HMAC_KEY", HMAC_KEY)
    return RedemptionEngine.open(tmp_path / "third-machine")


def _campaigns(server: Server, key: str) -> int:
    return httpx.get(f"{server.url}/campaigns", headers=headers(key), timeout=10).status_code
