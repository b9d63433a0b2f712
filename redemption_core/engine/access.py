"""API keys as ledger events: issued (`api_key_issued`, with the SHA-256 of the secret, never
the secret) and revoked (`api_key_revoked`); `authenticate` finds a key's principal by the
hash of what a caller presents. Mixed into RedemptionEngine.

The console's sign-in (people) is meant to reuse the same roles (domain/access.py) and record
its users the same way, so that the ledger names who acted whatever the door.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from redemption_core.domain import parsing as p
from redemption_core.domain.access import (
    KeyKind,
    Principal,
    Role,
    Unauthenticated,
    check_store,
    key_terms,
)
from redemption_core.domain.errors import Conflict, NotFound
from redemption_core.domain.events import Event, EventType, new_id
from redemption_core.domain.state import ApiKeyState
from redemption_core.ledger.store import LedgerStore, LedgerTransaction

TOKEN_PREFIX = {KeyKind.SERVER: "sk_", KeyKind.CLIENT: "pk_"}
MAX_TOKEN_LENGTH = 200
# A verified key is remembered this long per process, so that a request costs no ledger read
# for its key; a revocation takes effect on every worker within this time.
KEY_CACHE_S = 1.0


def key_hash(token: str) -> str:
    """SHA-256 of the whole token. The secret part has 256 random bits, so a plain hash
    cannot be reversed or brute-forced; it needs no key of its own."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    token: str  # shown once: only its hash is stored
    principal: Principal


class AccessOperations:
    """Requires of its host: store, now(), _transaction()."""

    store: LedgerStore
    now: Callable[[], datetime]
    _transaction: Callable[[], AbstractContextManager[LedgerTransaction]]
    _key_cache: dict[str, tuple[Principal, float]]

    def issue_key(
        self,
        role: Role | str | None,
        *,
        kind: KeyKind | str = KeyKind.SERVER,
        stores: Sequence[str] = (),
        name: str = "",
    ) -> IssuedKey:
        checked_role, checked_kind, store_set, checked_name = key_terms(
            role, kind, list(stores), name
        )
        token = TOKEN_PREFIX[checked_kind] + secrets.token_urlsafe(32)
        key_id = new_id("key")
        payload = {
            "key_id": key_id,
            "key_hash": key_hash(token),
            "kind": str(checked_kind),
            "role": None if checked_role is None else str(checked_role),
            "stores": sorted(store_set),
            "name": checked_name,
        }
        with self._transaction() as tx:
            tx.append(Event(EventType.API_KEY_ISSUED, self.now(), payload=payload))
        principal = Principal(key_id, checked_kind, checked_role, store_set, checked_name)
        return IssuedKey(key_id, token, principal)

    def revoke_key(self, key_id: str, *, reason: str = "") -> None:
        key_id = p.identifier(key_id, "key_id")
        reason = p.text(reason, "reason", max_length=500)
        with self._transaction() as tx:
            known = {key.key_id: key for key in tx.api_keys()}
            if key_id not in known:
                raise NotFound("key_id", key_id)
            if known[key_id].revoked_at is not None:
                raise Conflict("key_id", "the key was revoked before")
            tx.append(
                Event(
                    EventType.API_KEY_REVOKED,
                    self.now(),
                    payload={"key_id": key_id, "reason": reason},
                )
            )
        self._key_cache.clear()

    def check_order_store(self, principal: Principal, order_id: str) -> None:
        """A key limited to stores refunds and cancels only the orders placed in them."""
        if not principal.stores:
            return
        with self.store.read() as tx:
            order = tx.order(p.identifier(order_id, "order_id"))
        if order is not None:
            check_store(principal, order.store_id, "order_id")

    def api_keys(self) -> list[ApiKeyState]:
        with self.store.read() as tx:
            return tx.api_keys()

    def authenticate(self, token: object) -> Principal:
        """The principal of a presented key; Unauthenticated for none, unknown or revoked."""
        if not isinstance(token, str) or not token:
            raise Unauthenticated("a key is required (Authorization: Bearer <key>)")
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise Unauthenticated("not a key")
        hashed = key_hash(token)
        cached = self._key_cache.get(hashed)
        clock = time.monotonic()
        if cached is not None and cached[1] > clock:
            return cached[0]
        with self.store.read() as tx:
            state = tx.api_key_by_hash(hashed)
        if state is None or state.revoked_at is not None:
            self._key_cache.pop(hashed, None)
            raise Unauthenticated("unknown or revoked key")
        principal = Principal(
            key_id=state.key_id,
            kind=KeyKind(state.kind),
            role=None if state.role is None else Role(state.role),
            stores=frozenset(state.stores),
            name=state.name,
        )
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[hashed] = (principal, clock + KEY_CACHE_S)
        return principal
