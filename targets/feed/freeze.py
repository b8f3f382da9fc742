"""Whether this process was frozen: stopped as a whole (SIGSTOP, a container pause, a long
stop-the-world), not merely waiting on a store.

The difference matters to a Kafka consumer. librdkafka heartbeats from a thread of its own, so
a lane blocked for seconds on Redis or Cassandra keeps its partitions (until
max.poll.interval.ms); a process frozen for a session's length does not, and on waking it may
act on partitions that are someone else's already. Only the second calls for caution.

A thread ticks every TICK_S; a gap between two of its ticks far above that means every thread
of the process was held. It is no stop-the-world detector for GIL holders (a C call that holds
the GIL for seconds shows as a freeze too, which errs on the safe side).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

TICK_S = 0.1


class FreezeWatch:
    """The longest time the process was held, since the last `take`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, tick_s: float = TICK_S) -> None:
        self._clock = clock
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._last_tick = clock()
        self._longest = 0.0
        threading.Thread(target=self._run, name="freeze-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self._tick_s)
            self.tick()

    def tick(self) -> None:
        now = self._clock()
        with self._lock:
            self._longest = max(self._longest, now - self._last_tick)
            self._last_tick = now

    def take(self) -> float:
        """The longest gap between ticks since the last call, counting the one still open: a
        thread woken from a freeze may ask before the ticking thread has run again."""
        now = self._clock()
        with self._lock:
            longest = max(self._longest, now - self._last_tick)
            self._longest = 0.0
        return longest
