"""`make screenshot`: the README's picture of the console, taken from the warehouse under
PROMO_HOME (run `make demo` first), so that it shows the console as it is built now.

The console runs as `make console` runs it, on a free loopback port, and Debian's chromium
(`apt-get install -y chromium`; never a browser downloaded by `playwright install`) draws the
page. The browser test (tests/test_console_browser.py) drives pages with the same functions.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}
CONSOLE_START_SECONDS = 90
# The pictures the README shows: (page path, page title, file under the repository).
README_SHOTS = (
    ("campaign_performance", "Campaign performance", Path("docs/images/campaign-performance.png")),
)


@contextmanager
def running_console(home: Path, log_path: Path) -> Iterator[str]:
    """`streamlit run` on a free loopback port over `home`; yields its base URL and stops it
    (terminate, then kill) whatever happens. Its output goes to `log_path`."""
    port = free_port()
    env = {**os.environ, "PROMO_HOME": str(home), "DO_NOT_TRACK": "1"}
    env.pop("PROMO_WAREHOUSE", None)
    command = [
        sys.executable, "-m", "streamlit", "run", "app_streamlit/streamlit_app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base, server, log_path)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def open_page(tab: Any, base: str, path: str, title: str) -> None:
    """Load a page and wait until its script has run to the end and the browser has drawn it."""
    tab.goto(f"{base}/{path}", wait_until="domcontentloaded")
    heading = tab.locator("h1").filter(has_text=title)
    try:
        heading.first.wait_for(state="visible")
        wait_for_script(tab)
    except Exception as timeout:
        raise AssertionError(f"{title}: the page did not finish loading: {timeout}") from None


def wait_for_script(tab: Any) -> None:
    """The app's root says whether the script is running; the status widget shows while it does."""
    tab.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        state="attached"
    )
    tab.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    tab.locator('[data-testid="stSkeleton"]').first.wait_for(state="hidden")
    # Charts draw after the script ends: wait until each visible one (not those on a tab that
    # is not open) has its canvas or SVG.
    tab.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
                 .filter(chart => chart.checkVisibility())
                 .every(chart => chart.querySelector('canvas, svg'))"""
    )


def screenshot(tab: Any, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main container, not the document, so the
    viewport is made as tall as the content for the shot, then put back."""
    height = tab.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
                 '[data-testid="stMain"], [data-testid="stSidebarContent"]')]
                 .map(element => element.scrollHeight), window.innerHeight)"""
    )
    tab.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), 12_000)})
    try:
        wait_for_script(tab)
        tab.screenshot(path=str(path), full_page=True)
    finally:
        tab.set_viewport_size(VIEWPORT)


def readme_screenshots(tab: Any, base: str, root: Path) -> list[Path]:
    """Take every README picture with an open browser tab; returns the files written."""
    written = []
    for path, title, file in README_SHOTS:
        open_page(tab, base, path, title)
        target = root / file
        target.parent.mkdir(parents=True, exist_ok=True)
        screenshot(tab, target)
        written.append(target)
    return written


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(base: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + CONSOLE_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"the console exited {server.returncode} at start:\n{tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the console did not answer on {base} within {CONSOLE_START_SECONDS} s:\n{tail(log_path)}"
    )


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def main() -> int:
    from playwright.sync_api import sync_playwright

    home = Path(os.environ.get("PROMO_HOME") or "data").resolve()
    if not (home / "warehouse" / "published.duckdb").exists():
        print(f"error: no published warehouse under {home}: run `make demo` first", file=sys.stderr)
        return 2
    if not CHROMIUM.exists():
        print(f"error: no {CHROMIUM}: `apt-get install -y chromium` (as root)", file=sys.stderr)
        return 2
    log_path = home / "screenshot-console.log"
    with running_console(home, log_path) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            tab = browser.new_context(viewport=VIEWPORT).new_page()
            tab.set_default_timeout(60_000)
            for written in readme_screenshots(tab, base, REPO):
                print(f"wrote {written.relative_to(REPO)}")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
