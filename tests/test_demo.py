"""`python -m redemption_core.demo` (what `make demo` runs), on a ledger of its own.

The demo documents that its campaign ids carry the run's timestamp, "so running it again
appends a new demo to the same ledger".
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_demo(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMO_HOME", "PROMO_HMAC_KEY")}
    env["PROMO_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "redemption_core.demo"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def verified_events(output: str) -> int:
    """The event count of the demo's 'ledger verify: clean over N events' line."""
    match = re.search(r"^ledger verify: clean over (\d+) events$", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def main_campaigns(home: Path) -> int:
    with sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT count(*) FROM events WHERE event_type = 'main_campaign_created'"
        ).fetchone()[0]


def start_of_next_second() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def test_the_demo_exits_0_and_reports_a_clean_ledger(tmp_path: Path) -> None:
    home = tmp_path / "home"

    done = run_demo(home)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "ledger verify: clean" in done.stdout
    assert "second rollback: already_rolled_back" in done.stdout
    assert "replayed=True" in done.stdout
    assert verified_events(done.stdout) > 1000
    assert main_campaigns(home) == 1


def test_a_second_run_appends_a_second_demo_to_the_same_ledger_which_stays_clean(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    # `make demo && make demo`: both runs start within one wall-clock second (a run takes well
    # under a second), as they do on any machine that runs the demo twice in a row.
    start_of_next_second()
    first = run_demo(home)

    second = run_demo(home)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert verified_events(second.stdout) > verified_events(first.stdout)
    assert main_campaigns(home) == 2
