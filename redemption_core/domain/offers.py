"""How a campaign reaches customers: its `distribution` section.

distribution:
  mode: promotion                 # a one-off send to a segment
  segment: vip                    # the audience (promotion) or an extra filter (autopilot)
  channels: [push, email, sms]    # preference order; consent decides among them
  control_share: 0.1              # held out, deterministic by customer and campaign
  message: {subject: "A thank-you", body: "Your code: {code}"}
  trigger:                        # autopilot only
    type: gone_quiet              # gone_quiet | personal_date | first_order | spend_threshold
    min_orders: 3
    quiet_days: 30
    cooldown_days: 90             # the same trigger fires at most once per customer per period
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.customers import CHANNELS, check_channel
from redemption_core.domain.errors import InvalidInput

TRIGGER_TYPES = ("gone_quiet", "personal_date", "first_order", "spend_threshold")
# The closed sets distribution events carry (docs/ledger.md); every door checks them.
OFFER_SOURCES = ("promotion", "autopilot")
SKIP_REASONS = (
    "frequency_cap",
    "no_consent",
    "channel_unavailable",
    "no_contact",
    "unknown_customer",
)
TRIGGER_FAILURES = (*SKIP_REASONS, "delivery_failed")
TRIGGER_OUTCOMES = ("completed", "held_out")
DELIVERY_OUTCOMES = ("delivered", "transient_failure", "permanent_failure")
DEFAULT_COOLDOWN_DAYS = {
    "gone_quiet": 90,
    "personal_date": 300,  # once a year
    "first_order": 36_500,  # once ever
    "spend_threshold": 36_500,
}
PLACEHOLDERS = ("{code}", "{campaign}")
MAX_CONTROL_SHARE = 0.5


@dataclass(frozen=True)
class Trigger:
    type: str
    cooldown_days: int
    min_orders: int = 1
    quiet_days: int = 30
    date: str = "birthday"  # personal_date: birthday or anniversary
    days_before: int = 0
    within_days: int = 1  # first_order: how recent the first order must be
    amount: int = 0  # spend_threshold, minor units


@dataclass(frozen=True)
class Distribution:
    mode: str  # promotion or autopilot
    channels: tuple[str, ...]
    control_share: float = 0.0
    segment: str | None = None
    subject: str = "A voucher for you"
    body: str = "Your voucher code: {code}"
    trigger: Trigger | None = None


def distribution_from_dict(data: object, field: str) -> Distribution:
    d = p.mapping(data, field)
    p.reject_unknown(
        d, {"mode", "segment", "channels", "control_share", "message", "trigger"}, field
    )
    mode = d.get("mode")
    if mode not in ("promotion", "autopilot"):
        raise InvalidInput(f"{field}.mode", "must be promotion or autopilot")
    raw_channels = d.get("channels", list(CHANNELS))
    if not isinstance(raw_channels, list) or not raw_channels:
        raise InvalidInput(f"{field}.channels", "must be a non-empty list of email, sms, push")
    channels = tuple(check_channel(c, f"{field}.channels[{i}]") for i, c in enumerate(raw_channels))
    if len(set(channels)) != len(channels):
        raise InvalidInput(f"{field}.channels", "lists a channel twice")
    share = d.get("control_share", 0)
    if (
        isinstance(share, bool)
        or not isinstance(share, int | float)
        or not 0 <= share <= MAX_CONTROL_SHARE
    ):
        raise InvalidInput(
            f"{field}.control_share", f"must be a number from 0 to {MAX_CONTROL_SHARE}"
        )
    segment = p.optional_identifier(d.get("segment"), f"{field}.segment")
    if mode == "promotion" and segment is None:
        raise InvalidInput(f"{field}.segment", "a promotion needs the segment it is sent to")
    message = p.mapping(d.get("message", {}), f"{field}.message")
    p.reject_unknown(message, {"subject", "body"}, f"{field}.message")
    subject = p.text(
        message.get("subject", Distribution.subject), f"{field}.message.subject", max_length=200
    )
    body = p.text(message.get("body", Distribution.body), f"{field}.message.body", max_length=2000)
    if "{code}" not in body:
        raise InvalidInput(f"{field}.message.body", "must contain {code}")
    trigger = None
    if mode == "autopilot":
        trigger = _trigger(d.get("trigger"), f"{field}.trigger")
    elif d.get("trigger") is not None:
        raise InvalidInput(f"{field}.trigger", "only an autopilot has a trigger")
    return Distribution(mode, channels, float(share), segment, subject, body, trigger)


def _trigger(data: object, field: str) -> Trigger:
    d = p.mapping(data, field)
    kind = d.get("type")
    if kind not in TRIGGER_TYPES:
        raise InvalidInput(f"{field}.type", f"must be one of {', '.join(TRIGGER_TYPES)}")
    fields = {
        "gone_quiet": {"min_orders", "quiet_days"},
        "personal_date": {"date", "days_before"},
        "first_order": {"within_days"},
        "spend_threshold": {"amount"},
    }[kind]
    p.reject_unknown(d, fields | {"type", "cooldown_days"}, field)
    values: dict[str, Any] = {}
    for name, low, high in (
        ("min_orders", 1, 10_000),
        ("quiet_days", 1, 3650),
        ("days_before", 0, 60),
        ("within_days", 1, 365),
        ("amount", 1, 10**13),
    ):
        if name in fields and name in d:
            values[name] = p.integer(d[name], f"{field}.{name}", minimum=low, maximum=high)
    if kind == "personal_date":
        when = d.get("date", "birthday")
        if when not in ("birthday", "anniversary"):
            raise InvalidInput(f"{field}.date", "must be birthday or anniversary")
        values["date"] = when
    if kind == "spend_threshold" and "amount" not in values:
        raise InvalidInput(f"{field}.amount", "required for a spend_threshold trigger")
    cooldown = d.get("cooldown_days", DEFAULT_COOLDOWN_DAYS[kind])
    values["cooldown_days"] = p.integer(
        cooldown, f"{field}.cooldown_days", minimum=1, maximum=36_500
    )
    return Trigger(type=kind, **values)


def in_control_group(campaign_id: str, customer_id: str, share: float) -> bool:
    """Deterministic hold-out: the same customer is always in or out of a campaign's group.

    A hash of (campaign, customer) mapped to [0, 1): independent across campaigns, stable
    across runs and machines, and at the configured share on average.
    """
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def render(template: str, *, code: str, campaign: str) -> str:
    return template.replace("{code}", code).replace("{campaign}", campaign)


def distribution_to_dict(distribution: Distribution) -> Mapping[str, Any]:
    document: dict[str, Any] = {
        "mode": distribution.mode,
        "channels": list(distribution.channels),
        "control_share": distribution.control_share,
        "message": {"subject": distribution.subject, "body": distribution.body},
    }
    if distribution.segment:
        document["segment"] = distribution.segment
    if distribution.trigger:
        document["trigger"] = {k: v for k, v in distribution.trigger.__dict__.items()}
    return document
