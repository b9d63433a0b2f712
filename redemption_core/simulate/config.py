"""What a simulation is asked to do, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput


@dataclass(frozen=True)
class SimulationConfig:
    customers: int = 2_000
    days: int = 90
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    seed: int = 1
    fraud_scale: float = 1.0

    def __post_init__(self) -> None:
        p.integer(self.customers, "customers", minimum=10, maximum=10_000_000)
        p.integer(self.days, "days", minimum=1, maximum=3650)
        p.integer(self.seed, "seed", minimum=0, maximum=2**63)
        if isinstance(self.fraud_scale, bool) or not isinstance(self.fraud_scale, int | float):
            raise InvalidInput("fraud_scale", "must be a number")
        if not 0 <= self.fraud_scale <= 100:
            raise InvalidInput("fraud_scale", "must be from 0 to 100")
        if self.start.tzinfo is None:
            raise InvalidInput("start", "needs a UTC offset")


@dataclass
class SimulationReport:
    days: int
    customers: int
    events: int
    seconds: float
    fraud_cases: int
    outcomes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "customers": self.customers,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events / self.seconds) if self.seconds else 0,
            "fraud_cases": self.fraud_cases,
            "outcomes": self.outcomes,
        }
