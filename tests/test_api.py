"""The HTTP API over real HTTP on loopback: `promo serve` with two worker processes over one
ledger, driven by concurrent clients (threads, each with its own connection, lined up on a
barrier so that the requests really overlap and land on both workers).

What the issue asks of it: one success when 16 clients race for a single-use code, a budget
that holds under a burst, a retry storm on one Idempotency-Key, every acknowledged redemption
surviving a kill -9 of a worker under load, rate limits and the guessing back-off, look-alike
codes refused, every endpoint walked with every role, and the OpenAPI in docs/ in step.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import Server, cart, headers, issue_key
from reliability_helpers import event_rows, read_only

from redemption_core.api.app import OPENAPI_DOC, openapi_document
from redemption_core.domain.access import CLIENT_PERMISSIONS, PERMISSIONS, KeyKind, Operation
from redemption_core.ledger.home import ledger_path
from redemption_core.ledger.verify import verify_ledger

RACERS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("api") / "home", workers=2)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def admin(server: Server) -> str:
    return issue_key(server.home, "ADMIN")


def post(server: Server, key: str, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=headers(key, **kwargs), timeout=30)


def standalone(server: Server, key: str, campaign_id: str, code: str, **extra: Any) -> None:
    definition = {
        "id": campaign_id,
        "name": campaign_id,
        "currency": "EUR",
        "status": "active",
        "voucher": {"kind": "standalone", "code": code},
        "discount": {"type": "amount", "amount_off": 1000},
        **extra,
    }
    response = post(server, key, "/campaigns", definition)
    assert response.status_code == 201, response.text


def all_at_once(count: int, call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """`count` calls from as many threads, each on its own connection, released together."""
    barrier = threading.Barrier(count)

    def run(number: int) -> httpx.Response:
        barrier.wait()
        return call(number)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def redeem_body(code: str, customer: str, amount: int = 5000, **extra: Any) -> dict[str, Any]:
    return {"code": code, "order": cart(amount), "customer_id": customer, **extra}


# -- concurrency -----------------------------------------------------------------------------------
def test_sixteen_clients_racing_for_a_single_use_code_get_exactly_one_success(
    server: Server, admin: str
) -> None:
    standalone(server, admin, "race", "RACE-ONCE", limits={"per_voucher": 1})

    answers = all_at_once(
        RACERS,
        lambda n: post(server, admin, "/redemptions", redeem_body("race-once", f"racer-{n}")),
    )

    assert [a.status_code for a in answers] == [200] * RACERS
    documents = [a.json() for a in answers]
    winners = [d for d in documents if d["ok"]]
    assert len(winners) == 1
    assert all(
        [r["code"] for r in d["reasons"]] == ["quantity_exceeded"] for d in documents if not d["ok"]
    )
    rows = event_rows(ledger_path(server.home), "redemption_succeeded")
    assert [row["redemption_id"] for row in rows if row["campaign_id"] == "race"] == [
        winners[0]["redemption_id"]
    ]


def test_a_campaign_budget_is_never_overspent_under_a_burst(server: Server, admin: str) -> None:
    # 1000 off each, a budget of 10500: at most ten of the 32 may go through.
    standalone(server, admin, "burst", "BURST-BUDGET", limits={"budget": 10_500})

    answers = all_at_once(
        32, lambda n: post(server, admin, "/redemptions", redeem_body("BURST-BUDGET", f"b-{n}"))
    )

    documents = [a.json() for a in answers]
    assert sum(d["ok"] for d in documents) == 10
    assert Counter(r["code"] for d in documents if not d["ok"] for r in d["reasons"]) == Counter(
        {"campaign_budget_exceeded": 22}
    )
    campaign = httpx.get(f"{server.url}/campaigns/burst", headers=headers(admin)).json()
    assert campaign["discount_given"] == 10_000


def test_a_retry_storm_on_one_idempotency_key_redeems_once_and_refuses_changed_bodies(
    server: Server, admin: str
) -> None:
    standalone(server, admin, "storm", "STORM-10", limits={"per_customer": 5})
    first = redeem_body("STORM-10", "alice", 5000)
    changed = redeem_body("STORM-10", "alice", 7000)

    answers = all_at_once(
        20,
        lambda n: post(
            server, admin, "/redemptions", first if n % 2 else changed, idempotency_key="chk-1"
        ),
    )

    by_status = Counter(a.status_code for a in answers)
    assert by_status == Counter({200: 10, 422: 10})
    accepted = [a.json() for a in answers if a.status_code == 200]
    assert len({d["redemption_id"] for d in accepted}) == 1
    assert sum(not d["replayed"] for d in accepted) == 1
    refused = [a.json() for a in answers if a.status_code == 422]
    assert {d["code"] for d in refused} == {"idempotency_key_reused"}
    assert all(d["field"] == "Idempotency-Key" for d in refused)
    rows = [
        row
        for row in event_rows(ledger_path(server.home))
        if row["campaign_id"] == "storm" and row["event_type"].startswith("redemption_")
    ]
    assert [row["event_type"] for row in rows] == ["redemption_succeeded"]


def test_a_retry_after_a_rollback_is_answered_from_the_ledger_and_says_so(
    server: Server, admin: str
) -> None:
    standalone(server, admin, "undo", "UNDO-10")
    body = redeem_body("UNDO-10", "bob")
    redeemed = post(server, admin, "/redemptions", body, idempotency_key="chk-undo").json()

    rolled = post(server, admin, f"/redemptions/{redeemed['redemption_id']}/rollback", {})
    retried = post(server, admin, "/redemptions", body, idempotency_key="chk-undo").json()

    assert rolled.status_code == 200 and rolled.json()["ok"]
    assert retried["redemption_id"] == redeemed["redemption_id"]
    assert retried["replayed"] is True
    assert retried["rolled_back"] is True


def test_every_acknowledged_redemption_survives_a_kill_9_of_a_worker_under_load(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path / "home", workers=2)
    try:
        key = issue_key(server.home, "MERCHANT")
        standalone(server, issue_key(server.home, "ADMIN"), "load", "LOAD-10")
        acknowledged: list[str] = []
        stop = threading.Event()

        def client(number: int) -> None:
            with httpx.Client(timeout=10) as http:
                sent = 0
                while not stop.is_set():
                    sent += 1
                    try:
                        answer = http.post(
                            f"{server.url}/redemptions",
                            json=redeem_body("LOAD-10", f"k{number}"),
                            headers=headers(key, f"kill-{number}-{sent}"),
                        )
                    except httpx.HTTPError:
                        continue  # the worker died under it: not acknowledged
                    if answer.status_code == 200 and answer.json()["ok"]:
                        acknowledged.append(answer.json()["redemption_id"])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        victim = server.worker_pids()[0]
        before_kill = len(acknowledged)
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        server.stop()

    path = ledger_path(server.home)
    rows = event_rows(path, "redemption_succeeded")
    in_ledger = {row["redemption_id"] for row in rows}
    assert before_kill > 0 and len(acknowledged) > before_kill
    assert set(acknowledged) <= in_ledger
    assert len(in_ledger) - len(acknowledged) <= 8  # at most the ones in flight at the kill
    report = verify_ledger(path)
    assert report.clean, report.differences


# -- guessing and abuse ----------------------------------------------------------------------------
LOOK_ALIKES = [
    pytest.param("\u017fpringfive", id="long s"),
    pytest.param("SPR\u0131NGFIVE", id="dotless i"),
    pytest.param("SPRING\ufb01VE", id="fi ligature"),
    pytest.param("SPRINGFIVE\u3000", id="ideographic space"),
    pytest.param("\uff33PRINGFIVE", id="fullwidth S"),
]


@pytest.mark.parametrize("typed", LOOK_ALIKES)
def test_a_code_typed_with_look_alike_characters_is_refused_not_folded(
    server: Server, admin: str, typed: str
) -> None:
    if not any(r["campaign_id"] == "five" for r in _campaigns(server, admin)):
        standalone(server, admin, "five", "SPRINGFIVE")
    customer = f"mallory-{len(typed)}-{ord(max(typed))}"

    answers = [
        post(server, admin, path, redeem_body(typed, customer))
        for path in ("/validations", "/redemptions")
    ]
    plain = post(server, admin, "/validations", redeem_body(" springfive ", "plain")).json()

    for answer in answers:
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["field"] == "code"
    time.sleep(0.5)  # validation events ride with the writer's next transaction
    assert [r for r in event_rows(ledger_path(server.home)) if r["customer_id"] == customer] == []
    assert plain["valid"] is True


def _campaigns(server: Server, key: str) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/campaigns", headers=headers(key)).json()


def test_unknown_codes_from_one_device_start_a_growing_backoff_recorded_in_the_ledger(
    server: Server, admin: str
) -> None:
    def guess(number: int) -> httpx.Response:
        body = {
            "code": f"GUESS{number:08d}",
            "order": cart(),
            "context": {"device_id": "bot-7"},
        }
        return post(server, admin, "/validations", body)

    misses = [guess(n) for n in range(5)]
    blocked = guess(5)

    assert [m.json()["reasons"][0]["code"] for m in misses] == ["resource_not_found"] * 5
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "guessing_backoff"
    assert blocked.json()["field"] == "device"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 2
    time.sleep(2.1)
    again = guess(6)  # one more miss after the first back-off: it doubles
    assert again.status_code == 200
    longer = guess(7)
    assert longer.status_code == 429 and 3 <= int(longer.headers["Retry-After"]) <= 4
    time.sleep(0.3)  # validation events ride with the writer's next transaction
    httpx.post(
        f"{server.url}/campaigns/five/status", json={"status": "active"}, headers=headers(admin)
    )
    backoffs = [
        row
        for row in event_rows(ledger_path(server.home), "guessing_backoff_started")
        if row["payload"]["subject"] == "device"
    ]
    assert [row["payload"]["level"] for row in backoffs][-2:] == [1, 2]
    assert [row["payload"]["backoff_s"] for row in backoffs][-2:] == [2.0, 4.0]
    assert all(row["device_hash"] and row["device_hash"] != "bot-7" for row in backoffs)


def test_a_client_side_key_gets_five_validations_per_five_seconds_per_ip(
    server: Server, admin: str
) -> None:
    standalone(server, admin, "web", "WEB-5")
    client = issue_key(server.home, None, kind=KeyKind.CLIENT)
    body = {"code": "WEB-5", "order": cart()}

    answers = [post(server, client, "/validations", body) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[5].json()["code"] == "rate_limited"
    assert int(answers[5].headers["Retry-After"]) >= 1
    refused = post(server, client, "/redemptions", redeem_body("WEB-5", "c-1"))
    assert refused.status_code == 403


def test_a_key_beyond_its_rate_is_answered_429_with_retry_after(tmp_path: Path) -> None:
    limits = {"per_key": {"rate": 0.5, "burst": 4}, "per_ip": {"rate": 1000, "burst": 1000}}
    server = Server(tmp_path / "home", workers=2, limits=limits)
    try:
        key = issue_key(server.home, "VIEWER")
        other_key = issue_key(server.home, "VIEWER")
        # Two connections taking turns: the workers they land on share the one bucket.
        with httpx.Client() as one, httpx.Client() as two:
            answers = [
                (one if n % 2 else two).get(f"{server.url}/campaigns", headers=headers(key))
                for n in range(6)
            ]
            other = one.get(f"{server.url}/campaigns", headers=headers(other_key))
            time.sleep(2.1)
            later = two.get(f"{server.url}/campaigns", headers=headers(key))
    finally:
        server.stop()

    assert [a.status_code for a in answers] == [200] * 4 + [429, 429]
    assert answers[4].json()["code"] == "rate_limited"
    assert answers[4].json()["field"] == "key"
    assert answers[4].headers["Retry-After"] in ("1", "2")
    assert other.status_code == 200
    assert later.status_code == 200


def test_wrong_keys_from_one_ip_are_throttled_too(tmp_path: Path) -> None:
    limits = {"unauthenticated_per_ip": {"rate": 0.1, "burst": 3}}
    server = Server(tmp_path / "home", workers=1, limits=limits)
    try:
        answers = [
            httpx.get(f"{server.url}/campaigns", headers=headers(f"sk_guess{n}")) for n in range(5)
        ]
    finally:
        server.stop()

    assert [a.status_code for a in answers] == [401] * 3 + [429, 429]


def test_holds_need_a_cart_and_are_limited_per_customer(server: Server, admin: str) -> None:
    standalone(server, admin, "holds", "HOLD-10")
    empty = {"code": "HOLD-10", "order": {"currency": "EUR", "amount": 5000}, "hold_seconds": 60}

    no_cart = post(server, admin, "/validations", {**empty, "customer_id": "h-1"})
    held = [
        post(
            server,
            admin,
            "/validations",
            {"code": "HOLD-10", "order": cart(), "customer_id": "h-1", "hold_seconds": 60},
        ).json()
        for _ in range(4)
    ]

    assert no_cart.status_code == 422 and no_cart.json()["field"] == "order.items"
    assert [h["valid"] for h in held] == [True, True, True, False]
    assert [r["code"] for r in held[3]["reasons"]] == ["hold_limit_exceeded"]


# -- keys, roles, stores ---------------------------------------------------------------------------
def test_a_merchant_key_acts_only_in_its_stores(server: Server, admin: str) -> None:
    standalone(server, admin, "stores", "STORE-10")
    merchant = issue_key(server.home, "MERCHANT", stores=["store-1"])
    body = redeem_body("STORE-10", "m-1")

    nowhere = post(server, merchant, "/redemptions", body)
    elsewhere = post(server, merchant, "/redemptions", {**body, "context": {"store_id": "store-2"}})
    here = post(server, merchant, "/redemptions", {**body, "context": {"store_id": "store-1"}})
    elsewhere_id = post(
        server, admin, "/redemptions", {**body, "context": {"store_id": "store-2"}}
    ).json()["redemption_id"]
    foreign_rollback = post(server, merchant, f"/redemptions/{elsewhere_id}/rollback", {})

    assert nowhere.status_code == 403 and nowhere.json()["field"] == "context.store_id"
    assert elsewhere.status_code == 403
    assert here.status_code == 200 and here.json()["ok"]
    assert foreign_rollback.status_code == 403


def test_a_revoked_key_stops_working_within_a_second(server: Server, admin: str) -> None:
    from redemption_core.engine.redemption import RedemptionEngine

    with RedemptionEngine.open(server.home) as engine:
        issued = engine.issue_key("VIEWER")
    assert httpx.get(f"{server.url}/campaigns", headers=headers(issued.token)).status_code == 200

    with RedemptionEngine.open(server.home) as engine:
        engine.revoke_key(issued.key_id, reason="leaked")
    time.sleep(1.1)
    answer = httpx.get(f"{server.url}/campaigns", headers=headers(issued.token))

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_writes_record_which_key_acted(server: Server, admin: str) -> None:
    standalone(server, admin, "who", "WHO-10")
    merchant_key = issue_key(server.home, "MERCHANT")
    redeemed = post(server, merchant_key, "/redemptions", redeem_body("WHO-10", "w-1")).json()

    rows = event_rows(ledger_path(server.home), "redemption_succeeded")
    [row] = [r for r in rows if r["redemption_id"] == redeemed["redemption_id"]]
    [created] = [
        r
        for r in event_rows(ledger_path(server.home), "campaign_created")
        if r["campaign_id"] == "who"
    ]
    keys = {
        r["payload"]["key_id"]: r for r in event_rows(ledger_path(server.home), "api_key_issued")
    }

    assert keys[row["payload"]["actor"]]["payload"]["role"] == "MERCHANT"
    assert keys[created["payload"]["actor"]]["payload"]["role"] == "ADMIN"


def test_a_write_replays_its_answer_for_the_same_idempotency_key_and_refuses_another_body(
    server: Server, admin: str
) -> None:
    customer = {"id": "idem-1", "consent": {"email": True}}
    first = post(server, admin, "/customers", customer, idempotency_key="cust-1")
    again = post(server, admin, "/customers", customer, idempotency_key="cust-1")
    other = post(server, admin, "/customers", {"id": "idem-2"}, idempotency_key="cust-1")
    without = post(server, admin, "/customers", customer)

    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert without.status_code == 409  # no key: a second create is a duplicate
    db = read_only(ledger_path(server.home))
    try:
        [(count,)] = db.execute(
            "SELECT count(*) FROM events WHERE event_type = 'customer_created'"
            " AND customer_id = 'idem-1'"
        ).fetchall()
    finally:
        db.close()
    assert count == 1


# Every route with a body it accepts; {…} parts are filled with ids that may not exist (a
# 404 is as good as a 200 for the walk: what counts is 403 exactly where the role forbids).
WALK: list[tuple[str, str, Operation, Any]] = [
    ("POST", "/validations", Operation.VALIDATE, {"code": "WALK-10", "order": cart()}),
    ("POST", "/redemptions", Operation.REDEEM, {"code": "WALK-10", "order": cart()}),
    ("POST", "/redemptions/r_none/rollback", Operation.ROLLBACK, {}),
    ("POST", "/campaigns", Operation.CAMPAIGNS_WRITE, {"id": "x"}),
    ("GET", "/campaigns", Operation.CAMPAIGNS_READ, None),
    ("GET", "/campaigns/walk", Operation.CAMPAIGNS_READ, None),
    ("POST", "/campaigns/nope/status", Operation.CAMPAIGNS_WRITE, {"status": "active"}),
    ("POST", "/campaigns/nope/vouchers", Operation.VOUCHERS_WRITE, {"count": 1}),
    ("POST", "/campaigns/nope/vouchers/import", Operation.VOUCHERS_WRITE, {"rows": []}),
    ("POST", "/campaigns/nope/publications", Operation.PUBLISH_SELF, {"customer_id": "c"}),
    ("GET", "/vouchers/WALK-10", Operation.VOUCHERS_READ, None),
    ("POST", "/vouchers/NOPE/publish", Operation.VOUCHERS_WRITE, {"customer_id": "c"}),
    ("POST", "/vouchers/NOPE/accept", Operation.VOUCHERS_WRITE, {"customer_id": "c"}),
    ("POST", "/vouchers/NOPE/disable", Operation.VOUCHERS_WRITE, {}),
    ("POST", "/vouchers/NOPE/enable", Operation.VOUCHERS_WRITE, {}),
    ("POST", "/vouchers/NOPE/top-up", Operation.VOUCHERS_WRITE, {"amount": 100}),
    ("POST", "/customers", Operation.CUSTOMERS_WRITE, {"id": "!"}),
    ("GET", "/customers/nobody", Operation.CUSTOMERS_READ, None),
    ("PATCH", "/customers/nobody", Operation.CUSTOMERS_WRITE, {"birthday": "01-01"}),
    ("POST", "/customers/nobody/consent", Operation.CUSTOMERS_WRITE, {"channel": "sms", "granted": True}),
    ("POST", "/orders", Operation.ORDERS_WRITE, {"order": {"currency": "EUR"}}),
    ("POST", "/orders/none/refund", Operation.ORDERS_WRITE, {"amount": 1}),
    ("POST", "/orders/none/cancel", Operation.ORDERS_WRITE, {}),
    ("POST", "/segments", Operation.SEGMENTS_WRITE, {"id": "!"}),
    ("GET", "/segments/none/members", Operation.SEGMENTS_READ, None),
    ("POST", "/segments/none/members", Operation.SEGMENTS_WRITE, {"customer_id": "!"}),
    ("DELETE", "/segments/none/members/!", Operation.SEGMENTS_WRITE, None),
    ("GET", "/ledger/events?limit=1", Operation.LEDGER_READ, None),
]  # fmt: skip


def test_every_endpoint_answers_403_exactly_to_the_roles_that_may_not_use_it(
    server: Server, admin: str
) -> None:
    standalone(server, admin, "walk", "WALK-10")
    keys = {str(role): issue_key(server.home, str(role)) for role in PERMISSIONS}
    keys["client"] = issue_key(server.home, None, kind=KeyKind.CLIENT)
    operations = {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if path != "/v1/health"
    }

    mistakes = []
    for who, key in keys.items():
        allowed = CLIENT_PERMISSIONS if who == "client" else PERMISSIONS[who]  # type: ignore[index]
        with httpx.Client(headers=headers(key), timeout=30) as http:
            answers = [
                (method, path, operation, http.request(method, f"{server.url}{path}", json=body))
                for method, path, operation, body in WALK
            ]
        for method, path, operation, answer in answers:
            forbidden = answer.status_code == 403
            if forbidden == (operation in allowed) or answer.status_code in (401, 500):
                mistakes.append(f"{who} {method} {path}: {answer.status_code} {answer.text[:120]}")

    assert mistakes == []
    assert len(WALK) == len(operations)  # every operation of the OpenAPI but health
    assert {method for method, *_ in WALK} == {method for method, _ in operations}


# -- the contract ----------------------------------------------------------------------------------
def test_the_openapi_in_docs_is_the_one_the_service_serves(server: Server) -> None:
    served = httpx.get(f"{server.url}/openapi/openapi.json").json()
    checked_in = json.loads(OPENAPI_DOC.read_text())

    assert checked_in == openapi_document(), (
        "docs/openapi.json is stale: run `python -m redemption_core.api.app`"
    )
    assert served == checked_in
    redeem = checked_in["paths"]["/v1/redemptions"]["post"]
    assert redeem["requestBody"]["content"]["application/json"]["schema"]["examples"]
    assert "429" in redeem["responses"] and "422" in redeem["responses"]
