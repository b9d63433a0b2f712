"""Keyed hashes for the request context fraud detection needs (device, IP, payment card).

The ledger never stores them raw: HMAC-SHA256 with a secret key, so equal values still join
(same device across accounts) but the values cannot be read back or brute-forced without the
key. Where the key comes from is the ledger's business (ledger/home.py: context_hasher).
"""

from __future__ import annotations

import hashlib
import hmac

from redemption_core.domain.errors import InvalidInput

CACHE_SIZE = 100_000


class ContextHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InvalidInput("PROMO_HMAC_KEY", "needs at least 16 bytes (32 hex characters)")
        # The keyed inner/outer state is computed once; each hash copies it (cheaper than new).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._cache: dict[str, str] = {}

    def hash(self, value: str | None) -> str | None:
        if value is None:
            return None
        cached = self._cache.get(value)
        if cached is not None:
            return cached
        digest = self._keyed.copy()
        digest.update(value.encode("utf-8"))
        hashed = digest.hexdigest()[:32]
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()  # crude but bounded; devices and IPs repeat within minutes
        self._cache[value] = hashed
        return hashed
