"""`promo` subcommands for customers, orders, segments, promotions, autopilot and deliveries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_cli import Promo, assert_refused

CUSTOMERS = [
    {"id": "ann", "email": "ann@example.com", "birthday": "04-17", "consent": {"email": True}},
    {"id": "bob", "phone": "+491701234567", "consent": {"sms": True, "push": True}},
    {"id": "cem", "consent": {}},
]
SEGMENT = {"id": "buyers", "rules": [{"field": "order_count", "op": ">=", "value": 1}]}
PROMOTION = {
    "id": "thanks",
    "currency": "EUR",
    "status": "active",
    "discount": {"type": "amount", "amount_off": 500},
    "distribution": {
        "mode": "promotion",
        "segment": "buyers",
        "channels": ["push", "email", "sms"],
    },
}
BIRTHDAY = {
    "id": "bday",
    "currency": "EUR",
    "status": "active",
    "discount": {"type": "amount", "amount_off": 300},
    "distribution": {
        "mode": "autopilot",
        "channels": ["email", "sms"],
        "trigger": {"type": "personal_date", "days_before": 5},
    },
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_backend: str) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PROMO_HOME", str(home))
    monkeypatch.delenv("PROMO_HMAC_KEY", raising=False)
    return home


@pytest.fixture
def promo(home: Path, capsys: pytest.CaptureFixture[str]) -> Promo:
    return Promo(capsys)


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def order_json(order_id: str, amount: int = 2500) -> str:
    return json.dumps(
        {
            "id": order_id,
            "amount": amount,
            "currency": "EUR",
            "items": [
                {"product_id": "pizza", "category": "mains", "quantity": 1, "unit_price": amount}
            ],
        }
    )


def outbox_lines(home: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((home / "outbox").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_a_promotion_reaches_the_segment_over_each_customers_consented_channel_once(
    promo: Promo, home: Path, tmp_path: Path
) -> None:
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", CUSTOMERS))
    for number, customer in enumerate(("ann", "bob", "cem")):
        promo.ok("order", "record", "--order", order_json(f"o-{number}"), "--customer", customer)
    promo.ok("segment", "define", write(tmp_path / "segment.yaml", SEGMENT))
    promo.ok("campaign", "create", write(tmp_path / "promotion.yaml", PROMOTION))

    first = promo.ok("--json", "promotion", "send", "thanks").json
    again = promo.ok("--json", "promotion", "send", "thanks").json

    assert first[0]["published"] == 2
    assert first[0]["skipped"] == {"no_consent": 1}
    assert again[0]["published"] == again[0]["delivered"] == 0
    sent = {(line["customer_id"], line["channel"]) for line in outbox_lines(home)}
    assert sent == {("ann", "email"), ("bob", "push")}
    assert promo.ok("ledger", "verify").code == 0


def test_segment_preview_shows_size_and_members_now_and_at_a_past_instant(
    promo: Promo, tmp_path: Path
) -> None:
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", CUSTOMERS))
    promo.ok("order", "record", "--order", order_json("o-1"), "--customer", "ann")
    promo.ok("segment", "define", write(tmp_path / "segment.yaml", SEGMENT))

    now = promo.ok("--json", "segment", "preview", "buyers").json
    before = promo.ok("--json", "segment", "preview", "buyers", "--at", "2020-01-01T00:00:00Z").json

    assert (now["size"], now["members"]) == (1, ["ann"])
    assert before["size"] == 0


def test_autopilot_run_at_an_instant_matches_birthdays_and_lists_nothing_pending(
    promo: Promo, home: Path, tmp_path: Path
) -> None:
    customers = [dict(c, signup_at="2026-01-01T00:00:00Z") for c in CUSTOMERS]
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", customers))
    promo.ok("campaign", "create", write(tmp_path / "bday.yaml", BIRTHDAY))

    ran = promo.ok("--json", "autopilot", "run", "--now", "2026-04-14T09:00:00Z").json
    listed = promo.ok("--json", "autopilot", "list").json
    pending = promo.ok("--json", "autopilot", "pending").json

    assert ran[0]["matched"] == 1
    assert ran[0]["delivered"] == 1
    assert [line["customer_id"] for line in outbox_lines(home)] == ["ann"]
    assert listed[0]["trigger"]["type"] == "personal_date"
    assert pending == []


def test_an_order_refund_and_cancel_report_what_they_did(promo: Promo, tmp_path: Path) -> None:
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", CUSTOMERS))
    promo.ok("order", "record", "--order", order_json("o-1", 3000), "--customer", "ann")

    refunded = promo.ok("--json", "order", "refund", "o-1", "1000").json
    cancelled = promo.ok("--json", "order", "cancel", "o-1").json
    shown = promo.ok("--json", "customer", "show", "ann").json

    assert refunded["refundable_left"] == 2000
    assert cancelled["rolled_back"] == []
    assert (shown["orders"], shown["spend"], shown["email"]) == (0, 0, "a***@example.com")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("customer", "consent", "ann", "fax", "grant"), "channel"),
        (("order", "refund", "o-1", "999999"), "amount"),
        (("order", "cancel", "nope"), "order_id"),
        (("segment", "preview", "nope"), "segment_id"),
        (("segment", "preview", "buyers", "--at", "yesterday"), "--at"),
        (("promotion", "send", "nope"), "campaign_id"),
        (("autopilot", "run", "--now", "soon"), "--now"),
        (("settings", "frequency-cap", "0", "7"), "max_offers"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_records_nothing(
    promo: Promo, tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", CUSTOMERS))
    promo.ok("order", "record", "--order", order_json("o-1"), "--customer", "ann")
    promo.ok("segment", "define", write(tmp_path / "segment.yaml", SEGMENT))
    before = promo.events()

    result = promo(*args)

    assert_refused(result, field)
    assert promo.events() == before


def test_accept_is_a_command_of_its_own_and_answers_once(promo: Promo, tmp_path: Path) -> None:
    promo.ok("customer", "add", write(tmp_path / "customers.yaml", CUSTOMERS))
    promo.ok("order", "record", "--order", order_json("o-1"), "--customer", "ann")
    promo.ok("segment", "define", write(tmp_path / "segment.yaml", SEGMENT))
    promo.ok("campaign", "create", write(tmp_path / "promotion.yaml", PROMOTION))
    promo.ok("promotion", "send", "thanks")
    (line,) = [
        json.loads(x)
        for x in (tmp_path / "home" / "outbox" / "email.jsonl").read_text().splitlines()
    ]

    first = promo.ok("accept", line["voucher_code"], "--customer", "ann")
    second = promo.ok("accept", line["voucher_code"], "--customer", "ann")

    assert first.out.strip() == "accepted"
    assert second.out.strip() == "already accepted"
