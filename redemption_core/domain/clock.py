"""Clocks: the engine asks one for every `now`, so that time can be moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


class SettableClock:
    """A clock that says what it was last set to: for the demo, the simulator, benchmarks and
    tests, which move time by hand; the engine calls it for every `now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
