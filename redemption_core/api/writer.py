"""One writer per worker process: every write of the worker goes through one thread and one
engine, and concurrent redemptions are gathered into one durable transaction.

Requests put their work on a queue and await it; the thread takes everything that waits,
redeems all the redemptions among it with one `redeem_many` (one transaction, one fsync, each
request checked against the state the ones before it left) and runs the other writes one by
one. Each request is answered only after the transaction that holds its event has committed.
Validation events read on the worker's other engine are handed here and ride along with the
next transaction (or are written when the oldest has waited `max_age_s`).

Between the worker processes of one machine, the write transactions queue on a lock file
(flock), whose waiters the kernel wakes as it frees; SQLite's own busy handler would sleep
and retry, which under steady load leaves the ledger idle between commits. Processes that do
not take the lock (the CLI) still serialise with the workers through BEGIN IMMEDIATE.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redemption_core.domain.events import Event
from redemption_core.engine.redemption import RedeemRequest, RedemptionEngine, RedemptionResult

MAX_BATCH = 1024


@dataclass(slots=True)
class _Work:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    redeem: RedeemRequest | None = None
    call: Callable[[], Any] | None = None
    context: contextvars.Context | None = None
    events: list[Event] = field(default_factory=list)


class Writer:
    def __init__(
        self,
        engine: RedemptionEngine,
        *,
        lock_path: Path | None = None,
        max_batch: int = MAX_BATCH,
        max_age_s: float = 0.2,
    ) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Work | list[Event] | None] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._max_age_s = max_age_s
        self._lock_fd: int | None = None
        if lock_path is not None:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    # -- what requests call --------------------------------------------------------------------
    async def redeem(self, request: RedeemRequest) -> RedemptionResult:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Work(loop, future, redeem=request))
        return await future

    async def call(self, function: Callable[[], Any]) -> Any:
        """Run `function` (engine writes) on the writer thread, in this request's context
        (so that the ledger records who acted)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Work(loop, future, call=function, context=contextvars.copy_context()))
        return await future

    def defer(self, events: list[Event]) -> None:
        """Validation events from the reading engine: written with the next transaction."""
        self._queue.put(events)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.engine.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    # -- the thread ----------------------------------------------------------------------------
    @contextmanager
    def _machine_lock(self) -> Iterator[None]:
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _run(self) -> None:
        engine = self.engine
        while True:
            try:
                first = self._queue.get(timeout=self._max_age_s)
            except queue.Empty:
                self._flush_deferred()
                continue
            if first is None:
                self._flush_deferred()
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            redeems: list[_Work] = []
            calls: list[_Work] = []
            for item in batch:
                if isinstance(item, list):
                    engine.defer(item)
                elif item.redeem is not None:
                    redeems.append(item)
                else:
                    calls.append(item)
            if redeems:
                self._redeem(redeems)
            for work in calls:
                self._call(work)
            self._flush_if_due()
            if stop:
                self._flush_deferred()
                return

    def _redeem(self, works: list[_Work]) -> None:
        try:
            with self._machine_lock():
                results: list[Any] = self.engine.redeem_many([w.redeem for w in works])  # type: ignore[misc]
        except BaseException as error:  # the transaction failed whole: every request hears it
            results = [error] * len(works)
        _answer(works, results)

    def _call(self, work: _Work) -> None:
        assert work.call is not None and work.context is not None
        try:
            with self._machine_lock():
                result: Any = work.context.run(work.call)
        except BaseException as error:
            result = error
        _answer([work], [result])

    def _flush_if_due(self) -> None:
        if not self.engine.deferred:
            return
        try:
            with self._machine_lock():
                self.engine.flush_if_due()
        except Exception:
            time.sleep(0.01)

    def _flush_deferred(self) -> None:
        if not self.engine.deferred:
            return
        try:
            with self._machine_lock():
                self.engine.flush()
        except Exception:
            time.sleep(0.01)


def _answer(works: list[_Work], results: list[Any]) -> None:
    """Resolve each request's future on its own loop, one wake-up per loop for the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
    for work, result in zip(works, results, strict=True):
        by_loop.setdefault(work.loop, []).append((work.future, result))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
