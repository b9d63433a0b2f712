"""Where state lives. PROMO_HOME (default ./data) is read when asked, never at import time."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.limits import Limits, limits_from_dict

KEY_FILE = Path("secrets") / "hmac.key"
LIMITS_FILE = "limits.yaml"
GUARD_TABLE = Path("run") / "guard.table"


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME") or "data").resolve()


def ledger_path(home: Path | None = None) -> Path:
    return (home or promo_home()) / "ledger.sqlite"


def context_hasher(home: Path) -> ContextHasher:
    """The hasher of a home's request contexts: its key from PROMO_HMAC_KEY (hex) or from a
    file created under the home on first use."""
    from_env = os.environ.get("PROMO_HMAC_KEY")
    if from_env:
        try:
            return ContextHasher(bytes.fromhex(from_env))
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
    return ContextHasher(bytes.fromhex(path.read_text().strip()))


def limits(home: Path) -> Limits:
    """The home's limits: `limits.yaml` under it overrides the defaults it names."""
    path = home / LIMITS_FILE
    if not path.exists():
        return Limits()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(LIMITS_FILE, f"cannot read {path}: {error}") from None
    return limits_from_dict(document, LIMITS_FILE)


def guard_table_path(home: Path) -> Path:
    return home / GUARD_TABLE
