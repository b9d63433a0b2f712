"""Helpers for the HTTP API tests: a real `promo serve` (uvicorn, worker processes) on a free
loopback port over a ledger in a temporary PROMO_HOME, keys for it, and a small client.

The server is a process group of its own; `stop` ends that group (SIGTERM, then SIGKILL), so a
test never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from redemption_core.domain.access import KeyKind
from redemption_core.engine.redemption import RedemptionEngine

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`python -m redemption_core.cli serve` on 127.0.0.1; `url` is its /v1 base."""

    def __init__(
        self,
        home: Path,
        *,
        workers: int = 2,
        limits: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        if limits is not None:
            (home / "limits.yaml").write_text(yaml.safe_dump(dict(limits)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = home / "serve.log"
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "redemption_core.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env={**os.environ, "PROMO_HOME": str(home), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(workers)

    def wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server stopped: {self.log.read_text()}")
            try:
                # The supervisor listens once a worker has started; wait for every worker.
                up = httpx.get(f"{self.url}/health", timeout=1).status_code == 200
                if up and (workers == 1 or len(self.worker_pids()) >= workers):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not start: {self.log.read_text()}")

    def worker_pids(self) -> list[int]:
        """The worker processes (children of uvicorn's supervisor that serve requests)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers are in the same process group; make sure none outlives the supervisor.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def issue_key(
    home: Path,
    role: str | None = "ADMIN",
    *,
    kind: KeyKind = KeyKind.SERVER,
    stores: Iterable[str] = (),
) -> str:
    with RedemptionEngine.open(home) as engine:
        return engine.issue_key(role, kind=kind, stores=list(stores)).token


def headers(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    found = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        found["Idempotency-Key"] = idempotency_key
    return found


def cart(amount: int = 5000, order_id: str | None = None) -> dict[str, Any]:
    order: dict[str, Any] = {
        "currency": "EUR",
        "items": [{"product_id": "burger", "quantity": 1, "unit_price": amount}],
    }
    if order_id is not None:
        order["id"] = order_id
    return order
