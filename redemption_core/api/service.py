"""What one worker process holds: an engine that reads (on the event loop: validations, key
lookups, reads of state) and the writer (its own engine on its own thread, group-committing
redemptions), sharing the machine's guard; and the per-request steps every route shares:
who asks, may they, and the Idempotency-Key."""

from __future__ import annotations

import functools
import ipaddress
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection

from redemption_core.api.writer import Writer
from redemption_core.domain import parsing as p
from redemption_core.domain.access import Operation, Principal, Unauthenticated, check
from redemption_core.domain.errors import InvalidInput
from redemption_core.engine.guard import Guard
from redemption_core.engine.redemption import RedemptionEngine
from redemption_core.ledger.dialect import SQLITE
from redemption_core.ledger.guard_table import GuardTable
from redemption_core.ledger.home import (
    context_hasher,
    guard_table_path,
    limits,
    open_store,
)

MAX_IDEMPOTENCY_KEY = 64
WRITE_LOCK = Path("run") / "write.lock"


@dataclass(frozen=True)
class ApiSettings:
    home: Path
    validation_buffer: int = 256  # 1: every validation is written before it is answered
    validation_max_age_s: float = 0.2


# How often the interpreter hands the GIL from one thread to another (default 5 ms): the event
# loop and the writer share a process, and a thread that wants the GIL back after a system call
# waits up to this long behind the other. Measured: ~30% more redemptions/s at 64 clients.
SWITCH_INTERVAL_S = 0.0002


class Service:
    def __init__(self, settings: ApiSettings) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        home = settings.home
        self.guard = Guard(limits(home), GuardTable(guard_table_path(home)))
        hasher = context_hasher(home)
        # The home's ledger: its SQLite file, or PROMO_LEDGER_URL's PostgreSQL database, which
        # workers on several machines share.
        store = open_store(home)
        writing = RedemptionEngine(
            store,
            hasher,
            guard=self.guard,
            validation_buffer=settings.validation_buffer,
            validation_max_age_s=settings.validation_max_age_s,
        )
        # SQLite's writers queue on the machine's lock file (see writer.py); PostgreSQL's run
        # side by side, serialised by the database on what they decide on.
        lock_path = home / WRITE_LOCK if store.dialect == SQLITE else None
        self.writer = Writer(writing, lock_path=lock_path, max_age_s=settings.validation_max_age_s)
        immediate = settings.validation_buffer <= 1
        self.reader = RedemptionEngine(
            open_store(home),
            hasher,
            guard=self.guard,
            validation_sink=None if immediate else self.writer.defer,
            validation_buffer=1,
        )

    @property
    def engine(self) -> RedemptionEngine:
        """The writing engine: only ever called on the writer's thread."""
        return self.writer.engine

    def close(self) -> None:
        self.writer.close()
        self.reader.store.close()
        self.guard.close()

    # -- per request ---------------------------------------------------------------------------
    def authorize(self, connection: ASGIConnection, operation: Operation) -> Principal:
        """Who asks (the bearer key), charged to its rate limits, allowed this operation."""
        ip = client_ip(connection)
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                token = ""
            principal = self.reader.authenticate(token.strip())
        except Unauthenticated:
            self.reader.admit(None, ip)  # Throttled when this IP keeps trying bad keys
            raise
        self.reader.admit(principal, ip, operation)
        check(principal, operation)
        return principal

    def scoped_key(self, principal: Principal, header: str | None) -> str | None:
        """The Idempotency-Key, per API key: two keys never share each other's answers."""
        if header is None:
            return None
        if len(header) > MAX_IDEMPOTENCY_KEY:
            raise InvalidInput("Idempotency-Key", f"longer than {MAX_IDEMPOTENCY_KEY} characters")
        p.identifier(header, "Idempotency-Key")
        return f"{principal.key_id}:{header}"

    async def idempotent(
        self,
        principal: Principal,
        header: str | None,
        operation: str,
        request: Mapping[str, Any],
        act: Callable[[RedemptionEngine], Mapping[str, Any]],
    ) -> tuple[Mapping[str, Any], bool]:
        """Run a write on the writer thread, at most once per Idempotency-Key."""
        key = self.scoped_key(principal, header)
        engine = self.engine
        return await self.writer.call(
            lambda: engine.idempotent(key, operation, request, lambda: act(engine))
        )


def client_ip(connection: ASGIConnection) -> str | None:
    """The peer's address (uvicorn puts the proxy's X-Forwarded-For there when it trusts it),
    if it is an IP address (a test client or a Unix socket has none)."""
    client = connection.client
    return None if client is None or not client.host else _canonical_ip(client.host)


@functools.lru_cache(maxsize=65_536)
def _canonical_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
