"""Delivery channels against real local servers: SMTP (aiosmtpd) and HTTP on 127.0.0.1.

Every server listens on loopback on a free port and is stopped by the test that started it.
Back-off waits go through an injected sleep, so retries cost no wall time; only the timeout
test waits for real (a few short channel timeouts).
"""

from __future__ import annotations

import email
import email.policy
import json
import random
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from redemption_core.distribution.channels import (
    Channel,
    DeliveryReport,
    FileSinkChannel,
    HttpProviderChannel,
    Message,
    PermanentDeliveryError,
    SmtpChannel,
    TransientDeliveryError,
    send_with_retry,
)
from redemption_core.distribution.delivery_config import (
    default_channels,
    load_channels,
    load_channels_from_file,
)
from redemption_core.domain.errors import InvalidInput

CODE = "SPRING-7Q2K"
EMAIL = "alice@example.com"
PHONE = "+4915112345678"
FAST_TIMEOUT_S = 0.3


# -- builders -----------------------------------------------------------------------------------
def message(**changes: Any) -> Message:
    base = Message(
        customer_id="alice",
        channel="email",
        address=EMAIL,
        campaign_id="spring",
        voucher_code=CODE,
        subject="Your spring voucher",
        body=f"Hello Alice, here is 10 EUR off your next order: {CODE}",
        message_id="msg_0001",
    )
    return replace(base, **changes)


def sms(**changes: Any) -> Message:
    return message(**({"channel": "sms", "address": PHONE} | changes))


class NoSleep:
    """Records the back-off instead of waiting it."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def retry(channel: Channel, msg: Message, **options: Any) -> tuple[DeliveryReport, NoSleep]:
    sleep = NoSleep()
    report = send_with_retry(channel, msg, sleep=sleep, rng=random.Random(1), **options)
    return report, sleep


def free_port() -> int:
    """A port nothing listens on (the OS just handed it out and it was closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- a local SMTP server ------------------------------------------------------------------------
@dataclass
class MailRecorder:
    """An aiosmtpd handler that keeps what it accepted and can answer with errors first."""

    data_replies: list[str] = field(default_factory=list)  # answers to DATA before "250"
    rcpt_reply: str | None = None
    accepted: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.accepted.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=(data.login, data.password) == (b"promo", b"s3cret"))


@contextmanager
def smtp_server(recorder: MailRecorder, **smtp_options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp_channel(port: int, **changes: Any) -> SmtpChannel:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "from_address": "vouchers@shop.example",
        "timeout_s": 2.0,
    }
    return SmtpChannel(**(options | changes))


def parsed(envelope: Envelope) -> email.message.EmailMessage:
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(mail, email.message.EmailMessage)
    return mail


# -- a local HTTP provider ----------------------------------------------------------------------
@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class HttpReceiver:
    url: str
    requests: list[Received]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is what the timeout test is about


@contextmanager
def http_receiver(
    *statuses: int, delay_s: float = 0.0, headers: dict[str, str] | None = None
) -> Iterator[HttpReceiver]:
    """Answers POSTs with `statuses` in turn (the last one repeats), after `delay_s`."""
    requests: list[Received] = []
    lock = threading.Lock()
    release = threading.Event()  # wakes sleeping handlers when the test is over

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                requests.append(Received(body, dict(self.headers.items())))
                status = statuses[min(len(requests), len(statuses)) - 1]
            if delay_s:
                release.wait(delay_s)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() waits up to one interval for the serving loop.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield HttpReceiver(f"http://127.0.0.1:{server.server_address[1]}/v1/messages", requests)
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib would send even 127.0.0.1 through an http_proxy set in a CI environment.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def http_channel(url: str, **changes: Any) -> HttpProviderChannel:
    options: dict[str, Any] = {"url": url, "channel": "sms", "timeout_s": FAST_TIMEOUT_S}
    return HttpProviderChannel(**(options | changes))


# -- SMTP ---------------------------------------------------------------------------------------
def test_email_reaches_the_smtp_server_with_recipient_subject_code_and_message_id() -> None:
    recorder = MailRecorder()

    with smtp_server(recorder) as port:
        report, _ = retry(smtp_channel(port), message())

    assert report.delivered and len(report.attempts) == 1
    [envelope] = recorder.accepted
    assert envelope.mail_from == "vouchers@shop.example"
    assert envelope.rcpt_tos == [EMAIL]
    mail = parsed(envelope)
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "Your spring voucher"
    assert mail["Message-ID"] == "<msg_0001@shop.example>"
    assert CODE in mail.get_content()


def test_a_template_without_the_code_still_shows_the_code() -> None:
    recorder = MailRecorder()

    with smtp_server(recorder) as port:
        retry(smtp_channel(port), message(body="Hello Alice, a voucher for you."))

    assert f"Your voucher code: {CODE}" in parsed(recorder.accepted[0]).get_content()


def test_smtp_451_is_retried_and_the_message_then_delivered() -> None:
    recorder = MailRecorder(data_replies=["451 4.3.0 Try again later"])

    with smtp_server(recorder) as port:
        report, sleep = retry(smtp_channel(port), message())

    assert report.delivered
    assert [a.outcome for a in report.attempts] == ["transient_failure", "delivered"]
    assert report.attempts[0].error is not None and "SMTP 451" in report.attempts[0].error
    assert len(sleep.delays) == 1 and len(recorder.accepted) == 1
    assert all(a.latency_ms > 0 for a in report.attempts)


def test_smtp_550_fails_at_once_without_naming_the_address() -> None:
    recorder = MailRecorder(rcpt_reply="550 5.1.1 <alice@example.com>: no such user")

    with smtp_server(recorder) as port:
        report, sleep = retry(smtp_channel(port), message())

    assert report.outcome == "failed"
    assert [a.outcome for a in report.attempts] == ["permanent_failure"]
    assert report.error is not None and "SMTP 550" in report.error
    assert EMAIL not in json.dumps(report.to_payload())
    assert sleep.delays == [] and recorder.accepted == []


def test_smtp_login_uses_the_credentials_from_the_named_environment_variables() -> None:
    recorder = MailRecorder()
    environ = {"PROMO_SMTP_USER": "promo", "PROMO_SMTP_PASSWORD": "s3cret"}

    with smtp_server(recorder, authenticator=recorder.authenticate, auth_require_tls=False) as port:
        config = {
            "email": {
                "provider": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "from": "vouchers@shop.example",
                "username_env": "PROMO_SMTP_USER",
                "password_env": "PROMO_SMTP_PASSWORD",
                "timeout_s": 2,
            }
        }
        channel = load_channels(config, environ=environ)["email"]
        report, _ = retry(channel, message())

    assert report.delivered
    assert recorder.logins == [(b"promo", b"s3cret")]
    assert "s3cret" not in repr(channel)


def test_smtp_with_starttls_encrypts_before_logging_in(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a throwaway certificate")
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    recorder = MailRecorder()

    with smtp_server(
        recorder,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=recorder.authenticate,
    ) as port:
        channel = smtp_channel(
            port,
            starttls=True,
            username="promo",
            password="s3cret",
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
        report, _ = retry(channel, message())

    assert report.delivered, report.error
    assert recorder.logins == [(b"promo", b"s3cret")]
    assert len(recorder.accepted) == 1


def test_starttls_asked_of_a_server_without_it_is_a_permanent_failure() -> None:
    recorder = MailRecorder()

    with smtp_server(recorder) as port:
        report, _ = retry(smtp_channel(port, starttls=True), message())

    assert [a.outcome for a in report.attempts] == ["permanent_failure"]
    assert recorder.accepted == []


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


# -- HTTP providers -----------------------------------------------------------------------------
def test_sms_is_posted_as_json_with_the_bearer_token_from_the_environment() -> None:
    config = {"sms": {"provider": "http", "token_env": "PROMO_SMS_TOKEN", "timeout_s": 2}}

    with http_receiver(202) as receiver:
        config["sms"]["url"] = receiver.url
        channel = load_channels(config, environ={"PROMO_SMS_TOKEN": "tok-123"})["sms"]
        report, _ = retry(channel, sms())

    assert report.delivered and report.provider == "http"
    [request] = receiver.requests
    assert request.body == {
        "message_id": "msg_0001",
        "to": PHONE,
        "channel": "sms",
        "body": f"Hello Alice, here is 10 EUR off your next order: {CODE}",
        "campaign_id": "spring",
    }
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Idempotency-Key"] == "msg_0001"
    assert "tok-123" not in repr(channel)


def test_two_503s_then_200_is_delivered_on_the_third_attempt() -> None:
    with http_receiver(503, 503, 200) as receiver:
        report, sleep = retry(http_channel(receiver.url), sms())

    assert report.delivered
    assert [a.number for a in report.attempts] == [1, 2, 3]
    assert [a.outcome for a in report.attempts] == [
        "transient_failure",
        "transient_failure",
        "delivered",
    ]
    assert report.error is not None and report.error.startswith("HTTP 503")
    assert all(a.latency_ms > 0 for a in report.attempts)
    assert report.total_latency_ms == pytest.approx(sum(a.latency_ms for a in report.attempts))
    assert len(sleep.delays) == 2 and len(receiver.requests) == 3


def test_a_provider_that_never_answers_in_time_is_tried_max_attempts_times() -> None:
    with http_receiver(200, delay_s=5.0) as receiver:
        report, sleep = retry(http_channel(receiver.url), sms(), max_attempts=3)

    assert report.outcome == "failed"
    assert [a.outcome for a in report.attempts] == ["transient_failure"] * 3
    assert report.error is not None and "timed out" in report.error
    assert all(a.latency_ms >= FAST_TIMEOUT_S * 1000 * 0.9 for a in report.attempts)
    assert len(sleep.delays) == 2 and len(receiver.requests) == 3


def test_http_400_is_permanent_and_tried_once() -> None:
    with http_receiver(400) as receiver:
        report, sleep = retry(http_channel(receiver.url), sms())

    assert [a.outcome for a in report.attempts] == ["permanent_failure"]
    assert report.error is not None and report.error.startswith("HTTP 400")
    assert sleep.delays == []


@pytest.mark.parametrize("status", [408, 429])
def test_http_408_and_429_are_worth_retrying(status: int) -> None:
    with http_receiver(status, 200) as receiver:
        report, _ = retry(http_channel(receiver.url), sms())

    assert report.delivered and len(report.attempts) == 2


def test_a_retry_after_header_is_honoured_up_to_the_maximum_delay() -> None:
    with http_receiver(429, 200, headers={"Retry-After": "2"}) as receiver:
        report, sleep = retry(http_channel(receiver.url), sms(), base_delay_s=0.01)

    assert report.delivered
    assert sleep.delays == [2.0]
    assert report.attempts[1].backoff_ms == pytest.approx(2000.0)


def test_a_redirect_is_not_followed_because_the_post_body_would_be_lost() -> None:
    with http_receiver(302, headers={"Location": "/elsewhere"}) as receiver:
        report, _ = retry(http_channel(receiver.url), sms())

    assert [a.outcome for a in report.attempts] == ["permanent_failure"]
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("kind", ["http", "smtp"])
def test_connection_refused_is_retried_and_then_reported_failed(kind: str) -> None:
    port = free_port()
    channel: Channel
    if kind == "http":
        channel, msg = http_channel(f"http://127.0.0.1:{port}/send"), sms()
    else:
        channel, msg = smtp_channel(port), message()

    report, sleep = retry(channel, msg, max_attempts=3)

    assert report.outcome == "failed"
    assert [a.outcome for a in report.attempts] == ["transient_failure"] * 3
    assert report.error is not None and "connection refused" in report.error
    assert len(sleep.delays) == 2


@pytest.mark.parametrize(
    "msg",
    [
        message(address="alice at example.com"),
        message(address="alice@example.com, eve@example.com"),
        sms(address="015112345678"),
        message(channel="push", address="token with spaces"),
    ],
    ids=["email-without-at", "two-recipients", "phone-not-e164", "push-token-with-spaces"],
)
def test_a_malformed_address_fails_permanently_before_anything_is_sent(
    msg: Message, tmp_path: Path
) -> None:
    channel = FileSinkChannel(tmp_path / "out.jsonl", channel=msg.channel)

    report, _ = retry(channel, msg)

    assert [a.outcome for a in report.attempts] == ["permanent_failure"]
    assert report.error is not None and report.error.startswith("malformed")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_line_break_in_the_subject_cannot_inject_headers() -> None:
    channel = smtp_channel(free_port())

    with pytest.raises(PermanentDeliveryError, match="malformed email"):
        channel.send(message(subject="Hi\r\nBcc: everyone@example.com"))


# -- back-off -----------------------------------------------------------------------------------
class AlwaysBusy(Channel):
    def __init__(self) -> None:
        self.name, self.channel, self.calls = "busy", "email", 0

    def send(self, message: Message) -> None:
        self.calls += 1
        raise TransientDeliveryError("HTTP 503 Service Unavailable")


class TopOfRange(random.Random):
    """Jitter that always picks the ceiling, so the ceilings themselves can be read."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceilings_double_per_attempt_and_stop_at_the_maximum() -> None:
    sleep = NoSleep()

    report = send_with_retry(
        AlwaysBusy(),
        message(),
        max_attempts=7,
        base_delay_s=0.1,
        max_delay_s=1.0,
        sleep=sleep,
        rng=TopOfRange(),
    )

    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert len(report.attempts) == 7 and report.outcome == "failed"


def test_backoff_is_full_jitter_within_the_ceilings_and_repeatable_with_a_seed() -> None:
    sleep = NoSleep()
    ceilings = [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    seeded = random.Random(42)
    expected = [seeded.uniform(0, ceiling) for ceiling in ceilings]

    report = send_with_retry(
        AlwaysBusy(), message(), max_attempts=9, sleep=sleep, rng=random.Random(42)
    )

    assert sleep.delays == expected
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleep.delays, ceilings, strict=True))
    assert [a.backoff_ms for a in report.attempts] == [0.0] + [d * 1000 for d in expected]


def test_one_attempt_means_no_retry_and_no_wait() -> None:
    channel, sleep = AlwaysBusy(), NoSleep()

    report = send_with_retry(channel, message(), max_attempts=1, sleep=sleep)

    assert channel.calls == 1 and sleep.delays == []
    assert report.error == "HTTP 503 Service Unavailable"


# -- file sink ----------------------------------------------------------------------------------
def test_file_sink_writes_one_json_line_per_message_from_four_threads_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox" / "push.jsonl"
    sink = FileSinkChannel(path, channel="push")
    start = threading.Barrier(4)

    def send_many(worker: int) -> None:
        start.wait()
        for i in range(250):
            sink.send(message(channel="push", address=f"tok-{worker}", message_id=f"m{worker}-{i}"))

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()

    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 1000
    assert len({r["message_id"] for r in records}) == 1000
    assert {r["voucher_code"] for r in records} == {CODE}
    assert records[0]["channel"] == "push" and records[0]["campaign_id"] == "spring"


def test_batch_flushing_file_sink_hands_lines_over_on_flush_and_reopens_after_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "email.jsonl"
    sink = FileSinkChannel(path, channel="email", flush="batch")

    sink.send(message(message_id="m1"))
    sink.flush()
    lines_after_flush = path.read_text().splitlines()
    sink.close()
    sink.send(message(message_id="m2"))
    sink.close()

    assert len(lines_after_flush) == 1
    assert [json.loads(line)["message_id"] for line in path.read_text().splitlines()] == [
        "m1",
        "m2",
    ]


def test_a_message_for_another_channel_is_a_bug_not_a_delivery_failure(tmp_path: Path) -> None:
    sink = FileSinkChannel(tmp_path / "sms.jsonl", channel="sms")

    with pytest.raises(ValueError, match="email message"):
        sink.send(message())


def test_a_message_repr_shows_neither_address_nor_code() -> None:
    text = repr(message())

    assert EMAIL not in text and CODE not in text


# -- configuration ------------------------------------------------------------------------------
def test_configuration_builds_one_channel_per_configured_kind(tmp_path: Path) -> None:
    config = {
        "email": {"provider": "smtp", "host": "smtp.shop.example", "port": 587,
                  "starttls": True, "from": "vouchers@shop.example"},
        "sms": {"provider": "http", "url": "https://sms.example/v1", "name": "twilio"},
        "push": {"provider": "file", "path": "outbox/push.jsonl", "flush": "batch"},
    }  # fmt: skip

    channels = load_channels(config, environ={}, base_dir=tmp_path)

    assert isinstance(channels["email"], SmtpChannel) and channels["email"].port == 587
    assert isinstance(channels["sms"], HttpProviderChannel) and channels["sms"].name == "twilio"
    push = channels["push"]
    assert isinstance(push, FileSinkChannel)
    assert push.path == tmp_path / "outbox" / "push.jsonl" and push.flush_policy == "batch"


@pytest.mark.parametrize("key", ["password", "token", "username", "api_key"])
def test_a_literal_credential_in_the_configuration_is_refused(key: str) -> None:
    config = {"email": {"provider": "smtp", "host": "mail.example", "from": "a@shop.example"}}
    config["email"][key] = "hunter2"

    with pytest.raises(InvalidInput) as refused:
        load_channels(config, environ={})

    assert refused.value.field == f"delivery.email.{key}"
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"sms": {"provider": "http"}}, "delivery.sms.url"),
        ({"email": {"provider": "smtp", "from": "a@shop.example"}}, "delivery.email.host"),
        ({"email": {"provider": "smtp", "host": "mail.example"}}, "delivery.email.from"),
        ({"push": {"provider": "file"}}, "delivery.push.path"),
        ({"push": {"provider": "http", "url": "file:///etc/passwd"}}, "delivery.push.url"),
        ({"push": {"provider": "http", "url": "https://u:pw@x.example"}}, "delivery.push.url"),
        ({"push": {"provider": "http", "url": "https://x.example:99999"}}, "delivery.push.url"),
        ({"email": {"provider": "http", "url": "https://x.example"}}, "delivery.email.provider"),
        ({"sms": {"provider": "http", "url": "https://x.example", "timeout_s": 0}},
         "delivery.sms.timeout_s"),
        ({"sms": {"provider": "http", "url": "https://x.example", "retries": 3}},
         "delivery.sms.retries"),
        ({"fax": {"provider": "file", "path": "fax.jsonl"}}, "delivery.fax"),
    ],
)  # fmt: skip
def test_a_bad_configuration_names_the_field_to_fix(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        load_channels(config, environ={})

    assert refused.value.field == field


def test_an_unset_credential_variable_is_named_in_the_error() -> None:
    config = {
        "sms": {"provider": "http", "url": "https://sms.example", "token_env": "PROMO_SMS_TOKEN"}
    }

    with pytest.raises(InvalidInput, match="PROMO_SMS_TOKEN is not set") as refused:
        load_channels(config, environ={})

    assert refused.value.field == "delivery.sms.token_env"


def test_a_token_is_never_configured_to_travel_over_plain_http_to_another_host() -> None:
    config = {"sms": {"provider": "http", "url": "http://sms.example", "token_env": "T"}}

    with pytest.raises(InvalidInput, match="https") as refused:
        load_channels(config, environ={"T": "tok"})

    assert refused.value.field == "delivery.sms.url"


def test_channels_load_from_a_yaml_file_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text(
        "delivery:\n"
        "  sms: {provider: http, url: 'https://sms.example/v1', token_env: PROMO_SMS_TOKEN}\n"
        "  push: {provider: file, path: sink/push.jsonl}\n"
    )

    channels = load_channels_from_file(path, environ={"PROMO_SMS_TOKEN": "tok"})

    assert sorted(channels) == ["push", "sms"]
    assert isinstance(channels["push"], FileSinkChannel)
    assert channels["push"].path == tmp_path / "sink" / "push.jsonl"


def test_a_broken_configuration_file_is_refused_as_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "delivery.json"
    path.write_text('{"sms": ')

    with pytest.raises(InvalidInput) as refused:
        load_channels_from_file(path)

    assert refused.value.field == "file"


def test_the_demo_default_sends_every_channel_to_its_own_file(tmp_path: Path) -> None:
    channels = default_channels(tmp_path)

    report, _ = retry(channels["sms"], sms())
    for channel in channels.values():
        channel.close()

    assert sorted(channels) == ["email", "push", "sms"]
    assert report.delivered and report.provider == "file"
    [line] = (tmp_path / "sms.jsonl").read_text().splitlines()
    assert json.loads(line)["to"] == PHONE
