"""The console end to end in a real browser: Debian's chromium driven by Playwright against
`streamlit run` on loopback, over a warehouse published by the real pipeline.

Every page is opened and must finish running without an error on screen; each one is saved as
a screenshot under the test's temporary folder (`screenshots/<page>.png`). On Fraud review the
top item is marked fraud: the decision must reach the ledger and the item leave the queue.

The browser is the distribution's (`apt-get install chromium`, done here when it is missing),
never one downloaded by `playwright install`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from app_streamlit.screenshots import (
    CHROMIUM,
    CHROMIUM_ARGS,
    README_SHOTS,
    VIEWPORT,
    open_page,
    readme_screenshots,
    running_console,
    screenshot,
    wait_for_script,
)
from app_streamlit.streamlit_app import SECTIONS
from redemption_core.simulate import SimulationConfig, simulate

REPO = Path(__file__).resolve().parents[1]
# A small business with enough fraud for the pipeline to train a first fraud model.
BUSINESS = SimulationConfig(customers=400, days=40, seed=7, fraud_scale=3)
# Bounded waits, in milliseconds (Playwright) or seconds (processes).
PAGE_TIMEOUT_MS = 60_000
PIPELINE_SECONDS = 900
APT_SECONDS = 900
# What only a broken page says: the console's own apology, and the empty states for a missing
# warehouse, table or page (the real pipeline publishes them all).
BROKEN_PAGE_TEXTS = (
    "Traceback",
    "Something went wrong while showing",
    "No published warehouse yet",
    "The published warehouse has no table",
    "could not be opened",
    "is not part of this build yet",
    "The filters are unavailable",
    "No filters: the warehouse has no table",
)
# Pages where an error-styled alert is content: a campaign whose health is "failing".
HEALTH_ALERT_PAGES = {"Campaign health", "Diagnostics"}


@dataclass(frozen=True)
class Console:
    base: str  # http://127.0.0.1:<port>
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# --- setup: the browser, the data, the console -------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium at /usr/bin/chromium, installed with apt-get once per session if
    missing (CI runs as root on a fresh Debian machine)."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            try:
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=APT_SECONDS
                )
            except (OSError, subprocess.TimeoutExpired) as failure:
                pytest.fail(f"test setup: `{' '.join(command)}` could not run: {failure}")
            if done.returncode != 0:
                pytest.fail(
                    f"test setup: `{' '.join(command)}` exited {done.returncode} (it needs root "
                    f"and Debian's package archive):\n{_tail(done.stdout + done.stderr)}"
                )
    if not CHROMIUM.exists():
        pytest.fail(f"test setup: `apt-get install -y chromium` did not provide {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(scope="module")
def promo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated business run through the real pipeline (`python -m pipelines.run` in a child
    process), which publishes every mart and, training and promoting a first model, ml tables."""
    home = tmp_path_factory.mktemp("browser_home")
    simulate(home, BUSINESS, progress=None)
    env = {
        **os.environ,
        "PROMO_HOME": str(home),
        "PROMO_WAREHOUSE": str(home / "warehouse" / "build.duckdb"),
        "DAGSTER_HOME": str(home / "dagster"),
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIPELINE_SECONDS,
    )
    assert done.returncode == 0, f"the pipeline failed:\n{_tail(done.stdout + done.stderr)}"
    published = home / "warehouse" / "published.duckdb"
    assert published.exists(), f"the pipeline published nothing at {published}"
    assert fraud_queue(home), "the pipeline published an empty fraud review queue"
    return home


@pytest.fixture(scope="module")
def console(promo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`streamlit run` on a free loopback port, as `make console` runs it; stopped whatever
    happens. Its output goes to a log file that the test reads at the end."""
    log_path = tmp_path_factory.mktemp("console_log") / "streamlit.log"
    try:
        with running_console(promo_home, log_path) as base:
            yield Console(base, log_path)
    except RuntimeError as failure:
        pytest.fail(str(failure))


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


# --- the test --------------------------------------------------------------------------------


def test_every_page_opens_without_errors_and_a_fraud_item_can_be_marked(
    console: Console, browser, promo_home: Path, tmp_path: Path
) -> None:
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    tab = context.new_page()
    try:
        for path, title in pages():
            open_page(tab, console.base, path, title)
            if not path:
                assert_navigation_lists_every_page(tab)
            assert_no_errors(tab, title)
            screenshot(tab, screenshots / f"{path or 'overview'}.png")

        # `make screenshot`'s code, writing under the test's folder instead of docs/.
        pictures = readme_screenshots(tab, console.base, tmp_path / "readme")
        assert [p.relative_to(tmp_path / "readme") for p in pictures] == [
            file for _, _, file in README_SHOTS
        ]
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)

        open_page(tab, console.base, "fraud_review", "Fraud review")
        mark_top_item_fraud(tab, promo_home)
        assert_no_errors(tab, "Fraud review (after recording a decision)")
        screenshot(tab, screenshots / "fraud_review_after_decision.png")
    finally:
        context.close()

    saved = sorted(p.name for p in screenshots.iterdir())
    assert len(saved) == len(pages()) + 1, saved
    server_log = console.log()
    assert "Traceback" not in server_log, f"the console logged an error:\n{_tail(server_log)}"


# --- pages -----------------------------------------------------------------------------------


def pages() -> list[tuple[str, str]]:
    """(URL path, title) of every page in navigation order; the first opens at `/`."""
    found = []
    for entries in SECTIONS.values():
        for file, title, _icon in entries:
            found.append((Path(file).stem, title))
    found[0] = ("", found[0][1])
    return found


def assert_navigation_lists_every_page(tab) -> None:
    """The sidebar shows the first pages and a "View N more" button for the rest."""
    more = tab.get_by_test_id("stSidebarNavViewButton")
    if more.count() and "more" in more.inner_text():
        more.click()
    # A link's text is its Material icon's name (a font ligature), then its title.
    links = tab.get_by_test_id("stSidebarNavLink").all_inner_texts()
    listed = [text.strip().splitlines()[-1].strip() for text in links if text.strip()]
    missing = [title for _, title in pages() if title not in listed]
    assert not missing, f"the navigation does not list {missing}; it lists {listed}"


def assert_no_errors(tab, title: str) -> None:
    exceptions = tab.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{title}: an exception is shown: {_texts(exceptions)}"
    errors = tab.locator('[data-testid="stAlertContentError"]')
    if title not in HEALTH_ALERT_PAGES:
        assert errors.count() == 0, f"{title}: an error is shown: {_texts(errors)}"
    text = tab.locator('[data-testid="stApp"]').inner_text()
    for broken in BROKEN_PAGE_TEXTS:
        assert broken not in text, f"{title}: the page says {broken!r}:\n{_tail(text)}"


# --- fraud review ----------------------------------------------------------------------------


def fraud_queue(home: Path) -> list[tuple[str, str]]:
    """(flag id, the review form's label for it) of the published queue, as the page orders it."""
    path = home / "warehouse" / "published.duckdb"
    with duckdb.connect(str(path), read_only=True) as db:
        rows = db.execute(
            "SELECT flag_id, score, entity_type, entity_id FROM ml.fraud_review_queue "
            "ORDER BY score DESC, flag_id"
        ).fetchall()
    return [(flag, f"{score:.3f} · {kind} {entity}") for flag, score, kind, entity in rows]


def mark_top_item_fraud(tab, home: Path) -> None:
    """Mark the top item fraud with a note; it must reach the ledger and leave the queue."""
    queue = fraud_queue(home)
    top_flag, top_label = queue[0]
    waiting = waiting_for_review(tab)
    assert waiting == len(queue), f"Fraud review: {waiting} waiting, the queue holds {len(queue)}"
    item = tab.get_by_role("combobox", name="Item")
    assert item.input_value() == top_label, f"Fraud review: the top item is not {top_label!r}"

    form = tab.get_by_test_id("stForm")
    form.get_by_role("textbox", name="Reviewer").fill("Browser test")
    form.get_by_test_id("stRadio").get_by_text("fraud", exact=True).click()
    note = "Marked by the browser test: six redemptions from one device in an hour."
    form.get_by_role("textbox", name="Note").fill(note)
    form.get_by_role("button", name="Record decision").click()

    success = tab.get_by_test_id("stAlertContentSuccess").filter(has_text="Recorded:")
    try:
        success.wait_for(state="visible")
        wait_for_script(tab)
    except Exception as timeout:
        raise AssertionError(
            f"Fraud review: no confirmation after recording a decision: {timeout}\n"
            f"{_tail(tab.locator('[data-testid=stApp]').inner_text())}"
        ) from None
    assert "is fraud" in success.inner_text(), success.inner_text()

    assert reviews_in_ledger(home) == [(top_flag, "fraud", note, "Browser test")], (
        "Fraud review: the ledger does not hold the one decision just recorded"
    )
    # The item has left the queue: one fewer waiting, and the next one is up for review.
    remaining = queue[1:]
    assert waiting_for_review(tab) == len(remaining), "Fraud review: the queue did not shrink"
    if not remaining:
        tab.get_by_test_id("stAlertContentSuccess").filter(
            has_text="Nothing waiting for review"
        ).wait_for(state="visible")
        return
    shown_count = tab.get_by_test_id("stCaptionContainer").filter(has_text="case(s) shown")
    assert f"{len(remaining)} case(s) shown" in shown_count.inner_text(), (
        "Fraud review: the queue table still counts the reviewed item"
    )
    shown = item.input_value()
    assert shown == remaining[0][1], (
        f"Fraud review: the item selected after the decision is {shown!r}, not the next one "
        f"{remaining[0][1]!r}"
    )


def waiting_for_review(tab) -> int:
    metric = tab.get_by_test_id("stMetric").filter(has_text="Waiting for review")
    return int(metric.get_by_test_id("stMetricValue").inner_text().replace(",", ""))


def reviews_in_ledger(home: Path) -> list[tuple[str, str, str, str]]:
    """(flag id, decision, note, reviewer) of every `fraud_review_recorded` event."""
    with closing(sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True)) as ledger:
        payloads = ledger.execute(
            "SELECT payload FROM events WHERE event_type = 'fraud_review_recorded' ORDER BY seq"
        ).fetchall()
    decoded = [json.loads(payload) for (payload,) in payloads]
    return [(p["flag_id"], p["decision"], p.get("note", ""), p["reviewer"]) for p in decoded]


# --- helpers ---------------------------------------------------------------------------------


def _texts(locator) -> list[str]:
    return [text.strip()[:300] for text in locator.all_inner_texts()]


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
