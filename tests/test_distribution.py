"""Distribution through the real engine: which channel an offer takes, the frequency cap across
campaigns, control groups, delivery over real SMTP and HTTP servers on loopback, and a
promotion that resumes after a crash without sending anyone a second voucher.

Every scenario ends with a ledger that `verify` rebuilds to the same projection. Retries never
wait (RetryPolicy with zero delays); servers listen on 127.0.0.1 and are stopped by their test.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from builders import (
    Clock,
    RecordingChannel,
    add_customers,
    autopilot_def,
    distributor,
    engine_at,
    events,
    everyone,
    ledger_rows,
    place_order,
    promotion_def,
    recording_channels,
    voucher,
)

from redemption_core.distribution.channels import (
    HttpProviderChannel,
    Message,
    SmtpChannel,
    TransientDeliveryError,
)
from redemption_core.distribution.distributor import MappingContactBook
from redemption_core.domain.events import Event, EventType
from redemption_core.domain.offers import in_control_group
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.verify import verify_ledger

CHANNELS = ("email", "sms", "push")
CAMPAIGN_ORDER = ("sms", "push", "email")


# -- reading the ledger ------------------------------------------------------------------------
def published(engine: RedemptionEngine, campaign_id: str | None = None) -> list[Event]:
    return [
        e
        for e in events(engine, EventType.VOUCHER_PUBLISHED)
        if campaign_id is None or e.campaign_id == campaign_id
    ]


def skipped(engine: RedemptionEngine) -> dict[tuple[str, str], str]:
    """(campaign, customer) -> the reason its offer was skipped."""
    return {
        (e.campaign_id or "", e.customer_id or ""): e.payload["reason"]
        for e in events(engine, EventType.OFFER_SKIPPED)
    }


def offered(engine: RedemptionEngine) -> dict[str, list[str]]:
    """customer -> the campaigns that published a voucher to them, in ledger order."""
    offers: dict[str, list[str]] = defaultdict(list)
    for e in published(engine):
        offers[e.customer_id or ""].append(e.campaign_id or "")
    return dict(offers)


def most_offers_in_any_window(engine: RedemptionEngine, days: int) -> int:
    """The most offers any customer received within `days` days of each other."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for e in published(engine):
        times[e.customer_id or ""].append(e.occurred_at)
    window = timedelta(days=days)
    return max(
        (
            sum(1 for other in moments if start <= other < start + window)
            for moments in times.values()
            for start in moments
        ),
        default=0,
    )


def sent_to(channels: dict[str, RecordingChannel]) -> dict[str, list[str]]:
    return {kind: [m.customer_id for m in channel.sent] for kind, channel in channels.items()}


def assert_clean(engine: RedemptionEngine) -> None:
    report = verify_ledger(engine.store.path)
    assert report.clean, [str(d) for d in report.differences]


# -- channel choice: consent, adapters, contacts -----------------------------------------------
CONSENTS = [
    frozenset(kind for kind, on in zip(CHANNELS, flags, strict=True) if on)
    for flags in itertools.product((False, True), repeat=3)
]


@pytest.mark.parametrize("consent", [c for c in CONSENTS if c], ids=lambda c: "+".join(sorted(c)))
def test_the_offer_takes_the_first_channel_in_campaign_order_the_customer_consents_to(
    tmp_path: Path, consent: frozenset[str]
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=consent)
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    channels = recording_channels()
    expected = next(kind for kind in CAMPAIGN_ORDER if kind in consent)

    report = distributor(engine, channels).send_promotion("promo")

    [offer] = published(engine)
    assert (offer.customer_id, offer.channel) == ("ann", expected)
    assert sent_to(channels) == {kind: ["ann"] if kind == expected else [] for kind in CHANNELS}
    [delivered] = events(engine, EventType.VOUCHER_DELIVERED)
    assert (delivered.voucher_id, delivered.channel) == (offer.voucher_id, expected)
    assert (report.published, report.delivered, report.skipped) == (1, 1, {})
    assert_clean(engine)


def test_a_customer_opted_out_of_every_channel_is_skipped_with_no_consent_and_gets_nothing(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=())
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    channels = recording_channels()

    report = distributor(engine, channels).send_promotion("promo")

    assert skipped(engine) == {("promo", "ann"): "no_consent"}
    assert events(engine, EventType.VOUCHER_CREATED, EventType.VOUCHER_PUBLISHED) == []
    assert sent_to(channels) == {"email": [], "sms": [], "push": []}
    assert ledger_rows(engine, "SELECT customer_id, outcome, reason FROM audience") == [
        ("ann", "skipped", "no_consent")
    ]
    assert (report.published, report.skipped) == (0, {"no_consent": 1})
    assert_clean(engine)


def test_withdrawing_consent_moves_the_offer_to_the_next_channel_in_campaign_order(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=CHANNELS)
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    assert engine.set_consent("ann", "sms", False, source="reply STOP")

    distributor(engine).send_promotion("promo")

    [offer] = published(engine)
    assert offer.channel == "push"
    assert_clean(engine)


def test_a_consented_channel_without_an_adapter_is_skipped_as_channel_unavailable(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "push-only", consent=("push",))
    add_customers(engine, "sms-and-push", consent=("sms", "push"))
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    channels = recording_channels("email", "push")  # no SMS provider configured

    distributor(engine, channels).send_promotion("promo")

    assert skipped(engine) == {}
    assert {e.customer_id: e.channel for e in published(engine)} == {
        "push-only": "push",
        "sms-and-push": "push",
    }
    assert_clean(engine)


def test_consent_only_to_channels_without_an_adapter_skips_the_offer_as_channel_unavailable(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=("sms", "push"))
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    channels = recording_channels("email")

    report = distributor(engine, channels).send_promotion("promo")

    assert skipped(engine) == {("promo", "ann"): "channel_unavailable"}
    assert published(engine) == [] and channels["email"].sent == []
    assert report.skipped == {"channel_unavailable": 1}
    assert_clean(engine)


def test_a_consented_channel_the_contact_book_has_no_address_for_is_skipped_as_no_contact(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=("sms",))
    add_customers(engine, "bob", consent=("sms", "email"))
    everyone(engine)
    engine.create_from_definition(promotion_def(channels=CAMPAIGN_ORDER))
    contacts = MappingContactBook(
        {"ann": {"email": "ann@example.com"}, "bob": {"email": "bob@example.com"}}
    )
    channels = recording_channels()

    report = distributor(engine, channels, contacts).send_promotion("promo")

    assert skipped(engine) == {("promo", "ann"): "no_contact"}
    assert {e.customer_id: e.channel for e in published(engine)} == {"bob": "email"}
    assert [(m.customer_id, m.address) for m in channels["email"].sent] == [
        ("bob", "bob@example.com")
    ]
    assert report.skipped == {"no_contact": 1}
    assert_clean(engine)


# -- frequency cap across campaigns ------------------------------------------------------------
def capped_world(tmp_path: Path, clock: Clock) -> RedemptionEngine:
    """ann and bob spent enough for the autopilot; cy and dee did not; everyone is promoted to."""
    engine = engine_at(tmp_path, clock)
    add_customers(engine, "ann", "bob", "cy", "dee")
    place_order(engine, "ann", 2000)
    place_order(engine, "bob", 2000)
    everyone(engine)
    trigger = {"type": "spend_threshold", "amount": 1000, "cooldown_days": 7}
    engine.create_from_definition(autopilot_def("auto", trigger))
    for campaign_id in ("promo", "promo-midweek", "promo-next-week"):
        engine.create_from_definition(promotion_def(campaign_id))
    return engine


def test_an_autopilot_and_a_promotion_give_each_customer_at_most_one_offer_under_a_cap_of_one(
    tmp_path: Path,
) -> None:
    engine = capped_world(tmp_path, Clock())
    sender = distributor(engine)
    sender.set_frequency_cap(1, 7)

    sender.run_autopilot()
    report = sender.send_promotion("promo")

    assert offered(engine) == {"ann": ["auto"], "bob": ["auto"], "cy": ["promo"], "dee": ["promo"]}
    assert skipped(engine) == {("promo", "ann"): "frequency_cap", ("promo", "bob"): "frequency_cap"}
    assert (report.published, report.skipped) == (2, {"frequency_cap": 2})
    assert_clean(engine)


def test_within_the_cap_window_nobody_gets_a_second_offer_and_after_it_everyone_can_again(
    tmp_path: Path,
) -> None:
    clock = Clock()
    engine = capped_world(tmp_path, clock)
    sender = distributor(engine)
    sender.set_frequency_cap(1, 7)
    sender.run_autopilot()
    sender.send_promotion("promo")

    clock.advance(days=6, hours=23)
    midweek = sender.send_promotion("promo-midweek")
    [too_early] = sender.run_autopilot()
    clock.advance(hours=1, seconds=1)
    [next_week_auto] = sender.run_autopilot()
    next_week = sender.send_promotion("promo-next-week")

    assert (midweek.published, midweek.skipped) == (0, {"frequency_cap": 4})
    assert too_early.matched == 0  # ann and bob are still in the trigger's 7-day cool-down
    assert (next_week_auto.matched, next_week_auto.published) == (2, 2)
    assert (next_week.published, next_week.skipped) == (2, {"frequency_cap": 2})
    assert offered(engine) == {
        "ann": ["auto", "auto"],
        "bob": ["auto", "auto"],
        "cy": ["promo", "promo-next-week"],
        "dee": ["promo", "promo-next-week"],
    }
    assert most_offers_in_any_window(engine, days=7) == 1
    assert_clean(engine)


def test_an_autopilot_trigger_refused_by_the_cap_fails_with_reason_frequency_cap(
    tmp_path: Path,
) -> None:
    engine = capped_world(tmp_path, Clock())
    sender = distributor(engine)
    sender.set_frequency_cap(1, 7)
    sender.send_promotion("promo")

    [report] = sender.run_autopilot()

    assert (report.matched, report.published, report.skipped) == (2, 0, {"frequency_cap": 2})
    assert ledger_rows(
        engine, "SELECT customer_id, status, reason FROM triggers ORDER BY customer_id"
    ) == [("ann", "failed", "frequency_cap"), ("bob", "failed", "frequency_cap")]
    assert sender.pending_triggers() == []
    assert_clean(engine)


def test_two_promotions_the_same_day_reach_each_customer_once_under_a_cap_of_one(
    tmp_path: Path,
) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    add_customers(engine, "ann", "bob", "cy")
    everyone(engine)
    engine.create_from_definition(promotion_def("morning"))
    engine.create_from_definition(promotion_def("evening"))
    sender = distributor(engine)
    sender.set_frequency_cap(1, 7)

    sender.send_promotion("morning")
    clock.advance(hours=8)
    evening = sender.send_promotion("evening")

    assert offered(engine) == {"ann": ["morning"], "bob": ["morning"], "cy": ["morning"]}
    assert (evening.published, evening.skipped) == (0, {"frequency_cap": 3})
    assert_clean(engine)


def test_a_cap_of_two_a_week_lets_the_second_promotion_through_and_stops_the_third(
    tmp_path: Path,
) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    add_customers(engine, "ann", "bob")
    everyone(engine)
    for campaign_id in ("monday", "wednesday", "friday"):
        engine.create_from_definition(promotion_def(campaign_id))
    sender = distributor(engine)
    sender.set_frequency_cap(2, 7)

    reports = []
    for campaign_id in ("monday", "wednesday", "friday"):
        reports.append(sender.send_promotion(campaign_id))
        clock.advance(days=2)

    assert [r.published for r in reports] == [2, 2, 0]
    assert reports[2].skipped == {"frequency_cap": 2}
    assert most_offers_in_any_window(engine, days=7) == 2
    assert_clean(engine)


def test_being_held_out_of_one_campaign_does_not_use_up_the_customers_cap(
    tmp_path: Path,
) -> None:
    candidates = [f"cust-{i:03d}" for i in range(200)]
    held = next(c for c in candidates if in_control_group("first", c, 0.5))
    engine = engine_at(tmp_path)
    add_customers(engine, held)
    everyone(engine)
    engine.create_from_definition(promotion_def("first", control_share=0.5))
    engine.create_from_definition(promotion_def("second"))
    sender = distributor(engine)
    sender.set_frequency_cap(1, 7)

    first = sender.send_promotion("first")
    second = sender.send_promotion("second")

    assert (first.held_out, first.published) == (1, 0)
    assert (second.published, second.skipped) == (1, {})
    assert offered(engine) == {held: ["second"]}
    assert_clean(engine)


# -- control groups ----------------------------------------------------------------------------
SYNTHETIC = [f"cust-{i:05d}" for i in range(20_000)]


@pytest.mark.parametrize("share", [0.1, 0.25])
@pytest.mark.parametrize("campaign_id", ["spring", "winback-2026"])
def test_the_control_group_holds_out_the_configured_share_within_one_and_a_half_points(
    campaign_id: str, share: float
) -> None:
    held = sum(in_control_group(campaign_id, customer, share) for customer in SYNTHETIC)

    assert abs(held / len(SYNTHETIC) - share) <= 0.015


def test_control_groups_of_two_campaigns_are_independent() -> None:
    spring = {c for c in SYNTHETIC if in_control_group("spring", c, 0.25)}

    summer = {c for c in SYNTHETIC if in_control_group("summer", c, 0.25)}

    assert spring != summer
    # Independent draws overlap in share * share of the customers.
    assert abs(len(spring & summer) / len(SYNTHETIC) - 0.25 * 0.25) <= 0.01


def test_the_control_group_answer_is_the_same_on_every_call() -> None:
    first = [in_control_group("spring", c, 0.1) for c in SYNTHETIC[:2000]]

    again = [in_control_group("spring", c, 0.1) for c in SYNTHETIC[:2000]]

    assert first == again and any(first) and not all(first)


def held_out_by_a_fresh_distributor(folder: Path, customers: list[str]) -> set[str]:
    """Run the same promotion on a new ledger with a new Distributor; who was held out."""
    engine = engine_at(folder)
    add_customers(engine, *customers)
    everyone(engine)
    engine.create_from_definition(promotion_def("spring", control_share=0.25))
    distributor(engine).send_promotion("spring")
    assert_clean(engine)
    return {e.customer_id or "" for e in events(engine, EventType.CUSTOMER_HELD_OUT)}


def test_two_distributors_on_two_ledgers_hold_out_the_same_customers(tmp_path: Path) -> None:
    customers = [f"cust-{i:03d}" for i in range(60)]

    first = held_out_by_a_fresh_distributor(tmp_path / "first", customers)
    second = held_out_by_a_fresh_distributor(tmp_path / "second", customers)

    expected = {c for c in customers if in_control_group("spring", c, 0.25)}
    assert first == second == expected
    assert 0 < len(expected) < len(customers)


def test_held_out_customers_get_a_held_out_event_and_no_voucher_and_no_message(
    tmp_path: Path,
) -> None:
    customers = [f"cust-{i:03d}" for i in range(40)]
    engine = engine_at(tmp_path)
    add_customers(engine, *customers)
    everyone(engine)
    engine.create_from_definition(promotion_def("spring", control_share=0.5))
    channels = recording_channels()
    expected = {c for c in customers if in_control_group("spring", c, 0.5)}

    report = distributor(engine, channels).send_promotion("spring")

    held = events(engine, EventType.CUSTOMER_HELD_OUT)
    assert {e.customer_id for e in held} == expected and len(held) == len(expected)
    assert all(e.campaign_id == "spring" and e.payload == {"source": "promotion"} for e in held)
    reached = {e.customer_id for e in published(engine)}
    assert reached == set(customers) - expected
    assert {m.customer_id for m in channels["email"].sent} == reached
    delivered = {e.customer_id for e in events(engine, EventType.VOUCHER_DELIVERED)}
    assert delivered == reached
    audience = dict(ledger_rows(engine, "SELECT customer_id, outcome FROM audience"))
    assert {c for c, outcome in audience.items() if outcome == "held_out"} == expected
    assert (report.held_out, report.published) == (len(expected), len(reached))
    assert_clean(engine)


# -- SMTP: a real server on loopback -------------------------------------------------------------
@dataclass
class Mailbox:
    """An aiosmtpd handler that accepts and keeps every message."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def mails(self) -> list[email.message.EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(mail, email.message.EmailMessage)
            parsed.append(mail)
        return parsed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


def test_each_published_voucher_reaches_the_smtp_server_once_with_its_own_code(
    tmp_path: Path, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", "bob", "cy")
    everyone(engine)
    engine.create_from_definition(promotion_def("spring"))
    addresses = {"ann": "ann@example.com", "bob": "bob.b@example.org", "cy": "cy@example.net"}
    contacts = MappingContactBook({c: {"email": a} for c, a in addresses.items()})
    smtp = SmtpChannel(
        host="127.0.0.1", port=port, from_address="vouchers@shop.example", timeout_s=2.0
    )

    report = distributor(engine, {"email": smtp}, contacts).send_promotion("spring")

    offers = published(engine, "spring")
    assert len(offers) == 3 and len(mailbox.envelopes) == 3
    mails = {
        mail["Message-ID"]: (mail, envelope)
        for mail, envelope in zip(mailbox.mails(), mailbox.envelopes, strict=True)
    }
    for offer in offers:
        mail, envelope = mails[f"<{offer.voucher_id}@shop.example>"]
        address = addresses[offer.customer_id or ""]
        assert envelope.rcpt_tos == [address] and mail["To"] == address
        assert mail.get_content().strip() == f"Your code: {offer.payload['code']}"
        assert mail["Subject"] == "A voucher for spring"
    delivered = events(engine, EventType.VOUCHER_DELIVERED)
    assert sorted(e.voucher_id or "" for e in delivered) == sorted(
        o.voucher_id or "" for o in offers
    )
    for e in delivered:
        assert (e.channel, e.payload["provider"], e.payload["attempts"]) == ("email", "smtp", 1)
        assert e.payload["latency_ms"] > 0 and e.payload["error"] is None
    assert ledger_rows(engine, "SELECT DISTINCT status, attempts FROM deliveries") == [
        ("delivered", 1)
    ]
    assert report.delivered == 3
    assert_clean(engine)


# -- HTTP provider: failing, then recovering ---------------------------------------------------
class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up


@dataclass
class Provider:
    url: str
    status: int
    delay_s: float = 0.0
    requests: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # body, key


@contextmanager
def http_provider(status: int, *, delay_s: float = 0.0) -> Iterator[Provider]:
    """An SMS/push provider on loopback answering `provider.status` (change it to recover)."""
    lock = threading.Lock()
    release = threading.Event()
    provider = Provider("", status, delay_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                provider.requests.append((body, self.headers["Idempotency-Key"]))
                status = provider.status
            if provider.delay_s:
                release.wait(provider.delay_s)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1/messages"
    try:
        yield provider
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def sms_promotion(tmp_path: Path, clock: Clock | None = None) -> RedemptionEngine:
    engine = engine_at(tmp_path, clock or Clock())
    add_customers(engine, "ann", "bob", consent=("sms",))
    everyone(engine)
    engine.create_from_definition(promotion_def("spring", channels=["sms"]))
    return engine


def sms_channel(provider: Provider, timeout_s: float = 2.0) -> HttpProviderChannel:
    return HttpProviderChannel(url=provider.url, channel="sms", timeout_s=timeout_s)


def test_a_provider_answering_503_gets_three_attempts_per_voucher_then_the_delivery_fails(
    tmp_path: Path,
) -> None:
    engine = sms_promotion(tmp_path)

    with http_provider(503) as provider:
        report = distributor(engine, {"sms": sms_channel(provider)}).send_promotion("spring")

    offers = published(engine, "spring")
    assert len(offers) == 2 and (report.published, report.delivered, report.failed) == (2, 0, 2)
    attempts = events(engine, EventType.DELIVERY_ATTEMPTED)
    for offer in offers:
        mine = [a for a in attempts if a.voucher_id == offer.voucher_id]
        assert [a.payload["attempt"] for a in mine] == [1, 2, 3]
        assert {a.payload["outcome"] for a in mine} == {"transient_failure"}
        assert all(a.payload["latency_ms"] > 0 and "503" in a.payload["error"] for a in mine)
        assert all(a.payload["provider"] == "http" for a in mine)
        keys = [key for body, key in provider.requests if body["message_id"] == offer.voucher_id]
        assert keys == [offer.voucher_id] * 3
        assert voucher(engine, offer.payload["code"]).holder_id == offer.customer_id
    failed = events(engine, EventType.DELIVERY_FAILED)
    assert sorted(f.voucher_id or "" for f in failed) == sorted(o.voucher_id or "" for o in offers)
    assert all(f.payload["attempts"] == 3 and "503" in f.payload["error"] for f in failed)
    assert events(engine, EventType.VOUCHER_DELIVERED) == []
    assert ledger_rows(engine, "SELECT DISTINCT status, attempts FROM deliveries") == [
        ("failed", 3)
    ]
    assert_clean(engine)


def test_a_provider_slower_than_the_channel_timeout_is_retried_like_a_503(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=("sms",))
    everyone(engine)
    engine.create_from_definition(promotion_def("spring", channels=["sms"]))

    with http_provider(200, delay_s=2.0) as provider:
        channel = sms_channel(provider, timeout_s=0.2)
        report = distributor(engine, {"sms": channel}).send_promotion("spring")

    assert report.failed == 1
    attempts = events(engine, EventType.DELIVERY_ATTEMPTED)
    assert [a.payload["outcome"] for a in attempts] == ["transient_failure"] * 3
    assert all("timed out" in a.payload["error"] for a in attempts)
    assert all(150 <= a.payload["latency_ms"] < 1500 for a in attempts)
    [failed] = events(engine, EventType.DELIVERY_FAILED)
    assert failed.payload["attempts"] == 3
    assert_clean(engine)


def test_once_the_provider_recovers_retry_deliveries_delivers_every_failed_voucher(
    tmp_path: Path,
) -> None:
    engine = sms_promotion(tmp_path)
    with http_provider(503) as provider:
        sender = distributor(engine, {"sms": sms_channel(provider)})
        sender.send_promotion("spring")
        provider.status = 200
        provider.requests.clear()

        [report] = sender.retry_deliveries()

    offers = published(engine, "spring")
    assert (report.delivered, report.failed) == (2, 0)
    delivered = events(engine, EventType.VOUCHER_DELIVERED)
    assert sorted(e.voucher_id or "" for e in delivered) == sorted(
        o.voucher_id or "" for o in offers
    )
    assert all(e.payload["attempts"] == 1 and e.payload["error"] is None for e in delivered)
    assert sorted(key for _, key in provider.requests) == sorted(o.voucher_id or "" for o in offers)
    codes = {o.voucher_id: o.payload["code"] for o in offers}
    assert all(codes[body["message_id"]] in body["body"] for body, _ in provider.requests)
    assert ledger_rows(engine, "SELECT DISTINCT status, attempts FROM deliveries") == [
        ("delivered", 4)
    ]
    assert sender.retry_deliveries() == []
    assert len(published(engine)) == 2  # re-sent, never re-published
    assert_clean(engine)


def test_an_autopilot_trigger_whose_delivery_failed_does_not_fire_again_within_its_cooldown(
    tmp_path: Path,
) -> None:
    clock = Clock()
    engine = engine_at(tmp_path, clock)
    add_customers(engine, "ann", consent=("sms",))
    place_order(engine, "ann", 2000)
    trigger = {"type": "spend_threshold", "amount": 1000, "cooldown_days": 30}
    engine.create_from_definition(autopilot_def("big-spender", trigger, channels=["sms"]))
    with http_provider(503) as provider:
        sender = distributor(engine, {"sms": sms_channel(provider)})
        [first] = sender.run_autopilot()
        assert (first.matched, first.published, first.failed) == (1, 1, 1)
        clock.advance(days=1)
        [while_down] = sender.run_autopilot()
        provider.status = 200
        clock.advance(days=1)
        sender.retry_deliveries()

        clock.advance(days=27)
        [within_cooldown] = sender.run_autopilot()

    assert while_down.matched == 0 and within_cooldown.matched == 0
    [offer] = published(engine)
    [failure] = events(engine, EventType.TRIGGER_FAILED)
    assert failure.payload["reason"] == "delivery_failed"
    [delivered] = events(engine, EventType.VOUCHER_DELIVERED)
    assert delivered.voucher_id == offer.voucher_id
    assert len(events(engine, EventType.TRIGGER_MATCHED)) == 1
    assert sender.pending_triggers() == []
    assert_clean(engine)


def test_a_failed_delivery_is_not_resent_over_a_channel_the_customer_has_since_opted_out_of(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=("sms",))
    everyone(engine)
    engine.create_from_definition(promotion_def("spring", channels=["sms"]))
    channels = recording_channels("sms")
    channels["sms"].failure = TransientDeliveryError("provider down")
    sender = distributor(engine, channels)
    sender.send_promotion("spring")
    engine.set_consent("ann", "sms", False, source="reply STOP")
    channels["sms"].failure = None

    sender.retry_deliveries()

    assert channels["sms"].sent == []
    assert events(engine, EventType.VOUCHER_DELIVERED) == []
    assert_clean(engine)


def test_retrying_without_an_adapter_for_one_channel_still_retries_the_other_campaigns(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", consent=("push",))
    add_customers(engine, "bob", consent=("email",))
    everyone(engine)
    engine.create_from_definition(promotion_def("a-push", channels=["push"]))
    engine.create_from_definition(promotion_def("b-email", channels=["email"]))
    down = recording_channels("email", "push")
    for channel in down.values():
        channel.failure = TransientDeliveryError("provider down")
    sender = distributor(engine, down)
    sender.send_promotion("a-push")
    sender.send_promotion("b-email")
    email_only = recording_channels("email")  # the push provider was removed from the config

    distributor(engine, email_only).retry_deliveries()

    assert [m.customer_id for m in email_only["email"].sent] == ["bob"]
    assert {e.customer_id for e in events(engine, EventType.VOUCHER_DELIVERED)} == {"bob"}
    assert_clean(engine)


# -- resume after an interrupted promotion -------------------------------------------------------
def test_a_promotion_interrupted_mid_batch_resumes_without_sending_anyone_a_second_voucher(
    tmp_path: Path,
) -> None:
    customers = [f"c{i:04d}" for i in range(1200)]
    engine = engine_at(tmp_path)
    for i, customer in enumerate(customers):
        add_customers(engine, customer, consent=() if i % 10 == 0 else ("email",))
    everyone(engine)
    engine.create_from_definition(promotion_def("big", control_share=0.1))
    outbox: list[Message] = []
    crashing = RecordingChannel("email", crash_on=[600], log=outbox)
    with pytest.raises(RuntimeError):
        distributor(engine, {"email": crashing}).send_promotion("big")
    decided = ledger_rows(engine, "SELECT count(*) FROM audience WHERE campaign_id = 'big'")
    recorded = {e.voucher_id for e in events(engine, EventType.VOUCHER_DELIVERED)}
    sent_unrecorded = {m.message_id for m in outbox} - recorded
    assert 500 <= decided[0][0] < len(customers)  # stopped in the second batch of 500
    assert sent_unrecorded  # messages that left before the crash but were never recorded
    working = RecordingChannel("email", log=outbox)

    report = distributor(engine, {"email": working}).send_promotion("big")

    audience = ledger_rows(
        engine, "SELECT customer_id, outcome, reason FROM audience WHERE campaign_id = 'big'"
    )
    assert sorted(row[0] for row in audience) == customers
    outcomes = {row[0]: (row[1], row[2]) for row in audience}
    for i, customer in enumerate(customers):
        if in_control_group("big", customer, 0.1):
            assert outcomes[customer] == ("held_out", None)
        elif i % 10 == 0:
            assert outcomes[customer] == ("skipped", "no_consent")
        else:
            assert outcomes[customer] == ("published", None)
    offers = published(engine, "big")
    per_customer = Counter(e.customer_id for e in offers)
    assert set(per_customer.values()) == {1}
    assert set(per_customer) == {
        c for c, (outcome, _) in outcomes.items() if outcome == "published"
    }
    vouchers = {e.voucher_id: e.payload["code"] for e in offers}
    delivered = Counter(e.voucher_id for e in events(engine, EventType.VOUCHER_DELIVERED))
    # Every published voucher is delivered exactly once as far as the ledger knows.
    assert delivered == Counter(list(vouchers))
    assert events(engine, EventType.DELIVERY_FAILED) == []
    sends = Counter(m.message_id for m in outbox)
    assert set(sends) == set(vouchers)
    assert {v for v, n in sends.items() if n > 1} == sent_unrecorded
    assert max(sends.values()) == 2
    assert all(vouchers[m.message_id] == m.voucher_code for m in outbox)
    assert report.matched == len(customers)
    assert_clean(engine)


def test_resuming_a_promotion_that_already_finished_sends_nothing(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    add_customers(engine, "ann", "bob")
    everyone(engine)
    engine.create_from_definition(promotion_def("spring"))
    channels = recording_channels("email")
    sender = distributor(engine, channels)
    sender.send_promotion("spring")

    again = sender.send_promotion("spring")

    assert (again.published, again.delivered, again.held_out, again.skipped) == (0, 0, 0, {})
    assert len(channels["email"].sent) == 2 and len(published(engine)) == 2
    assert_clean(engine)


def test_delivery_attempts_are_dated_on_the_engines_clock_like_every_other_event(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path, Clock())
    add_customers(engine, "ann")
    everyone(engine)
    engine.create_from_definition(promotion_def("spring"))

    distributor(engine).send_promotion("spring")

    [offer] = published(engine)
    [attempt] = events(engine, EventType.DELIVERY_ATTEMPTED)
    [delivered] = events(engine, EventType.VOUCHER_DELIVERED)
    # The ledger's timeline: published, then attempted, then delivered, on one clock.
    assert offer.occurred_at <= attempt.occurred_at <= delivered.occurred_at
    assert_clean(engine)
