"""Snowflake ids: 41-bit milliseconds since EPOCH_MS, 5-bit datacenter, 5-bit machine, 12-bit sequence.

Monotonic per process: if the wall clock steps back, ids keep counting from the last
millisecond used (sequence overflow borrows the next millisecond) rather than repeating.
"""

from __future__ import annotations

import threading
import time

EPOCH_MS = 1288834974657  # Twitter's epoch, so ids look like the design's examples
_SEQ_BITS = 12
_MACHINE_BITS = 5
_DC_BITS = 5
_MAX_SEQ = (1 << _SEQ_BITS) - 1


class Snowflake:
    def __init__(self, datacenter_id: int, machine_id: int) -> None:
        if not (0 <= datacenter_id < 32 and 0 <= machine_id < 32):
            raise ValueError("datacenter_id and machine_id must be within [0, 31]")
        self._node = (datacenter_id << (_SEQ_BITS + _MACHINE_BITS)) | (machine_id << _SEQ_BITS)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._seq = 0

    def next_id(self) -> int:
        with self._lock:
            now = int(time.time() * 1000) - EPOCH_MS
            if now > self._last_ms:
                self._last_ms, self._seq = now, 0
            else:  # same millisecond, or the clock went back: stay on the last one
                self._seq += 1
                if self._seq > _MAX_SEQ:
                    self._last_ms, self._seq = self._last_ms + 1, 0
            return (self._last_ms << (_SEQ_BITS + _MACHINE_BITS + _DC_BITS)) | self._node | self._seq


def timestamp_ms(tweet_id: int) -> int:
    """Milliseconds since the UNIX epoch at which `tweet_id` was made."""
    return (tweet_id >> (_SEQ_BITS + _MACHINE_BITS + _DC_BITS)) + EPOCH_MS


def first_id_at(unix_ms: int) -> int:
    """The smallest id made at `unix_ms` (milliseconds since the UNIX epoch): every id made
    earlier is below it."""
    return max(0, unix_ms - EPOCH_MS) << (_SEQ_BITS + _MACHINE_BITS + _DC_BITS)
