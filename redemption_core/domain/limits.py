"""Limits against guessing and hold abuse: what they are (with documented defaults) and the
pure arithmetic of each, over a small state record that the engine keeps in a table shared by
every process on the machine (ledger/guard_table.py).

- Rate limits: the generic cell rate algorithm (GCRA), a token bucket kept as one number, the
  "theoretical arrival time" of the next request. `rate` requests per second on average,
  `burst` at once.
- Guessing back-off: `misses` answers of resource_not_found within `window_s` from one device,
  IP or customer start a back-off of `base_s`; every further miss before the subject has been
  quiet for `reset_s` doubles it, up to `max_s`. Requests naming a subject in back-off are
  refused before any lookup, so a guesser learns nothing while it lasts.
- Holds: at most so many open holds per customer, per device and per IP, and only with a cart.

Defaults are in docs/runbook.md; `$PROMO_HOME/limits.yaml` overrides any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput, PromoError


class Throttled(PromoError):
    """Too many requests from this key or IP, or a subject in guessing back-off: try later."""

    def __init__(self, code: str, subject: str, retry_after_s: float) -> None:
        self.code = code  # rate_limited or guessing_backoff
        self.subject = subject  # key, ip, device or customer
        self.retry_after_s = max(retry_after_s, 0.0)
        self.field = subject
        self.problem = f"{code}: retry after {self.retry_after} s"
        super().__init__(f"{subject}: {self.problem}")

    @property
    def retry_after(self) -> int:
        """Whole seconds, rounded up, as a Retry-After header says it."""
        return max(1, math.ceil(self.retry_after_s))


@dataclass(frozen=True, slots=True)
class Rate:
    rate: float  # requests per second, on average
    burst: int  # requests at once

    def check(self, where: str) -> Rate:
        if not (isinstance(self.rate, int | float) and not isinstance(self.rate, bool)):
            raise InvalidInput(f"{where}.rate", "must be a number")
        if not 0 < self.rate <= 1_000_000:
            raise InvalidInput(f"{where}.rate", "must be above 0 and at most 1000000")
        p.integer(self.burst, f"{where}.burst", minimum=1, maximum=10_000_000)
        return self

    @property
    def interval(self) -> float:
        return 1.0 / self.rate


def gcra(tat: float, now: float, rate: Rate) -> tuple[float, float]:
    """One request at `now` against the bucket whose arrival time is `tat`.

    Returns (new tat, 0) when admitted, or (tat unchanged, seconds to wait) when refused.
    """
    interval = rate.interval
    start = tat if tat > now else now
    new_tat = start + interval
    allowed_at = new_tat - rate.burst * interval
    if allowed_at > now:
        return tat, allowed_at - now
    return new_tat, 0.0


@dataclass(frozen=True, slots=True)
class Backoff:
    misses: int = 5  # resource_not_found answers that start a back-off ...
    window_s: float = 600.0  # ... within this many seconds
    base_s: float = 2.0  # the first back-off
    max_s: float = 3600.0  # the longest
    reset_s: float = 3600.0  # quiet this long and the subject starts from scratch

    def check(self, where: str) -> Backoff:
        p.integer(self.misses, f"{where}.misses", minimum=1, maximum=1_000_000)
        for name in ("window_s", "base_s", "max_s", "reset_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidInput(f"{where}.{name}", "must be a positive number of seconds")
        if self.max_s < self.base_s:
            raise InvalidInput(f"{where}.max_s", "must be at least base_s")
        return self


@dataclass(slots=True)
class MissState:
    """A subject's guessing record: the miss window, the back-off level and until when."""

    window_start: float = 0.0
    misses: int = 0
    level: int = 0
    blocked_until: float = 0.0
    last_miss: float = 0.0


@dataclass(frozen=True, slots=True)
class BackoffStarted:
    level: int
    seconds: float
    until: float
    misses: int


def blocked_for(state: MissState, now: float) -> float:
    """Seconds the subject is still in back-off (0: not blocked)."""
    return state.blocked_until - now if state.blocked_until > now else 0.0


def record_miss(state: MissState, now: float, policy: Backoff) -> BackoffStarted | None:
    """Count one resource_not_found; a back-off that starts with it is returned."""
    if state.last_miss and now - state.last_miss >= policy.reset_s:
        state.level = 0
        state.misses = 0
    if now - state.window_start >= policy.window_s:
        state.window_start = now
        state.misses = 0
    state.misses += 1
    state.last_miss = now
    # Below the first back-off it takes `misses` misses; past it, every miss grows it.
    if state.level == 0 and state.misses < policy.misses:
        return None
    state.level += 1
    seconds = min(policy.base_s * 2 ** min(state.level - 1, 62), policy.max_s)
    state.blocked_until = now + seconds
    misses, state.misses = state.misses, 0
    return BackoffStarted(state.level, seconds, state.blocked_until, misses)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of the guard and of holds. The defaults are documented in docs/runbook.md."""

    per_key: Rate = field(default_factory=lambda: Rate(500.0, 1000))  # each server key
    per_ip: Rate = field(default_factory=lambda: Rate(1000.0, 2000))  # each client IP, any key
    # A client-side key's validations (and publications) per IP: Voucherify's 5 per 5 seconds.
    client_validations_per_ip: Rate = field(default_factory=lambda: Rate(1.0, 5))
    # Requests without a valid key, per IP (a wrong key costs as much as a miss).
    unauthenticated_per_ip: Rate = field(default_factory=lambda: Rate(0.5, 20))
    backoff: Backoff = field(default_factory=Backoff)
    holds_per_customer: int = 3
    holds_per_device: int = 3
    holds_per_ip: int = 10

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Rate):
                document[item.name] = {"rate": value.rate, "burst": value.burst}
            elif isinstance(value, Backoff):
                document[item.name] = {f.name: getattr(value, f.name) for f in fields(Backoff)}
            else:
                document[item.name] = value
        return document


RATES = ("per_key", "per_ip", "client_validations_per_ip", "unauthenticated_per_ip")
HOLD_LIMITS = ("holds_per_customer", "holds_per_device", "holds_per_ip")


def limits_from_dict(data: object, field_name: str = "limits") -> Limits:
    """Limits from a mapping (limits.yaml): each key given overrides its default."""
    if data is None:
        return Limits()
    document = p.mapping(data, field_name)
    p.reject_unknown(document, {*RATES, *HOLD_LIMITS, "backoff"}, field_name)
    limits = Limits()
    changes: dict[str, Any] = {}
    for name in RATES:
        if name in document:
            where = f"{field_name}.{name}"
            entry = p.mapping(document[name], where)
            p.reject_unknown(entry, {"rate", "burst"}, where)
            default: Rate = getattr(limits, name)
            changes[name] = Rate(
                entry.get("rate", default.rate), entry.get("burst", default.burst)
            ).check(where)
    if "backoff" in document:
        where = f"{field_name}.backoff"
        entry = p.mapping(document["backoff"], where)
        p.reject_unknown(entry, {f.name for f in fields(Backoff)}, where)
        changes["backoff"] = replace(limits.backoff, **entry).check(where)
    for name in HOLD_LIMITS:
        if name in document:
            changes[name] = p.integer(
                document[name], f"{field_name}.{name}", minimum=1, maximum=1_000_000
            )
    return replace(limits, **changes)


def hold_limits_reasons(
    limits: Limits, *, by_customer: int, by_device: int, by_ip: int
) -> list[tuple[str, str]]:
    """(field, problem) for every hold limit the open holds already reach."""
    reached = []
    if by_customer >= limits.holds_per_customer:
        reached.append(
            ("customer_id", f"already holds {by_customer} (at most {limits.holds_per_customer})")
        )
    if by_device >= limits.holds_per_device:
        reached.append(
            ("context.device_id", f"already holds {by_device} (at most {limits.holds_per_device})")
        )
    if by_ip >= limits.holds_per_ip:
        reached.append(("context.ip", f"already holds {by_ip} (at most {limits.holds_per_ip})"))
    return reached
