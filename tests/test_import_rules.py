"""`promo import` goes through the engine's rules: every corruption another system's history
could carry is refused with its row, field and reason code, and the ledger file is left
byte for byte as it was.

Each case is a small file of rows on top of a live ledger (customer cust-1 holding the single-use
code WELCOME-1 of campaign `welcome`, 10.00 EUR off): the rows before the bad one are good, so
the refusal is about that row alone, checked against the state those rows left.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from builders import NOW, Clock, add_customers, engine_at, unique_def
from test_import import customer_created, order_recorded, refused, row, voucher_created

from redemption_core.domain.parsing import iso
from redemption_core.imports.ledger_schema import ImportRefused, import_events
from redemption_core.ledger.verify import verify_ledger

LATER = NOW + timedelta(minutes=5)  # the fixture's events happen at NOW
BEFORE_LATER = LATER - timedelta(minutes=1)


def at(minutes: int) -> dict:
    return {"at": LATER + timedelta(minutes=minutes)}


def redeem(
    rid: str,
    voucher: str = "v-w",
    campaign: str = "welcome",
    code: str = "WELCOME-1",
    *,
    minutes: int = 0,
    discount: int = 1000,
    amount: int = 4000,
    order_id: str | None = None,
) -> dict:
    payload = {
        "code": code,
        "order": {"id": order_id, "amount": amount, "currency": "EUR", "items": []},
        "discount": discount,
        "gift_amount": 0,
        "currency": "EUR",
    }
    return row(
        "redemption_succeeded", payload, campaign_id=campaign, voucher_id=voucher,
        redemption_id=rid, customer_id="cust-1", order_id=order_id, **at(minutes),
    )  # fmt: skip


def rollback(rid: str, *, discount: int = 1000, minutes: int = 1) -> dict:
    payload = {"discount": discount, "gift_amount": 0, "reason": "returned"}
    return row(
        "redemption_rolled_back", payload, redemption_id=rid, campaign_id="welcome",
        voucher_id="v-w", customer_id="cust-1", **at(minutes),
    )  # fmt: skip


def campaign(campaign_id: str, **overrides: object) -> dict:
    definition = unique_def(id=campaign_id, name=campaign_id, **overrides)
    return row("campaign_created", {"definition": definition}, campaign_id=campaign_id, at=BEFORE_LATER)  # fmt: skip


def voucher(voucher_id: str, campaign_id: str, code: str) -> list[dict]:
    """A voucher created and published to cust-1 a minute before LATER."""
    published = {"code": code, "source": "import"}
    return [
        voucher_created(voucher_id, campaign_id, code, at=BEFORE_LATER),
        row(
            "voucher_published",
            published,
            campaign_id=campaign_id,
            voucher_id=voucher_id,
            customer_id="cust-1",
            at=BEFORE_LATER,
        ),
    ]


def unspecified_campaign(campaign_id: str, **limits: int) -> list[dict]:
    """A campaign priced by the source system (any discount), one code for cust-1."""
    priced_elsewhere = campaign(campaign_id, discount={"type": "unspecified"}, limits=limits)
    return [priced_elsewhere, *voucher(f"v-{campaign_id}", campaign_id, f"{campaign_id.upper()}-1")]


def legacy(rid: str, *, minutes: int = 0, **changes: object) -> dict:
    return redeem(rid, "v-legacy", "legacy", "LEGACY-1", minutes=minutes, **changes)  # type: ignore[arg-type]


def promotion(campaign_id: str = "spring") -> dict:
    return campaign(campaign_id, distribution={"mode": "promotion", "segment": "all", "channels": ["email"]})  # fmt: skip


def decision(kind: str, customer: str = "cust-1", campaign_id: str = "spring") -> dict:
    return row(kind, {"source": "promotion"}, campaign_id=campaign_id, customer_id=customer, **at(0))  # fmt: skip


def hold(session: str, expires: str) -> dict:
    payload = {"session_id": session, "expires_at": expires, "code": "WELCOME-1"}
    return row("validation_hold_created", payload, campaign_id="welcome", voucher_id="v-w", customer_id="cust-1", **at(0))  # fmt: skip


def rejected(key: str) -> dict:
    payload = {"code": "NOPE", "reasons": [{"code": "resource_not_found", "message": "no"}],
               "discount": 0, "gift_amount": 0, "currency": "EUR", "request_hash": "h"}  # fmt: skip
    return row("redemption_rejected", payload, idempotency_key=key, **at(0))


def status(new: str, previous: str, minutes: int = 0) -> dict:
    return row("campaign_status_changed", {"status": new, "previous": previous}, campaign_id="welcome", **at(minutes))  # fmt: skip


def paid_order(order_id: str) -> list[dict]:
    """An order of 20.00 with the welcome voucher's 10.00 off: the customer paid 10.00."""
    recorded = row("order_recorded", {"amount": 2000, "currency": "EUR", "items": []}, order_id=order_id, customer_id="cust-1", **at(0))  # fmt: skip
    return [recorded, redeem("r-1", minutes=1, amount=2000, order_id=order_id)]


def order_event(kind: str, payload: dict) -> dict:
    return row(kind, payload, order_id="o-1", customer_id="cust-1", **at(2))


def engagement(
    kind: str, customer: str = "cust-1", *, payload: dict | None = None, **columns: str
) -> dict:
    return row(kind, payload or {}, customer_id=customer, **columns, **at(1))


def spring_voucher_sent() -> list[dict]:
    created = {"code": "SPRING-1", "kind": "unique", "source": "promotion"}
    return [
        row("voucher_created", created, campaign_id="spring", voucher_id="v-s", **at(1)),
        row(
            "voucher_published",
            {"code": "SPRING-1", "source": "promotion"},
            campaign_id="spring",
            voucher_id="v-s",
            customer_id="cust-1",
            channel="email",
            **at(1),
        ),
    ]


# name: (rows, the bad row's number, its field, its reason code)
CORRUPTIONS: dict[str, tuple[list[dict], int, str, str]] = {
    "a second redemption of a single-use voucher": (
        [redeem("r-1"), redeem("r-2", minutes=1)], 2, "voucher_id", "quantity_exceeded"),
    "a discount far above what the campaign gives": (
        [redeem("r-1", discount=900_000, amount=1_000_000)], 1, "payload.discount", "discount_mismatch"),
    "discounts beyond the campaign's budget": (
        [*unspecified_campaign("legacy", budget=5000, per_voucher=5), legacy("r-1"), legacy("r-2", minutes=1, discount=4500, amount=5000)],
        5, "payload.discount", "campaign_budget_exceeded"),
    "a discount of 5,000 on an order of 0": (
        [*unspecified_campaign("legacy"), legacy("r-1", discount=5000, amount=0)], 4, "payload.discount", "discount_mismatch"),
    "two rollbacks of one redemption": (
        [redeem("r-1"), rollback("r-1"), rollback("r-1", minutes=2)], 3, "redemption_id", "already_rolled_back"),
    "a rollback that gives back more than the redemption took": (
        [redeem("r-1"), rollback("r-1", discount=9000)], 2, "payload.discount", "state_mismatch"),
    "a rollback of a redemption that never was": (
        [rollback("r-404")], 1, "redemption_id", "reference_not_found"),
    "a redemption charged to a campaign its voucher is not in": (
        [campaign("other"), redeem("r-1", campaign="other")], 2, "campaign_id", "voucher_not_in_campaign"),
    "a campaign status that does not exist": (
        [status("deleted", "active")], 1, "payload.status", "unknown_value"),
    "a finished campaign made active again": (
        [status("finished", "active"), status("active", "finished", 1)], 2, "payload.status", "status_change_not_allowed"),
    "a voucher kind that does not exist": (
        [row("voucher_created", {"code": "NEW-1", "kind": "bogus"}, campaign_id="welcome", voucher_id="v-new", **at(0))],
        1, "payload.kind", "unknown_value"),
    "a code written in lower case": (
        [voucher_created("v-new", "welcome", "new-1", at=LATER)], 1, "payload.code", "malformed"),
    "a hold that lasts until the year 9998": (
        [hold("s-1", "9998-01-01T00:00:00Z")], 1, "payload.expires_at", "hold_too_long"),
    "a hold session used twice": (
        [hold("s-1", iso(LATER + timedelta(minutes=10))), hold("s-1", iso(LATER + timedelta(minutes=10)))],
        2, "payload.session_id", "duplicate_id"),
    "an event recorded before it occurred": (
        [customer_created("new-1", at=LATER) | {"recorded_at": iso(LATER - timedelta(hours=1))}],
        1, "recorded_at", "recorded_before_occurred"),
    "a second audience decision for one customer": (
        [promotion(), decision("customer_held_out"), decision("customer_held_out")], 3, "customer_id", "audience_already_decided"),
    "a held-out customer sent a voucher from the same promotion": (
        [promotion(), decision("customer_held_out"), *spring_voucher_sent()], 4, "customer_id", "audience_already_decided"),
    "an idempotency key used twice": (
        [rejected("key-1"), rejected("key-1")], 2, "idempotency_key", "idempotency_key_reused"),
    "a redemption id used twice": (
        [*unspecified_campaign("legacy", per_voucher=5), legacy("r-1"), legacy("r-1", minutes=1)], 5, "redemption_id", "duplicate_id"),
    "a main campaign created twice": (
        [row("main_campaign_created", {"definition": {"id": "m", "name": "M"}}, **at(0)),
         row("main_campaign_created", {"definition": {"id": "m", "name": "M"}}, **at(1))],
        2, "payload.definition.id", "duplicate_id"),
    "an order recorded twice": (
        [order_recorded("o-1", "cust-1") | {"occurred_at": iso(LATER)}, order_recorded("o-1", "cust-1") | {"occurred_at": iso(LATER)}],
        2, "order_id", "duplicate_id"),
    "an order in a currency that does not exist": (
        [row("order_recorded", {"amount": 100, "currency": "XXX", "items": []}, order_id="o-1", customer_id="cust-1", **at(0))],
        1, "payload.currency", "unknown_currency"),
    "a refund of more than the customer paid": (
        [*paid_order("o-1"), order_event("order_refunded", {"amount": 2000})], 3, "payload.amount", "refund_exceeds_paid"),
    "a refund in full while the redemption stands": (
        [*paid_order("o-1"), order_event("order_refunded", {"amount": 1000})], 3, "order_id", "redemptions_left_standing"),
    "an order cancelled while its redemption stands": (
        [*paid_order("o-1"), order_event("order_cancelled", {"reason": "x"})], 3, "order_id", "redemptions_left_standing"),
    "an integer beyond 64 bits in a payload": (
        [row("customer_created", '{"attributes": {"n": 123456789012345678901234567890}}', customer_id="new-1", **at(0))],
        1, "payload", "malformed"),
    "an attribute that is not a finite number": (
        [row("customer_created", '{"attributes": {"n": NaN}}', customer_id="new-1", **at(0))], 1, "payload", "malformed"),
    "an engagement naming a voucher another customer holds": (
        [customer_created("new-1", at=LATER), engagement("message_opened", "new-1", campaign_id="welcome", voucher_id="v-w", channel="email")],
        2, "customer_id", "not_the_holder"),
    "an engagement naming a voucher of another campaign": (
        [campaign("other"), engagement("message_clicked", campaign_id="other", voucher_id="v-w", channel="email")],
        2, "campaign_id", "voucher_not_in_campaign"),
    "an engagement of a customer without a profile": (
        [engagement("site_visited", "nobody", payload={"surface": "web"})], 1, "customer_id", "reference_not_found"),
    "a message opened on no channel": (
        [engagement("message_opened")], 1, "channel", "malformed"),
    "a visit on a surface that does not exist": (
        [engagement("site_visited", payload={"surface": "fax"})], 1, "payload.surface", "unknown_value"),
    "a visit with a channel": (
        [engagement("site_visited", payload={"surface": "web"}, channel="email")], 1, "channel", "malformed"),
    "an API key issued by another system": (
        [row("api_key_issued", {"key_id": "key_x", "key_hash": "h", "kind": "server", "role": "ADMIN", "stores": [], "name": ""}, **at(0))],
        1, "event_type", "not_imported"),
    "a guessing back-off of a device the row does not name": (
        [row("guessing_backoff_started", {"subject": "device", "level": 1, "misses": 5, "backoff_s": 60, "until": iso(LATER)}, **at(0))],
        1, "device_hash", "malformed"),
}  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A closed ledger: customer cust-1 holds WELCOME-1 (voucher v-w) of campaign welcome."""
    engine = engine_at(tmp_path, Clock())
    add_customers(engine, "cust-1")
    engine.create_from_definition(unique_def())
    engine.define_segment({"id": "all", "rules": [{"field": "days_since_signup", "op": ">=", "value": 0}]})  # fmt: skip
    engine.close()
    reopened = engine_at(tmp_path, Clock(LATER))
    import_events(reopened, voucher("v-w", "welcome", "WELCOME-1"))
    reopened.close()
    return tmp_path


def ledger_digest(home: Path) -> str:
    return hashlib.sha256((home / "ledger.sqlite").read_bytes()).hexdigest()


def import_into(home: Path, rows: list[dict]) -> ImportRefused:
    engine = engine_at(home, Clock(LATER + timedelta(hours=1)))
    try:
        return refused(engine, rows)
    finally:
        engine.close()


@pytest.mark.parametrize("rows, number, field, code", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_row_is_refused_with_its_row_field_and_code_and_the_ledger_is_byte_identical(
    home: Path, rows: list[dict], number: int, field: str, code: str
) -> None:
    before = ledger_digest(home)

    refusal = import_into(home, rows)

    assert [(e.row, e.field, e.code) for e in refusal.errors] == [(number, field, code)]
    assert refusal.total == 1
    assert ledger_digest(home) == before
    report = verify_ledger(home / "ledger.sqlite")
    assert report.clean, [str(d) for d in report.differences]


def test_a_rule_the_source_system_did_not_have_is_refused_naming_the_setting_that_describes_it(
    home: Path,
) -> None:
    definition = unique_def(id="legacy", name="legacy", voucher={"kind": "standalone", "code": "LEGACY"}, limits={"per_customer": 1})  # fmt: skip
    rows = [
        row("campaign_created", {"definition": definition}, campaign_id="legacy", **at(0)),
        row(
            "voucher_created",
            {"code": "LEGACY", "kind": "standalone", "source": "definition"},
            campaign_id="legacy",
            voucher_id="v-l",
            **at(0),
        ),
        redeem("r-1", "v-l", "legacy", "LEGACY", minutes=1),
        redeem("r-2", "v-l", "legacy", "LEGACY", minutes=2),
    ]

    refusal = import_into(home, rows)

    [error] = refusal.errors
    assert (error.row, error.field, error.code) == (4, "customer_id", "customer_limit_exceeded")
    assert "limits.per_customer" in error.problem
