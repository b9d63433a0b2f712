"""Where state lives, and the one place that opens the ledger.

PROMO_HOME (default ./data) holds the state; the ledger is `$PROMO_HOME/ledger.sqlite`
unless PROMO_LEDGER_URL names a PostgreSQL database (postgresql://...). Both are read when
asked, never at import time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from redemption_core.domain.errors import InvalidInput
from redemption_core.domain.hashing import ContextHasher
from redemption_core.domain.limits import Limits, limits_from_dict
from redemption_core.ledger.store import LedgerStore

KEY_FILE = Path("secrets") / "hmac.key"
LIMITS_FILE = "limits.yaml"
GUARD_TABLE = Path("run") / "guard.table"


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME") or "data").resolve()


def ledger_path(home: Path | None = None) -> Path:
    return (home or promo_home()) / "ledger.sqlite"


def ledger_url() -> str | None:
    """PROMO_LEDGER_URL when it names a PostgreSQL ledger; None means the SQLite file."""
    url = os.environ.get("PROMO_LEDGER_URL") or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("PROMO_LEDGER_URL", "must be a postgresql:// URL")
    return url


def ledger_exists(home: Path | None = None) -> bool:
    """Whether there is a ledger to read (a PostgreSQL ledger is there once configured)."""
    return ledger_url() is not None or ledger_path(home).exists()


def ledger_location(home: Path | None = None) -> str:
    """The ledger's path, or its URL without the password, for messages."""
    url = ledger_url()
    if url is None:
        return str(ledger_path(home))
    from redemption_core.ledger.postgres import redacted

    return redacted(url)


def open_store(
    home: Path | None = None, *, durable: bool = True, read_only: bool = False
) -> LedgerStore:
    """The ledger of this home: PostgreSQL when PROMO_LEDGER_URL is set, else the SQLite file."""
    url = ledger_url()
    if url is not None:
        # Imported here: psycopg is loaded only by processes that use PostgreSQL.
        from redemption_core.ledger.postgres import PostgresLedgerStore

        return PostgresLedgerStore(url, durable=durable, read_only=read_only)
    from redemption_core.ledger.sqlite import SqliteLedgerStore

    return SqliteLedgerStore(ledger_path(home), durable=durable, read_only=read_only)


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
