"""Delivery of published vouchers to customers over email, SMS or push.

Channels are plain adapters: they send one message and either return (delivered) or raise
TransientDeliveryError (worth retrying: timeouts, refused connections, HTTP 5xx/408/429,
SMTP 4xx) or PermanentDeliveryError (retrying cannot help: HTTP 4xx, SMTP 5xx, a malformed
address). `send_with_retry` turns that into a DeliveryReport the engine records in the
ledger. Nothing here touches the ledger, and nothing here puts the customer's address into a
report: the address is resolved at send time and is not the ledger's business.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self
from urllib.parse import urlsplit

import orjson

from redemption_core.domain.errors import InvalidInput, PromoError
from redemption_core.domain.parsing import iso

ChannelKind = Literal["email", "sms", "push"]
AttemptOutcome = Literal["delivered", "transient_failure", "permanent_failure"]
ReportOutcome = Literal["delivered", "failed"]
FlushPolicy = Literal["message", "batch"]

CHANNEL_KINDS: tuple[ChannelKind, ...] = ("email", "sms", "push")
# The id becomes the left part of an RFC 5322 Message-ID, so it must be a dot-atom; ids made
# by events.new_id("msg") fit.
MESSAGE_ID_PATTERN = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*")
MAX_MESSAGE_ID_LENGTH = 128
# Deliberately simpler than RFC 5321: it refuses what would break the envelope or a header
# (spaces, brackets, commas, several @), and leaves the rest to the receiving server.
EMAIL_PATTERN = re.compile(
    r"[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\.]+(?:\.[^@\s<>()\[\],;:\"\\.]+)*"
)
PHONE_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164
PUSH_TOKEN_PATTERN = re.compile(r"[!-~]{1,4096}")  # printable ASCII, no spaces
MAX_ERROR_LENGTH = 300
MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryError(PromoError):
    """A channel could not deliver a message. `str(error)` never contains the address."""


class TransientDeliveryError(DeliveryError):
    """The same message may well go through later: a timeout, a busy or restarting provider."""

    def __init__(self, problem: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after_s = retry_after_s  # the provider's own Retry-After, if it sent one


class PermanentDeliveryError(DeliveryError):
    """Sending the same message again would fail the same way: bad address, refused request."""


@dataclass(frozen=True, slots=True)
class Message:
    """One voucher for one customer over one channel.

    `message_id` is the idempotency key the providers see (Message-ID, Idempotency-Key): the
    engine must send the same id again when it retries the same delivery, even after a
    restart, so that a provider that already took the first copy can drop the second.
    """

    customer_id: str
    channel: ChannelKind
    address: str = field(repr=False)  # personal data: kept out of logs and reprs
    campaign_id: str
    voucher_code: str = field(repr=False)
    subject: str
    body: str = field(repr=False)
    message_id: str

    def __post_init__(self) -> None:
        if self.channel not in CHANNEL_KINDS:
            raise InvalidInput("message.channel", f"must be one of {', '.join(CHANNEL_KINDS)}")
        if len(self.message_id) > MAX_MESSAGE_ID_LENGTH or not MESSAGE_ID_PATTERN.fullmatch(
            self.message_id
        ):
            raise InvalidInput(
                "message.message_id", "must be letters, digits, _ + - and single dots"
            )
        if not self.voucher_code:
            raise InvalidInput("message.voucher_code", "must not be empty")


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int  # 1 for the first try
    started_at: datetime
    latency_ms: float  # time spent in the channel's send, back-off waits excluded
    outcome: AttemptOutcome
    error: str | None = None
    backoff_ms: float = 0.0  # how long send_with_retry waited before this attempt


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    channel: ChannelKind
    provider: str
    outcome: ReportOutcome
    attempts: tuple[Attempt, ...]
    total_latency_ms: float  # sum of the attempts' latencies; waits are in each backoff_ms
    error: str | None = None  # the last failure's, also when a later attempt succeeded

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready form for a ledger event's payload (it holds no address)."""
        return {
            "channel": self.channel,
            "provider": self.provider,
            "outcome": self.outcome,
            "total_latency_ms": round(self.total_latency_ms, 3),
            "error": self.error,
            "attempts": [
                {
                    "number": a.number,
                    "started_at": iso(a.started_at),
                    "latency_ms": round(a.latency_ms, 3),
                    "backoff_ms": round(a.backoff_ms, 3),
                    "outcome": a.outcome,
                    "error": a.error,
                }
                for a in self.attempts
            ],
        }


class Channel(ABC):
    """A port: one way to reach a customer. Adapters must be safe to call from several threads."""

    name: str  # the provider, as recorded in the report ("smtp", "twilio", "file", ...)
    channel: ChannelKind

    @abstractmethod
    def send(self, message: Message) -> None:
        """Deliver or raise TransientDeliveryError / PermanentDeliveryError."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most channels hold nothing open
        """Release what the channel keeps open; most keep nothing between messages."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check(self, message: Message) -> None:
        # A message routed to the wrong channel is a bug in the caller, not a delivery result.
        if message.channel != self.channel:
            raise ValueError(f"a {message.channel} message was given to the {self.channel} channel")
        check_address(message.channel, message.address)


def check_address(channel: ChannelKind, address: str) -> None:
    """Refuse an address no provider could deliver to, before anything is sent."""
    pattern = {"email": EMAIL_PATTERN, "sms": PHONE_PATTERN, "push": PUSH_TOKEN_PATTERN}[channel]
    if len(address) > 4096 or not pattern.fullmatch(address):
        expected = {
            "email": "an email address",
            "sms": "an E.164 phone number like +4915112345678",
            "push": "a push token of printable characters",
        }[channel]
        raise PermanentDeliveryError(f"malformed {channel} address: expected {expected}")


def body_with_code(message: Message) -> str:
    """The text the customer reads; it always shows the code, whatever the template forgot."""
    if message.voucher_code in message.body:
        return message.body
    return f"{message.body.rstrip()}\n\nYour voucher code: {message.voucher_code}\n"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def _network_failure(error: BaseException, where: str, timeout_s: float) -> DeliveryError:
    """Classify a socket-level failure; everything but a bad certificate may heal by itself."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentDeliveryError(f"TLS certificate of {where} refused: {error.verify_message}")
    if isinstance(error, TimeoutError):
        return TransientDeliveryError(f"timed out after {timeout_s:g} s talking to {where}")
    if isinstance(error, ConnectionRefusedError):
        return TransientDeliveryError(f"connection refused by {where}")
    return TransientDeliveryError(_clip(f"network error with {where}: {error!r}"))


# -- SMTP ---------------------------------------------------------------------------------------
def _smtp_failure(code: int, reply: bytes | str, where: str) -> DeliveryError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    problem = _clip(f"SMTP {code} from {where}: {text}")
    # 5xx is the server's final word; 4xx and unparseable replies may clear up on a retry.
    if 500 <= code < 600:
        return PermanentDeliveryError(problem)
    return TransientDeliveryError(problem)


class SmtpChannel(Channel):
    """Email over SMTP, one connection per message (providers' relays expect short sessions)."""

    def __init__(
        self,
        *,
        host: str,
        from_address: str,
        port: int = 25,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        name: str = "smtp",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.name = name
        self.channel = "email"
        self.host = host
        self.port = port
        self.from_address = from_address
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        # Built once: loading the system's CA certificates costs more than a short SMTP session.
        self._ssl_context = ssl_context or (ssl.create_default_context() if starttls else None)
        self._domain = from_address.rpartition("@")[2] or "promoledger.invalid"

    def __repr__(self) -> str:  # the password stays out of logs
        return (
            f"SmtpChannel(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"starttls={self.starttls}, username={self.username!r})"
        )

    def build_email(self, message: Message) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.from_address
        email["To"] = message.address
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = f"<{message.message_id}@{self._domain}>"
        email.set_content(body_with_code(message))
        return email

    def send(self, message: Message) -> None:
        self._check(message)
        try:
            email = self.build_email(message)
        except ValueError as error:  # e.g. a line break in the subject (header injection)
            raise PermanentDeliveryError(_clip(f"malformed email: {error}")) from None
        self.transmit(email, [message.address])

    def transmit(self, email: EmailMessage, recipients: Sequence[str]) -> None:
        """Hand a finished email to the server for `recipients` (a voucher's customer, or the
        operators a pipeline notice goes to); raises Transient- or PermanentDeliveryError."""
        where = f"{self.host}:{self.port}"
        smtp: smtplib.SMTP | None = None
        try:
            # Connecting in the constructor also tells smtplib the host name that STARTTLS
            # checks the certificate against.
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            if self.starttls:
                smtp.ehlo()
                # Never fall back to plain text when TLS was asked for.
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo()
            if self.username is not None and self._password is not None:
                smtp.login(self.username, self._password)
            smtp.send_message(email, from_addr=self.from_address, to_addrs=list(recipients))
        except smtplib.SMTPRecipientsRefused as error:
            # The exception holds the address; only its code and reply may leave this method.
            code, reply = next(iter(error.recipients.values()))
            raise _smtp_failure(code, reply, where) from None
        except smtplib.SMTPResponseException as error:
            raise _smtp_failure(error.smtp_code, error.smtp_error, where) from None
        except smtplib.SMTPServerDisconnected as error:
            _close(smtp)
            raise TransientDeliveryError(_clip(f"{where} closed the connection: {error}")) from None
        except smtplib.SMTPException as error:  # STARTTLS or AUTH not offered: configuration
            raise PermanentDeliveryError(_clip(f"SMTP with {where}: {error}")) from None
        except OSError as error:
            _close(smtp)  # the connection is unusable: do not wait for a QUIT reply too
            raise _network_failure(error, where, self.timeout_s) from None
        finally:
            _quit_quietly(smtp)


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _quit_quietly(smtp: smtplib.SMTP | None) -> None:
    # The message was handed over (or refused) before QUIT: a failing QUIT must not turn a
    # delivered message into a failure that would be retried and arrive twice.
    if smtp is None or smtp.sock is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# -- HTTP providers (SMS, push) -----------------------------------------------------------------
class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would follow a 301/302 to a POST by sending a GET without the body: the message
    # would be lost while the send looked successful. A redirect is a configuration error.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _http_failure(status: int, reason: str, retry_after_s: float | None) -> DeliveryError:
    problem = _clip(f"HTTP {status} {reason}".rstrip())
    if status in (408, 429) or status >= 500:
        return TransientDeliveryError(problem, retry_after_s=retry_after_s)
    return PermanentDeliveryError(problem)


class HttpProviderChannel(Channel):
    """SMS or push through a provider's HTTP API: one JSON POST per message, 2xx = delivered.

    The body is {message_id, to, channel, body, campaign_id}; the message id also goes in an
    Idempotency-Key header, which most providers honour to drop a retried duplicate.
    """

    def __init__(
        self,
        *,
        url: str,
        channel: ChannelKind,
        token: str | None = None,
        timeout_s: float = 5.0,
        name: str = "http",
    ) -> None:
        parts = urlsplit(url)
        # urllib also opens file:// and ftp:// URLs; a provider URL must not be one of those.
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host")
        if parts.username or parts.password:  # it would show in reprs and error messages
            raise ValueError("credentials in the URL are refused: pass a token")
        self.name = name
        self.channel = channel
        self.url = url
        self._token = token
        self.timeout_s = timeout_s
        self._where = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def __repr__(self) -> str:  # the token stays out of logs
        return (
            f"HttpProviderChannel(name={self.name!r}, channel={self.channel!r}, url={self.url!r})"
        )

    def send(self, message: Message) -> None:
        self._check(message)
        payload = {
            "message_id": message.message_id,
            "to": message.address,
            "channel": message.channel,
            "body": body_with_code(message),
            "campaign_id": message.campaign_id,
        }
        self.post(payload, idempotency_key=message.message_id)

    def post(self, payload: Mapping[str, Any], *, idempotency_key: str) -> None:
        """POST `payload` as JSON (a voucher message, or a pipeline notice to a webhook);
        2xx = delivered, otherwise Transient- or PermanentDeliveryError."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": "promoledger-delivery",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(
            self.url, data=orjson.dumps(payload), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read(MAX_RESPONSE_BYTES)  # drain: the provider sees a complete exchange
        except urllib.error.HTTPError as error:
            # Provider bodies may echo the phone number or token: only status and reason go on.
            retry_after = _retry_after(error.headers.get("Retry-After") if error.headers else None)
            error.close()
            raise _http_failure(error.code, str(error.reason or ""), retry_after) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, BaseException):
                raise _network_failure(reason, self._where, self.timeout_s) from None
            raise TransientDeliveryError(_clip(f"{self._where}: {reason}")) from None
        except http.client.HTTPException as error:  # a garbled or cut-off response
            raise TransientDeliveryError(
                _clip(f"bad response from {self._where}: {error!r}")
            ) from None
        except OSError as error:  # a timeout while reading the response is not wrapped
            raise _network_failure(error, self._where, self.timeout_s) from None


# -- file sink (demo, benchmarks) ---------------------------------------------------------------
class FileSinkChannel(Channel):
    """Appends one JSON line per message to a file: an outbox for the demo and benchmarks.

    The file stays open between messages. With flush="message" every line reaches the OS as
    soon as send returns; with flush="batch" lines are buffered until flush() or close(),
    which is much faster but loses the buffer if the process dies. One lock serialises
    writers, so lines never interleave between threads; several processes on one file are
    safe only with flush="message" (each line is then one append).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        channel: ChannelKind,
        flush: FlushPolicy = "message",
        name: str = "file",
    ) -> None:
        if flush not in ("message", "batch"):
            raise ValueError(f"flush must be 'message' or 'batch', got {flush!r}")
        self.name = name
        self.channel = channel
        self.path = Path(path)
        self.flush_policy = flush
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"FileSinkChannel(path={str(self.path)!r}, channel={self.channel!r})"

    def send(self, message: Message) -> None:
        self._check(message)
        line = orjson.dumps(
            {
                "message_id": message.message_id,
                "customer_id": message.customer_id,
                "channel": message.channel,
                "to": message.address,
                "campaign_id": message.campaign_id,
                "voucher_code": message.voucher_code,
                "subject": message.subject,
                "body": body_with_code(message),
                "written_at": datetime.now(UTC),
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        with self._lock:
            try:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self.path.open("ab")
                self._file.write(line)
                if self.flush_policy == "message":
                    self._file.flush()
            except OSError as error:  # a full disk may be cleared; the next attempt reopens
                self._discard()
                raise TransientDeliveryError(_clip(f"cannot write {self.path}: {error}")) from None

    def flush(self) -> None:
        """End of a batch: hand the buffered lines to the OS."""
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()  # flushes first
                finally:
                    self._file = None

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


# -- retries ------------------------------------------------------------------------------------
_JITTER = random.Random()  # not a secret: it only spreads retries in time


def _utc_now() -> datetime:
    return datetime.now(UTC)


def backoff_delay(
    attempt: int, *, base_delay_s: float, max_delay_s: float, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt `attempt`: "full jitter", uniform in [0, ceiling].

    The ceiling doubles per attempt up to max_delay_s. Full jitter (rather than a fixed
    exponential delay) keeps many senders that failed together from retrying together.
    """
    ceiling = min(max_delay_s, base_delay_s * 2.0 ** min(attempt - 1, 60))
    return rng.uniform(0.0, ceiling)


def _redacted(error: DeliveryError, message: Message) -> str:
    # Channels already keep the address out of their errors; this is the belt to those braces,
    # because the text ends up in the ledger.
    text = str(error) or type(error).__name__
    return text.replace(message.address, "<address>") if message.address else text


def send_with_retry(
    channel: Channel,
    message: Message,
    *,
    max_attempts: int = 4,
    base_delay_s: float = 0.2,
    max_delay_s: float = 5.0,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
    rng: random.Random = _JITTER,
    now: Callable[[], datetime] = _utc_now,
) -> DeliveryReport:
    """Send, retrying transient failures with exponential back-off; stop at a permanent one.

    A provider's Retry-After is honoured up to max_delay_s. Exceptions other than delivery
    errors are bugs and propagate. This blocks for the back-off: call it outside any ledger
    transaction.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if base_delay_s < 0 or max_delay_s < 0:
        raise ValueError("delays must not be negative")
    attempts: list[Attempt] = []
    waited_s = 0.0
    for number in range(1, max_attempts + 1):
        started_at = now()
        start = clock()
        failure: DeliveryError | None = None
        outcome: AttemptOutcome = "delivered"
        try:
            channel.send(message)
        except TransientDeliveryError as error:
            outcome, failure = "transient_failure", error
        except PermanentDeliveryError as error:
            outcome, failure = "permanent_failure", error
        latency_ms = (clock() - start) * 1000.0
        attempts.append(
            Attempt(
                number=number,
                started_at=started_at,
                latency_ms=latency_ms,
                outcome=outcome,
                error=None if failure is None else _redacted(failure, message),
                backoff_ms=waited_s * 1000.0,
            )
        )
        if not isinstance(failure, TransientDeliveryError) or number == max_attempts:
            break
        waited_s = backoff_delay(
            number, base_delay_s=base_delay_s, max_delay_s=max_delay_s, rng=rng
        )
        if failure.retry_after_s is not None:
            waited_s = min(max_delay_s, max(waited_s, failure.retry_after_s))
        sleep(waited_s)
    errors = [a.error for a in attempts if a.error is not None]
    return DeliveryReport(
        channel=message.channel,
        provider=channel.name,
        outcome="delivered" if attempts[-1].outcome == "delivered" else "failed",
        attempts=tuple(attempts),
        total_latency_ms=sum(a.latency_ms for a in attempts),
        error=errors[-1] if errors else None,
    )
