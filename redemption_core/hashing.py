"""Keyed hashes for the request context fraud detection needs (device, IP, payment card).

The ledger never stores them raw: HMAC-SHA256 with a secret key, so equal values still join
(same device across accounts) but the values cannot be read back or brute-forced without the
key. The key comes from PROMO_HMAC_KEY (hex) or from a file created under PROMO_HOME.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from redemption_core.errors import InvalidInput

KEY_FILE = Path("secrets") / "hmac.key"
CACHE_SIZE = 100_000


class ContextHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise InvalidInput("PROMO_HMAC_KEY", "needs at least 16 bytes (32 hex characters)")
        # The keyed inner/outer state is computed once; each hash copies it (cheaper than new).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._cache: dict[str, str] = {}

    @classmethod
    def for_home(cls, home: Path) -> ContextHasher:
        from_env = os.environ.get("PROMO_HMAC_KEY")
        if from_env:
            try:
                return cls(bytes.fromhex(from_env))
            except ValueError:
                raise InvalidInput("PROMO_HMAC_KEY", "must be hex") from None
        path = home / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then linked into place: two processes starting at once agree on
            # one key, and nobody ever reads a half-written file.
            temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return cls(bytes.fromhex(path.read_text().strip()))

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
