"""A component started from a thread that then ends must outlive that thread (the parent-death
signal is per thread on Linux): a fault's heal restarts components on the chaos thread."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from harness.runtime.process import ManagedProcess, ProcessSpec, cpu_weight

pytestmark = pytest.mark.unit


def test_a_process_started_on_a_short_lived_thread_survives_it(tmp_path: Path) -> None:
    proc = ManagedProcess(ProcessSpec("sleeper", ["sleep", "30"], tmp_path / "sleeper.log"))
    starter = threading.Thread(target=proc.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.5)   # the death signal, if any, is immediate
        assert proc.running(), f"exited with {proc.returncode()}"
    finally:
        proc.kill()
    assert not proc.running()


def test_a_process_started_at_a_lower_priority_and_its_threads_run_there(tmp_path: Path) -> None:
    """The fan-out workers run at WORKER_NICE: set in the child before exec, so the threads the
    program starts later (librdkafka's) inherit it."""
    script = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"
    proc = ManagedProcess(ProcessSpec("lower", [sys.executable, "-c", script], tmp_path / "lower.log", nice=5))
    proc.start()
    try:
        assert proc.pid is not None and eventually_threads(proc.pid, 2)
        expected = min(19, os.nice(0) + 5)   # relative to the harness's own
        assert {psutil.Process(t.id).nice() for t in psutil.Process(proc.pid).threads()} == {expected}
    finally:
        proc.kill()


def eventually_threads(pid: int, n: int) -> bool:
    for _ in range(100):
        if psutil.Process(pid).num_threads() >= n:
            return True
        time.sleep(0.05)
    return False


def test_a_container_s_cpu_shares_weigh_as_a_process_at_that_priority() -> None:
    """The kernel's sched_prio_to_weight table: each nice step is about 1.25 times less."""
    assert [cpu_weight(n) for n in (0, 1, 5, 10, 19)] == [1024, 820, 335, 110, 15]
    assert all(1.19 < cpu_weight(n) / cpu_weight(n + 1) < 1.29 for n in range(19))
    with pytest.raises(ValueError, match="nice 20"):
        cpu_weight(20)
