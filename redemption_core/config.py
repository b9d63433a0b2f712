"""Where state lives. PROMO_HOME (default ./data) is read when asked, never at import time."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path


def promo_home() -> Path:
    return Path(os.environ.get("PROMO_HOME") or "data").resolve()


def ledger_path(home: Path | None = None) -> Path:
    return (home or promo_home()) / "ledger.sqlite"


class SettableClock:
    """A clock that says what it was last set to: for the demo, the simulator, benchmarks and
    tests, which move time by hand; the engine calls it for every `now`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
