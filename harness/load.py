"""Runs the Locust workload as its own headless process and watches its CPU.

The generator's health is part of the result: a load process that saturates its core delays
requests and hides latency, so its CPU is sampled every second into generator.jsonl and the
generator checker marks such a run invalid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.records import GENERATOR, GeneratorSample, JsonlWriter
from harness.runtime.process import _die_with_parent

LOCUSTFILE = Path(__file__).resolve().parent.parent / "workloads" / "locustfile.py"


@dataclass(frozen=True, kw_only=True)
class LoadShape:
    """Constant arrival rate: `users` simulated users, each doing `rate_per_user` tasks/s."""

    users: int
    rate_per_user: float
    duration_s: int
    read_weight: int = 30
    write_weight: int = 1

    @property
    def tasks_per_s(self) -> float:
        return self.users * self.rate_per_user


class LoadGenerator:
    def __init__(self, *, run_dir: Path, host: str, shape: LoadShape, graph_users: int, token_secret: str,
                 seed: int) -> None:
        self.run_dir = run_dir
        self.shape = shape
        self.env = {
            **os.environ,
            "FEEDLAB_RUN_DIR": str(run_dir), "FEEDLAB_TOKEN_SECRET": token_secret,
            "FEEDLAB_USERS": str(graph_users), "FEEDLAB_SEED": str(seed),
            "FEEDLAB_RATE_PER_USER": str(shape.rate_per_user),
            "FEEDLAB_READ_WEIGHT": str(shape.read_weight), "FEEDLAB_WRITE_WEIGHT": str(shape.write_weight),
        }
        self.argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
                     "--users", str(shape.users), "--spawn-rate", str(max(1, shape.users)),
                     "--run-time", f"{shape.duration_s}s", "--stop-timeout", "5", "--only-summary",
                     "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        log = open(self.run_dir / "locust.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=self.run_dir, preexec_fn=_die_with_parent)
        self._sampler = threading.Thread(target=self._sample, name="generator-cpu", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        assert self.proc is not None
        with JsonlWriter(self.run_dir / GENERATOR) as out:
            try:
                p = psutil.Process(self.proc.pid)
                p.cpu_percent(None)
                while not self._stop.wait(1.0) and p.is_running():
                    out.write(GeneratorSample(t=time.time(), process="locust", cpu_percent=p.cpu_percent(None)))
            except psutil.NoSuchProcess:
                return

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._stop.set()

    def stop(self) -> None:
        """Ask Locust to stop (it writes its summary), then make sure it is gone."""
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
