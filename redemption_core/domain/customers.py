"""Customer profiles, consent and contacts, as the distribution side needs them.

The ledger never holds an email address or a phone number: only a keyed hash (so a contact can
be matched and de-duplicated) and a masked form for display ("j***@example.com",
"+49*******89"). The real address is looked up at send time from the merchant's contact book.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput

CHANNELS = ("email", "sms", "push")
PROFILE_FIELDS = {
    "id", "signup_at", "birthday", "anniversary", "attributes", "metadata", "email", "phone",
    "consent",
}  # fmt: skip
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[A-Za-z]{2,63}")
PHONE = re.compile(r"\+?[0-9]{6,15}")
MAX_ATTRIBUTES = 100


@dataclass(frozen=True)
class Contact:
    hash: str
    masked: str


@dataclass(frozen=True)
class CustomerProfile:
    id: str
    signup_at: datetime | None = None
    birthday: str | None = None  # "MM-DD": the year is not needed for a celebration offer
    anniversary: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    email: str | None = None  # raw, only in memory: hashed and masked before the ledger
    phone: str | None = None
    consent: Mapping[str, bool] = field(default_factory=dict)


def check_channel(value: object, field: str) -> str:
    if value not in CHANNELS:
        raise InvalidInput(field, f"must be one of {', '.join(CHANNELS)}, got {p.short(value)}")
    return str(value)


def normalize_email(value: object, field: str = "customer.email") -> str:
    if not isinstance(value, str) or not EMAIL.fullmatch(value.strip()):
        raise InvalidInput(field, "not an email address")
    return value.strip().lower()


def normalize_phone(value: object, field: str = "customer.phone") -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "not a phone number")
    digits = re.sub(r"[\s().-]", "", value)
    if not PHONE.fullmatch(digits):
        raise InvalidInput(field, "not a phone number (6 to 15 digits, optional leading +)")
    return digits


def mask_email(email: str) -> str:
    local, domain = email.split("@", 1)
    return f"{local[0]}***@{domain}"


def mask_phone(phone: str) -> str:
    keep = 3 if phone.startswith("+") else 0
    return phone[:keep] + "*" * (len(phone) - keep - 2) + phone[-2:]


def month_day(value: object, field: str) -> str:
    """A personal date as 'MM-DD' (from 'MM-DD' or a full 'YYYY-MM-DD')."""
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a date like 1990-04-17 or 04-17")
    text = value[5:] if len(value) == 10 else value
    try:
        date.fromisoformat(f"2000-{text}")  # a leap year, so 02-29 is a real birthday
    except ValueError:
        raise InvalidInput(field, f"not a date: {p.short(value)}") from None
    return text


def json_mapping(value: object, field: str) -> dict[str, Any]:
    """Attributes or metadata: up to MAX_ATTRIBUTES id keys, each text, a number, a boolean or
    null. NaN and infinities are refused (JSON has no such number; they would be stored as
    null), and so are integers beyond 64 bits (they would come back as floats)."""
    data = dict(p.mapping(value, field))
    if len(data) > MAX_ATTRIBUTES:
        raise InvalidInput(field, f"more than {MAX_ATTRIBUTES} entries")
    for key, item in data.items():
        p.identifier(key, f"{field}.{key}")
        if not (item is None or isinstance(item, str | int | float | bool)):
            raise InvalidInput(f"{field}.{key}", "must be text, a number, true/false or null")
        if isinstance(item, str):
            p.text(item, f"{field}.{key}", max_length=500)
        elif isinstance(item, float | int) and not isinstance(item, bool):
            p.json_number(item, f"{field}.{key}")
    return data


def consent_from(value: object, field: str) -> dict[str, bool]:
    data = p.mapping(value, field)
    p.reject_unknown(data, set(CHANNELS), field)
    return {channel: p.boolean(data[channel], f"{field}.{channel}") for channel in data}


def profile_from_dict(data: object, field: str = "customer") -> CustomerProfile:
    d = p.mapping(data, field)
    p.reject_unknown(d, PROFILE_FIELDS, field)
    return CustomerProfile(
        id=p.identifier(d.get("id"), f"{field}.id"),
        signup_at=p.optional_timestamp(d.get("signup_at"), f"{field}.signup_at"),
        birthday=None
        if d.get("birthday") is None
        else month_day(d["birthday"], f"{field}.birthday"),
        anniversary=(
            None
            if d.get("anniversary") is None
            else month_day(d["anniversary"], f"{field}.anniversary")
        ),
        attributes=json_mapping(d.get("attributes") or {}, f"{field}.attributes"),
        metadata=json_mapping(d.get("metadata") or {}, f"{field}.metadata"),
        email=None if d.get("email") is None else normalize_email(d["email"], f"{field}.email"),
        phone=None if d.get("phone") is None else normalize_phone(d["phone"], f"{field}.phone"),
        consent=consent_from(d.get("consent") or {}, f"{field}.consent"),
    )


def profile_to_dict(profile: CustomerProfile) -> dict[str, Any]:
    """The dict form of a profile object, to be checked by profile_from_dict."""
    document: dict[str, Any] = {
        "id": profile.id,
        "attributes": dict(profile.attributes),
        "metadata": dict(profile.metadata),
        "consent": dict(profile.consent),
    }
    if profile.signup_at is not None:
        document["signup_at"] = profile.signup_at
    for name in ("birthday", "anniversary", "email", "phone"):
        if getattr(profile, name) is not None:
            document[name] = getattr(profile, name)
    return document
