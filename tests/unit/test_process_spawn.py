"""A component started from a thread that then ends must outlive that thread (the parent-death
signal is per thread on Linux): a fault's heal restarts components on the chaos thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.runtime.process import ManagedProcess, ProcessSpec

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
