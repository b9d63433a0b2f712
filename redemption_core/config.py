"""Where state lives. PROMO_HOME (default ./data) is read when asked, never at import time."""

from __future__ import annotations

import os
from pathlib import Path


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME") or "data").resolve()


def ledger_path(home: Path | None = None) -> Path:
    return (home or promo_home()) / "ledger.sqlite"
