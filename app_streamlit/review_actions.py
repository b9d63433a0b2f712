"""The console's one write: an analyst's fraud review decision, recorded through
redemption_core as a `fraud_review_recorded` ledger event.

Which flags are reviewed is read from the ledger's projection (`engine.reviews()`) on every
run, never cached, so that a reviewed item leaves the queue at once, for every analyst, without
waiting for the nightly pipeline. Each call opens the engine and closes it: the console holds
no ledger connection between runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from redemption_core import RedemptionEngine, ledger_exists, ledger_location, promo_home


class NoLedger(Exception):
    """PROMO_HOME has no ledger, so there is nowhere to read or record reviews."""


@dataclass(frozen=True)
class Flag:
    flag_id: str
    entity_type: str
    entity_id: str
    score: float | None = None
    model_version: str | None = None
    customer_id: str | None = None
    voucher_id: str | None = None
    redemption_id: str | None = None


def _engine() -> RedemptionEngine:
    home = promo_home()
    if not ledger_exists(home):
        raise NoLedger(ledger_location(home))
    return RedemptionEngine.open(home)


def reviewed_flags() -> dict[str, tuple[str, str]]:
    """flag id → (decision, reviewed_at) of every reviewed flag, from the ledger's projection."""
    with _engine() as engine:
        return engine.reviews()


def record(flag: Flag, decision: str, *, reviewer: str, note: str) -> str:
    """Record the decision; returns the ledger event id. Refused input (an empty reviewer, an
    unknown decision) raises redemption_core's InvalidInput, whose message names the field."""
    with _engine() as engine:
        return engine.record_review(
            flag.flag_id,
            flag.entity_type,
            flag.entity_id,
            decision,
            reviewer=reviewer,
            note=note,
            score=flag.score,
            model_version=flag.model_version,
            customer_id=flag.customer_id,
            voucher_id=flag.voucher_id,
            redemption_id=flag.redemption_id,
        )
