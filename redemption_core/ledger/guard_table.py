"""The guard's live state, shared by every process on the machine: a small hash table in a
memory-mapped file under PROMO_HOME (`run/guard.table`), locked with flock.

Why not the ledger: a rate limit is checked on every request, and a write transaction per
request would put every validation behind the redemptions' fsyncs. Why not memory of each
process: with several API workers one client would get each worker's allowance. A flock
waiter is woken by the kernel when the lock frees (SQLite's busy handler sleeps and retries,
which adds milliseconds under contention), and the critical section is a few microseconds.

Each slot holds a 16-byte key (a digest of the subject), the time after which the slot may be
reused, and five numbers the guard gives meaning to (a GCRA arrival time, or a MissState).
The state is advisory: a lost or torn slot costs a subject its count, never a ledger event,
so the file needs no fsync and is rebuilt empty when it is missing or of another size.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

SLOT = struct.Struct("<16sd5d")  # key, reusable_after, five values
SLOTS = 1 << 16  # 4 MiB; a probe looks at PROBE slots, so a flood of subjects evicts the
PROBE = 16  # stalest of them, never a scan of the table
Values = list[float]
T = TypeVar("T")


def subject_key(kind: str, subject: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{subject}".encode(), digest_size=16).digest()


class GuardTable:
    """A fixed-size table of slots; `update` runs a function on some slots under one lock."""

    def __init__(self, path: Path | None, *, slots: int = SLOTS) -> None:
        self._slots = slots
        self._size = slots * SLOT.size
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing an fd
        self._fd: int | None = None
        if path is None:  # one process only: an anonymous map
            self._map = mmap.mmap(-1, self._size)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size != self._size:
                os.ftruncate(self._fd, 0)  # another layout or a torn file: start empty
                os.ftruncate(self._fd, self._size)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, self._size)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                yield
                return
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def update(
        self,
        keys: Sequence[bytes],
        change: Callable[[list[Values]], tuple[T, list[float]]],
    ) -> T:
        """Read the slots of `keys` (zeros when new), let `change` decide, write back.

        `change` gets each key's five values (to change in place) and returns its answer and,
        per key, the time after which that slot may be reused (0: leave the slot as it was).
        """
        with self._locked():
            places: list[int] = []
            for key in keys:
                places.append(self._place(key, places))
            values = [self._read(index, key) for index, key in zip(places, keys, strict=True)]
            answer, reusable = change(values)
            for index, key, slot_values, after in zip(places, keys, values, reusable, strict=True):
                if after > 0:
                    self._map[index * SLOT.size : (index + 1) * SLOT.size] = SLOT.pack(
                        key, after, *slot_values
                    )
            return answer

    def _read(self, index: int, key: bytes) -> Values:
        stored, _, *values = SLOT.unpack_from(self._map, index * SLOT.size)
        if stored != key or not all(math.isfinite(v) for v in values):
            return [0.0] * 5
        return values

    def _place(self, key: bytes, taken: Sequence[int]) -> int:
        """The key's slot, else the stalest of its probe (free slots are stalest of all)."""
        start = int.from_bytes(key[:8], "little") % self._slots
        best, best_after = -1, math.inf
        for step in range(PROBE):
            index = (start + step) % self._slots
            stored, after = struct.unpack_from("<16sd", self._map, index * SLOT.size)
            if stored == key:
                return index
            if index not in taken and after < best_after:
                best, best_after = index, after
        return best

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
