"""`promo` run as its own process, as a user runs it: PROMO_HOME set, nothing else inherited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def promo(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "redemption_core.cli", *args],
        capture_output=True,
        text=True,
        env={"PROMO_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
