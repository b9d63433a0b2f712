"""Delivery channels built from configuration: which provider carries email, SMS and push.

The configuration never holds credentials. It names the environment variables that do
(`password_env: PROMO_SMTP_PASSWORD`), and they are read when the channels are built, never at
import time, so the file can be committed and reviewed. Every refusal names the dotted field
to fix, e.g. `delivery.sms.url`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml

from redemption_core.distribution.channels import (
    CHANNEL_KINDS,
    EMAIL_PATTERN,
    Channel,
    ChannelKind,
    FileSinkChannel,
    FlushPolicy,
    HttpProviderChannel,
    SmtpChannel,
)
from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput
from redemption_core.ledger.home import promo_home

ROOT = "delivery"
PROVIDERS_BY_CHANNEL: dict[str, tuple[str, ...]] = {
    "email": ("smtp", "file"),
    "sms": ("http", "file"),  # the HTTP payload has no subject, so email does not go that way
    "push": ("http", "file"),
}
FIELDS = {
    "smtp": {"provider", "name", "host", "port", "starttls", "from", "username_env", "password_env", "timeout_s"},
    "http": {"provider", "name", "url", "token_env", "timeout_s"},
    "file": {"provider", "name", "path", "flush"},
}  # fmt: skip
# Keys that would carry a credential in the clear; refused with a pointer to the *_env form.
LITERAL_SECRETS = {"username", "user", "password", "token", "secret", "api_key", "apikey", "key"}
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_PATTERN = re.compile(r"[A-Za-z0-9.:\[\]-]+")
DEFAULT_TIMEOUT_S = {"smtp": 10.0, "http": 5.0}
MAX_TIMEOUT_S = 300.0


def load_channels(
    config: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> dict[str, Channel]:
    """One channel per configured key of `config` ("email", "sms", "push").

    `environ` defaults to os.environ, read now; `base_dir` anchors relative file-sink paths
    (default: the working directory).
    """
    env = os.environ if environ is None else environ
    data = p.mapping(config, ROOT)
    p.reject_unknown(data, set(CHANNEL_KINDS), ROOT)
    return {
        kind: _channel(kind, data[kind], f"{ROOT}.{kind}", env, base_dir)
        for kind in CHANNEL_KINDS
        if kind in data
    }


def load_channels_from_file(
    path: Path | str, *, environ: Mapping[str, str] | None = None
) -> dict[str, Channel]:
    """Channels from a YAML or JSON file (by suffix) holding the mapping, optionally under a
    single top-level `delivery` key. Relative sink paths are relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("file", f"cannot read {path}: {error}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError):
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise InvalidInput("file", f"{path} is not valid {kind}") from None
    if isinstance(data, Mapping) and set(data) == {ROOT}:
        data = data[ROOT]
    return load_channels(data if data is not None else {}, environ=environ, base_dir=path.parent)


def default_channels(
    folder: Path | str | None = None, *, flush: FlushPolicy = "message"
) -> dict[str, Channel]:
    """The demo's delivery: every channel to its own JSON-lines outbox file.

    The folder defaults to PROMO_HOME/outbox; the files are <channel>.jsonl.
    """
    root = Path(folder) if folder is not None else promo_home() / "outbox"
    return {
        kind: FileSinkChannel(root / f"{kind}.jsonl", channel=kind, flush=flush)
        for kind in CHANNEL_KINDS
    }


def _channel(
    kind: ChannelKind, value: object, where: str, env: Mapping[str, str], base_dir: Path | None
) -> Channel:
    data = p.mapping(value, where)
    provider = data.get("provider")
    allowed = PROVIDERS_BY_CHANNEL[kind]
    if provider not in allowed:
        raise InvalidInput(f"{where}.provider", f"must be one of {', '.join(allowed)}")
    _refuse_literal_secrets(data, where)
    p.reject_unknown(data, FIELDS[provider], where)
    name = p.identifier(data.get("name", provider), f"{where}.name")
    if provider == "smtp":
        return _smtp(data, where, name, env)
    if provider == "http":
        return _http(kind, data, where, name, env)
    flush = data.get("flush", "message")
    if flush not in ("message", "batch"):
        raise InvalidInput(f"{where}.flush", "must be 'message' or 'batch'")
    return FileSinkChannel(
        _path(data.get("path"), f"{where}.path", base_dir),
        channel=kind,
        flush=cast(FlushPolicy, flush),
        name=name,
    )


def _smtp(data: Mapping[str, Any], where: str, name: str, env: Mapping[str, str]) -> Channel:
    host = _host(data.get("host"), f"{where}.host")
    port = p.integer(data.get("port", 25), f"{where}.port", minimum=1, maximum=65_535)
    starttls = p.boolean(data.get("starttls", False), f"{where}.starttls")
    sender = data.get("from")
    if not isinstance(sender, str) or not EMAIL_PATTERN.fullmatch(sender):
        raise InvalidInput(f"{where}.from", "must be the sender's email address")
    has_user, has_password = "username_env" in data, "password_env" in data
    if has_user != has_password:
        missing = "password_env" if has_user else "username_env"
        raise InvalidInput(f"{where}.{missing}", "username_env and password_env go together")
    username = password = None
    if has_user:
        if not starttls and not _is_loopback(host):
            raise InvalidInput(
                f"{where}.starttls", "must be true to log in: the password would cross in clear"
            )
        username = _secret(data["username_env"], f"{where}.username_env", env)
        password = _secret(data["password_env"], f"{where}.password_env", env)
    return SmtpChannel(
        host=host,
        port=port,
        from_address=sender,
        starttls=starttls,
        username=username,
        password=password,
        timeout_s=_timeout(data, where, "smtp"),
        name=name,
    )


def _http(
    kind: ChannelKind, data: Mapping[str, Any], where: str, name: str, env: Mapping[str, str]
) -> Channel:
    url = data.get("url")
    if url is None:
        raise InvalidInput(f"{where}.url", "is required")
    url = p.text(url, f"{where}.url", max_length=2_000)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{where}.url", "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise InvalidInput(f"{where}.url", "must not hold credentials: name them in token_env")
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        raise InvalidInput(f"{where}.url", "has an invalid port") from None
    token = None
    if "token_env" in data:
        if parts.scheme != "https" and not _is_loopback(parts.hostname):
            raise InvalidInput(f"{where}.url", "must be https: the token would cross in clear")
        token = _secret(data["token_env"], f"{where}.token_env", env)
    return HttpProviderChannel(
        url=url, channel=kind, token=token, timeout_s=_timeout(data, where, "http"), name=name
    )


def smtp_from_config(
    data: Mapping[str, Any], where: str, env: Mapping[str, str], *, extra: set[str]
) -> SmtpChannel:
    """An SMTP channel from the fields delivery.yaml's `email` takes (`extra` names fields the
    caller reads itself, e.g. notifications' `to`), checked the same way."""
    _refuse_literal_secrets(data, where)
    p.reject_unknown(data, (FIELDS["smtp"] - {"provider"}) | extra, where)
    name = p.identifier(data.get("name", "smtp"), f"{where}.name")
    return cast(SmtpChannel, _smtp(data, where, name, env))


def http_from_config(
    data: Mapping[str, Any], where: str, env: Mapping[str, str]
) -> HttpProviderChannel:
    """An HTTP endpoint (url, token_env, timeout_s) checked as delivery.yaml's are: http(s)
    only, no credentials in the URL, a token only over https (or to this machine)."""
    _refuse_literal_secrets(data, where)
    p.reject_unknown(data, FIELDS["http"] - {"provider"}, where)
    name = p.identifier(data.get("name", "http"), f"{where}.name")
    # the channel kind only shapes voucher messages; an endpoint used through post() ignores it
    return cast(HttpProviderChannel, _http("push", data, where, name, env))


def _refuse_literal_secrets(data: Mapping[str, Any], where: str) -> None:
    for key in data:
        if isinstance(key, str) and key.lower() in LITERAL_SECRETS:
            raise InvalidInput(
                f"{where}.{key}",
                "credentials are not written in the configuration: put the value in an "
                "environment variable and name it in username_env, password_env or token_env",
            )


def _secret(value: object, field: str, env: Mapping[str, str]) -> str:
    if not isinstance(value, str) or not ENV_NAME_PATTERN.fullmatch(value):
        raise InvalidInput(field, "must name an environment variable, e.g. PROMO_SMTP_PASSWORD")
    secret = env.get(value)
    if not secret:
        raise InvalidInput(field, f"environment variable {value} is not set")
    return secret


def _host(value: object, field: str) -> str:
    if value is None:
        raise InvalidInput(field, "is required")
    if not isinstance(value, str) or not HOST_PATTERN.fullmatch(value):
        raise InvalidInput(field, f"must be a host name or IP address, got {p.short(value)}")
    return value


def _timeout(data: Mapping[str, Any], where: str, provider: str) -> float:
    value = data.get("timeout_s", DEFAULT_TIMEOUT_S[provider])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(
            f"{where}.timeout_s", f"must be a number of seconds, got {p.short(value)}"
        )
    if not 0 < value <= MAX_TIMEOUT_S:
        raise InvalidInput(f"{where}.timeout_s", f"must be above 0 and at most {MAX_TIMEOUT_S:g}")
    return float(value)


def _path(value: object, field: str, base_dir: Path | None) -> Path:
    if value is None:
        raise InvalidInput(field, "is required")
    text = p.text(value, field, max_length=4_096)
    if not text.strip():
        raise InvalidInput(field, "must not be empty")
    path = Path(text)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
