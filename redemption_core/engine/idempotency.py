"""Idempotency keys for every act, not only redeem and rollback (which carry the key on their
own event): the act runs, and its answer is recorded in the same transaction as an
`idempotent_answer_recorded` event under the key. A retry with the same key and request gets
that answer back; with another request, IdempotencyKeyReused; a retry that arrives while the
first is running waits for its transaction (BEGIN IMMEDIATE) and then finds the answer.
Mixed into RedemptionEngine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from redemption_core.domain import parsing as p
from redemption_core.domain.errors import IdempotencyKeyReused
from redemption_core.domain.events import Event, EventType
from redemption_core.engine.results import hash_request
from redemption_core.ledger.store import LedgerStore, LedgerTransaction


class IdempotentOperations:
    """Requires of its host: store, now(), _transaction()."""

    store: LedgerStore
    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]

    def idempotent(
        self,
        key: str | None,
        operation: str,
        request: Mapping[str, Any],
        act: Callable[[], Mapping[str, Any]],
    ) -> tuple[Mapping[str, Any], bool]:
        """Run `act` (engine calls that return a JSON answer) once per key: (answer, replayed).

        The key's check, the act's writes and the recorded answer share one transaction, so
        that no answer is recorded without its act or the other way round. An act refused
        with an error records nothing, and a retry runs it again.
        """
        if key is None:
            return act(), False
        p.identifier(key, "idempotency_key")
        request_hash = hash_request({"operation": operation, "request": request})
        with self.store.batch():
            with self.store.read() as tx:
                earlier = tx.idempotent_event(key)
            if earlier is not None:
                first_hash, event = earlier
                if (
                    first_hash != request_hash
                    or event.event_type is not EventType.IDEMPOTENT_ANSWER_RECORDED
                ):
                    raise IdempotencyKeyReused(key)
                return event.payload["answer"], True
            answer = act()
            with self._transaction() as tx:
                tx.append(
                    Event(
                        EventType.IDEMPOTENT_ANSWER_RECORDED,
                        self.now(),
                        payload={
                            "operation": operation,
                            "request_hash": request_hash,
                            "answer": dict(answer),
                        },
                        idempotency_key=key,
                    )
                )
        return answer, False
