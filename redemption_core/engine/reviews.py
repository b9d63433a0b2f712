"""Fraud review decisions: an analyst marks a flagged item fraud or legitimate, with a note.

The decision is a ledger event like any other (`fraud_review_recorded`), so it is auditable,
replayable and flows through the nightly extract to become a label for the next training run.
The `fraud_reviews` projection answers "has this flag been reviewed?" without scanning events.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.events import Event, EventType
from redemption_core.ledger.store import LedgerStore, LedgerTransaction

DECISIONS = ("fraud", "legitimate")
# What a flag can be about: one attempt, or an actor seen across attempts.
ENTITY_TYPES = (
    "redemption",
    "attempt",
    "customer",
    "device",
    "ip",
    "payment",
    "code",
    "voucher",
    "staff",
    "store",
    "sales_channel",
    "campaign",
)


class ReviewOperations:
    """Requires of its host: store, now(), _transaction()."""

    store: LedgerStore
    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]

    def record_review(
        self,
        flag_id: str,
        entity_type: str,
        entity_id: str,
        decision: str,
        *,
        reviewer: str,
        note: str = "",
        score: float | None = None,
        model_version: str | None = None,
        customer_id: str | None = None,
        voucher_id: str | None = None,
        redemption_id: str | None = None,
    ) -> str:
        """Record an analyst's decision on a flag; returns the event id. A later decision on the
        same flag replaces the earlier one in the projection; both stay in the ledger."""
        flag_id = p.text(flag_id, "flag_id", max_length=300)
        if not flag_id:
            raise InvalidInput("flag_id", "must not be empty")
        if entity_type not in ENTITY_TYPES:
            raise InvalidInput("entity_type", f"must be one of {', '.join(ENTITY_TYPES)}")
        entity_id = p.text(entity_id, "entity_id", max_length=300)
        if not entity_id:
            raise InvalidInput("entity_id", "must not be empty")
        if decision not in DECISIONS:
            raise InvalidInput("decision", f"must be one of {', '.join(DECISIONS)}")
        reviewer = p.text(reviewer, "reviewer", max_length=200)
        if not reviewer:
            raise InvalidInput("reviewer", "must name who decided")
        payload: dict[str, Any] = {
            "flag_id": flag_id,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "decision": decision,
            "note": p.text(note, "note", max_length=2000),
            "reviewer": reviewer,
        }
        if score is not None:
            if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
                raise InvalidInput("score", "must be a number between 0 and 1")
            payload["score"] = float(score)
        if model_version is not None:
            payload["model_version"] = p.text(model_version, "model_version", max_length=100)
        event = Event(
            EventType.FRAUD_REVIEW_RECORDED,
            self.now(),
            payload=payload,
            customer_id=None if customer_id is None else p.identifier(customer_id, "customer_id"),
            voucher_id=None if voucher_id is None else p.identifier(voucher_id, "voucher_id"),
            redemption_id=None
            if redemption_id is None
            else p.identifier(redemption_id, "redemption_id"),
        )
        with self._transaction() as tx:
            tx.append(event)
        return event.event_id

    def reviews(self) -> dict[str, tuple[str, str]]:
        """flag id → (decision, reviewed_at) of the latest decision on each reviewed flag."""
        with self.store.read() as tx:
            rows = tx.query("SELECT flag_id, decision, reviewed_at FROM fraud_reviews", ())
        return {flag: (decision, at) for flag, decision, at in rows}
