"""Notices to the people who run promoledger: a pipeline run failed, the published warehouse
is late. Sent through the same delivery code as vouchers: email over SMTP (channels.SmtpChannel)
and a JSON POST to a webhook (channels.HttpProviderChannel.post).

Configured in `$PROMO_HOME/notifications.yaml`; without that file nobody is told. Credentials
are never written in it, only the names of the environment variables that hold them:

    email:
      host: smtp.example.com
      port: 587
      starttls: true
      from: promoledger@example.com
      to: [ops@example.com, data@example.com]
      username_env: PROMO_SMTP_USER        # optional, with password_env
      password_env: PROMO_SMTP_PASSWORD
    webhook:
      url: https://hooks.example.com/promoledger
      token_env: PROMO_WEBHOOK_TOKEN       # optional: sent as a bearer token

Every refusal names the field to fix (`notifications.email.to[1]`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from redemption_core.distribution.channels import (
    EMAIL_PATTERN,
    DeliveryError,
    HttpProviderChannel,
    SmtpChannel,
)
from redemption_core.distribution.delivery_config import http_from_config, smtp_from_config
from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput, PromoError
from redemption_core.ledger.home import promo_home

ROOT = "notifications"
FILE_NAME = "notifications.yaml"
MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class Notice:
    """What happened, for a person: a subject line and a plain-text body. `key` is the same
    for the same event (a run id, a late episode), so a receiver can drop a repeat."""

    subject: str
    text: str
    key: str
    kind: str = "pipeline"


class NotificationError(PromoError):
    """A notice could not reach one of its channels; the message names which and why."""


class Notifier:
    """Sends a notice to every configured channel, trying all of them before it reports
    which failed."""

    def __init__(
        self,
        *,
        email: SmtpChannel | None = None,
        recipients: tuple[str, ...] = (),
        webhook: HttpProviderChannel | None = None,
    ) -> None:
        if email is not None and not recipients:
            raise ValueError("an email channel needs recipients")
        self.email = email
        self.recipients = recipients
        self.webhook = webhook

    @property
    def channels(self) -> list[str]:
        return [name for name, on in (("email", self.email), ("webhook", self.webhook)) if on]

    def send(self, notice: Notice) -> list[str]:
        """Send `notice` everywhere; return the channels it reached, or raise
        NotificationError naming those it did not."""
        reached, failed = [], []
        if self.email is not None:
            try:
                self.email.transmit(self._email(notice), self.recipients)
                reached.append("email")
            except DeliveryError as error:
                failed.append(f"email: {error}")
        if self.webhook is not None:
            payload = {"kind": notice.kind, "subject": notice.subject, "text": notice.text}
            try:
                self.webhook.post(payload, idempotency_key=_message_id(notice))
                reached.append("webhook")
            except DeliveryError as error:
                failed.append(f"webhook: {error}")
        if failed:
            raise NotificationError(f"notice {notice.subject!r} not sent by " + "; ".join(failed))
        return reached

    def _email(self, notice: Notice) -> EmailMessage:
        assert self.email is not None
        email = EmailMessage()
        email["From"] = self.email.from_address
        email["To"] = ", ".join(self.recipients)
        email["Subject"] = notice.subject
        email["Date"] = formatdate(usegmt=True)
        domain = self.email.from_address.rpartition("@")[2] or "promoledger.invalid"
        email["Message-ID"] = f"<{_message_id(notice)}@{domain}>"
        email.set_content(notice.text)
        return email


def _message_id(notice: Notice) -> str:
    return "notice-" + hashlib.sha256(notice.key.encode()).hexdigest()[:32]


def load_notifier(config: Mapping[str, Any], *, environ: Mapping[str, str]) -> Notifier:
    """A notifier from the mapping notifications.yaml holds (email, webhook or both)."""
    data = p.mapping(config, ROOT)
    p.reject_unknown(data, {"email", "webhook"}, ROOT)
    if not data:
        raise InvalidInput(ROOT, "configure email, webhook or both")
    email = recipients = None
    if "email" in data:
        where = f"{ROOT}.email"
        fields = p.mapping(data["email"], where)
        recipients = _recipients(fields.get("to"), f"{where}.to")
        email = smtp_from_config(fields, where, environ, extra={"to"})
    webhook = None
    if "webhook" in data:
        where = f"{ROOT}.webhook"
        webhook = http_from_config(p.mapping(data["webhook"], where), where, environ)
    return Notifier(email=email, recipients=recipients or (), webhook=webhook)


def _recipients(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidInput(field, "must list at least one email address")
    if len(value) > MAX_RECIPIENTS:
        raise InvalidInput(field, f"at most {MAX_RECIPIENTS} addresses")
    for index, address in enumerate(value):
        if not isinstance(address, str) or not EMAIL_PATTERN.fullmatch(address):
            raise InvalidInput(f"{field}[{index}]", f"not an email address: {p.short(address)}")
    return tuple(value)


def notifier_from_home(home: Path | None = None, *, environ: Mapping[str, str]) -> Notifier | None:
    """The notifier `$PROMO_HOME/notifications.yaml` configures; None without that file."""
    path = (home if home is not None else promo_home()) / FILE_NAME
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("file", f"cannot read {path}: {error}") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        raise InvalidInput("file", f"{path} is not valid YAML") from None
    if isinstance(data, Mapping) and set(data) == {ROOT}:
        data = data[ROOT]
    return load_notifier(data if data is not None else {}, environ=environ)


def describe(notifier: Notifier | None) -> str:
    """Where notices go, for a log line; never a credential."""
    if notifier is None:
        return f"nobody: no {FILE_NAME} under PROMO_HOME"
    targets = []
    if notifier.email is not None:
        targets.append(f"email to {', '.join(notifier.recipients)} via {notifier.email.host}")
    if notifier.webhook is not None:
        # the host only: a webhook's path often is its secret
        targets.append(f"webhook at {urlsplit(notifier.webhook.url).hostname}")
    return "; ".join(targets)
