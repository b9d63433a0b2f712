"""What API key events do to the projection: the `api_keys` table the doors authenticate
against (a key is found by the SHA-256 of its secret; the secret itself is never stored)."""

from __future__ import annotations

from redemption_core.domain.events import Event
from redemption_core.domain.parsing import iso
from redemption_core.ledger.projection.base import ProjectionBase
from redemption_core.ledger.rows import dumps


class AccessProjection(ProjectionBase):
    def _api_key_issued(self, event: Event) -> None:
        payload = event.payload
        self._db.execute(
            "INSERT INTO api_keys (key_id, key_hash, kind, role, stores, name, issued_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                payload["key_id"],
                payload["key_hash"],
                payload["kind"],
                payload.get("role"),
                dumps(sorted(payload.get("stores", []))),
                payload.get("name", ""),
                iso(event.occurred_at),
            ),
        )

    def _api_key_revoked(self, event: Event) -> None:
        self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (iso(event.occurred_at), event.payload["key_id"]),
        )
