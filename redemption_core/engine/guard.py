"""The guard against guessing and abuse: rate limits per key and per client IP, and a growing
back-off for a device, IP or customer that keeps asking for codes that do not exist.

It lives in the engine so that every door that opens the engine on a home (the API, the CLI,
the console) has it: validate and redeem refuse a subject in back-off before any lookup, and
count its misses; `RedemptionEngine.admit` charges a request to its key's and IP's buckets.
The arithmetic is in domain/limits.py, the state in a table shared by the machine's processes
(ledger/guard_table.py). A back-off that starts is recorded in the ledger
(`guessing_backoff_started`), for the fraud layers.
"""

from __future__ import annotations

from dataclasses import astuple

from redemption_core.domain.limits import (
    BackoffStarted,
    Limits,
    MissState,
    Rate,
    Throttled,
    blocked_for,
    gcra,
    record_miss,
)
from redemption_core.ledger.guard_table import GuardTable, Values, subject_key

# A subject of the back-off: (kind, value) with kind device, ip or customer; values are the
# hashes the ledger stores (customer ids as they are), never raw device ids or addresses.
Subject = tuple[str, str]


class Guard:
    def __init__(self, limits: Limits, table: GuardTable) -> None:
        self.limits = limits
        self.table = table

    # -- rate limits -------------------------------------------------------------------------
    def admit(
        self,
        now: float,
        *,
        key_id: str | None,
        ip: str | None,
        client_validation: bool = False,
        unauthenticated: bool = False,
    ) -> None:
        """Charge one request to every bucket it belongs to, or raise Throttled.

        All or nothing: a refused request takes from no bucket, so a client that waits as
        told is not punished twice.
        """
        limits = self.limits
        buckets: list[tuple[str, str, Rate]] = []
        if key_id is not None:
            buckets.append(("key", key_id, limits.per_key))
        if ip is not None:
            if unauthenticated:
                buckets.append(("unauthenticated", ip, limits.unauthenticated_per_ip))
            else:
                buckets.append(("ip", ip, limits.per_ip))
            if client_validation:
                buckets.append(("client_validation", ip, limits.client_validations_per_ip))
        if not buckets:
            return
        keys = [subject_key(f"rate:{kind}", value) for kind, value, _ in buckets]

        def charge(slots: list[Values]) -> tuple[tuple[str, float] | None, list[float]]:
            outcomes = [
                gcra(values[0], now, rate)
                for values, (_, _, rate) in zip(slots, buckets, strict=True)
            ]
            waits = [
                (wait, kind)
                for (_, wait), (kind, _, _) in zip(outcomes, buckets, strict=True)
                if wait > 0
            ]
            if waits:
                wait, kind = max(waits)
                return (kind, wait), [0.0] * len(slots)
            for values, (tat, _) in zip(slots, outcomes, strict=True):
                values[0] = tat
            return None, [tat for tat, _ in outcomes]

        refused = self.table.update(keys, charge)
        if refused is not None:
            kind, wait = refused
            subject = "key" if kind == "key" else "ip"
            raise Throttled("rate_limited", subject, wait)

    # -- guessing back-off ---------------------------------------------------------------------
    def check_backoff(self, now: float, subjects: list[Subject]) -> None:
        """Raise Throttled when any subject is in back-off."""
        if not subjects or now >= self.table.latest_block():
            return
        keys = [subject_key(f"miss:{kind}", value) for kind, value in subjects]

        def longest(slots: list[Values]) -> tuple[tuple[float, str], list[float]]:
            waits = [
                (blocked_for(MissState(*_miss_fields(values)), now), kind)
                for values, (kind, _) in zip(slots, subjects, strict=True)
            ]
            return max(waits), [0.0] * len(slots)

        wait, kind = self.table.update(keys, longest)
        if wait > 0:
            raise Throttled("guessing_backoff", kind, wait)

    def record_misses(
        self, now: float, subjects: list[Subject]
    ) -> list[tuple[Subject, BackoffStarted]]:
        """Count a resource_not_found for each subject; the back-offs this starts."""
        if not subjects:
            return []
        policy = self.limits.backoff
        keys = [subject_key(f"miss:{kind}", value) for kind, value in subjects]

        def count(slots: list[Values]) -> tuple[list[tuple[Subject, BackoffStarted]], list[float]]:
            started = []
            reusable = []
            for values, subject in zip(slots, subjects, strict=True):
                state = MissState(*_miss_fields(values))
                backoff = record_miss(state, now, policy)
                if backoff is not None:
                    started.append((subject, backoff))
                    self.table.extend_latest_block(backoff.until)
                values[:] = [float(v) for v in astuple(state)]
                reusable.append(
                    max(
                        state.blocked_until,
                        state.last_miss + policy.reset_s,
                        state.window_start + policy.window_s,
                    )
                )
            return started, reusable

        return self.table.update(keys, count)

    def close(self) -> None:
        self.table.close()


def _miss_fields(values: Values) -> tuple[float, int, int, float, float]:
    window_start, misses, level, blocked_until, last_miss = values
    return window_start, int(misses), int(level), blocked_until, last_miss
