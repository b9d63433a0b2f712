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

import ctypes
import fcntl
import functools
import hashlib
import math
import mmap
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

SLOT = struct.Struct("<16sd5d")  # key, reusable_after, five values
AFTER = struct.Struct("<d")
VALUES = struct.Struct("<5d")
EMPTY = bytes(16)
# The file starts with a header: the latest time until which any subject is blocked, so that
# "is anyone in back-off?" is one read while nobody is (the usual case).
HEADER = 64
SLOTS = 1 << 16  # 4 MiB; a probe looks at PROBE slots, so a flood of subjects evicts the
PROBE = 8  # stalest of them, never a scan of the table
Values = list[float]
T = TypeVar("T")


# flock through ctypes.PyDLL keeps the GIL: an uncontended lock is taken in a microsecond,
# where fcntl.flock releases the GIL and then waits for it back behind the worker's other
# thread (the writer), up to the interpreter's switch interval, on every request. Only when
# another process holds the lock does the call fall back to a wait that releases the GIL.
try:
    _LIBC_FLOCK = ctypes.PyDLL(None).flock
    _LIBC_FLOCK.argtypes = (ctypes.c_int, ctypes.c_int)
except (OSError, AttributeError):  # not glibc-like: the portable call only
    _LIBC_FLOCK = None


def _lock(fd: int) -> None:
    if _LIBC_FLOCK is None or _LIBC_FLOCK(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) != 0:
        fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd: int) -> None:
    if _LIBC_FLOCK is None or _LIBC_FLOCK(fd, fcntl.LOCK_UN) != 0:
        fcntl.flock(fd, fcntl.LOCK_UN)


@functools.lru_cache(maxsize=65_536)
def subject_key(kind: str, subject: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{subject}".encode(), digest_size=16).digest()


class GuardTable:
    """A fixed-size table of slots; `update` runs a function on some slots under one lock."""

    def __init__(self, path: Path | None, *, slots: int = SLOTS) -> None:
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._slots = slots
        self._size = HEADER + slots * SLOT.size
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

    def update(
        self,
        keys: Sequence[bytes],
        change: Callable[[list[Values]], tuple[T, list[float]]],
    ) -> T:
        """Read the slots of `keys` (zeros when new), let `change` decide, write back.

        `change` gets each key's five values (to change in place) and returns its answer and,
        per key, the time after which that slot may be reused (0: leave the slot as it was).
        """
        with self._thread_lock:
            fd = self._fd
            if fd is not None:
                _lock(fd)
            try:
                places: list[int] = []
                values: list[Values] = []
                for key in keys:
                    index = self._place(key, places)
                    places.append(index)
                    values.append(self._read(index, key))
                answer, reusable = change(values)
                for index, key, slot_values, after in zip(
                    places, keys, values, reusable, strict=True
                ):
                    if after > 0:
                        SLOT.pack_into(
                            self._map, HEADER + index * SLOT.size, key, after, *slot_values
                        )
                return answer
            finally:
                if fd is not None:
                    _unlock(fd)

    def _read(self, index: int, key: bytes) -> Values:
        offset = HEADER + index * SLOT.size
        if self._map[offset : offset + 16] != key:
            return [0.0] * 5
        values = list(VALUES.unpack_from(self._map, offset + 24))
        # A torn or foreign file can hold anything: inf and NaN make the sum non-finite.
        return values if math.isfinite(sum(values)) else [0.0] * 5

    def _place(self, key: bytes, taken: Sequence[int]) -> int:
        """The key's slot, else the stalest of its probe (a never-used slot ends the probe:
        a key is always placed at or before the first of those)."""
        start = int.from_bytes(key[:8], "little")
        table, mask, size = self._map, self._slots - 1, SLOT.size
        best, best_after = -1, math.inf
        for step in range(PROBE):
            index = (start + step) & mask
            offset = HEADER + index * size
            stored = table[offset : offset + 16]
            if stored == key:
                return index
            if index in taken:
                continue
            if stored == EMPTY:
                return index if best < 0 else best
            after = AFTER.unpack_from(table, offset + 16)[0]
            if after < best_after:
                best, best_after = index, after
        return best

    def latest_block(self) -> float:
        """Until when some subject may be blocked (read without the lock: an 8-byte aligned
        word is written whole; a stale answer only sends a check down the slow path)."""
        value = AFTER.unpack_from(self._map, 0)[0]
        return value if math.isfinite(value) else math.inf

    def extend_latest_block(self, until: float) -> None:
        """Called under `update`'s lock when a subject is blocked until `until`."""
        if until > AFTER.unpack_from(self._map, 0)[0]:
            AFTER.pack_into(self._map, 0, until)

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
