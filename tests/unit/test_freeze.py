"""The freeze watch: a process stopped as a whole (SIGSTOP) is told from one that only waited,
which is what decides whether a counter lane may checkpoint after a long iteration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targets.feed.freeze import FreezeWatch
from targets.feed.worker import MAX_POLL_INTERVAL_MS, may_have_lost_partitions

ROOT = Path(__file__).resolve().parents[2]   # the repository, whatever the working directory

# A process with a watch: it says "ready", sleeps 1.5 s (waiting, as on a store), prints the
# longest gap, then sleeps 2 s (during which the test may freeze it) and prints it again.
_WATCHED = """
import sys, time
from targets.feed.freeze import FreezeWatch
watch = FreezeWatch()
print("ready", flush=True)
time.sleep(1.5)
print(f"{watch.take():.3f}", flush=True)
time.sleep(2.0)
print(f"{watch.take():.3f}", flush=True)
"""


def test_the_longest_gap_is_taken_and_forgotten() -> None:
    now = [0.0]
    watch = FreezeWatch(clock=lambda: now[0], tick_s=3600)   # its own thread never ticks here
    for t in (0.1, 0.2, 3.2, 3.3):
        now[0] = t
        watch.tick()
    assert watch.take() == pytest.approx(3.0)
    now[0] = 3.4
    assert watch.take() == pytest.approx(0.1)   # the gap still open since the last tick


def test_a_gap_not_closed_by_a_tick_yet_counts() -> None:
    """Woken from a freeze, the lane may ask before the ticking thread has run again."""
    now = [0.0]
    watch = FreezeWatch(clock=lambda: now[0], tick_s=3600)
    now[0] = 7.0
    assert watch.take() == pytest.approx(7.0)


def test_a_process_stopped_with_sigstop_is_seen_frozen_and_one_that_waited_is_not() -> None:
    with subprocess.Popen([sys.executable, "-c", _WATCHED], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            waited = float(proc.stdout.readline())
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(2.5)
            os.kill(proc.pid, signal.SIGCONT)
            frozen = float(proc.stdout.readline())
        finally:
            proc.kill()
    assert waited < 0.5, waited
    assert frozen >= 2.0, frozen


def test_only_a_freeze_or_a_poll_missed_for_long_may_lose_partitions() -> None:
    session = 10.0
    assert not may_have_lost_partitions(frozen_s=0.2, iteration_s=15.0, session_timeout_s=session)   # waited on Redis
    assert may_have_lost_partitions(frozen_s=6.0, iteration_s=6.0, session_timeout_s=session)
    assert may_have_lost_partitions(frozen_s=0.2, iteration_s=MAX_POLL_INTERVAL_MS / 1000, session_timeout_s=session)
