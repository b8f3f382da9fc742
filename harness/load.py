"""Runs the Locust workload as its own headless process(es) and watches their CPU.

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
from pathlib import Path

import psutil

from harness.runtime.process import _die_with_parent
from harness.tokens import TokenSource
from records import GENERATOR, MACHINE, WORKLOAD, GeneratorSample, JsonlWriter, MachineSample, write_json
from workloads.arrivals import ArrivalPlan

LOCUSTFILE = Path(__file__).resolve().parent.parent / "workloads" / "locustfile.py"


STARTUP_S = 3.0   # Locust's start-up, before the first arrival is due


class MachineCpu:
    """The machine's CPU between two calls, from the kernel's counters (psutil.cpu_times)."""

    def __init__(self) -> None:
        self._last = psutil.cpu_times()

    def sample(self, t: float) -> MachineSample:
        now = psutil.cpu_times()
        delta = {f: getattr(now, f) - getattr(self._last, f) for f in now._fields}
        self._last = now
        total = sum(delta.values()) or 1.0
        idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
        steal = delta.get("steal", 0.0)
        return MachineSample(t=t, busy_percent=100 * (total - idle) / total, steal_percent=100 * steal / total)


class LoadGenerator:
    """Locust, headless, running the scenario's arrival plan (written to the run directory as
    workload.json) in `processes` processes: Locust's own multi-process mode, one scheduler
    user in each, each sending its part of the one plan (every N-th arrival: workloads/arrivals.py)."""

    def __init__(self, *, run_dir: Path, host: str, plan: ArrivalPlan, tokens: TokenSource, seed: int,
                 processes: int = 1, listeners: int = 0) -> None:
        self.run_dir = run_dir
        self.plan = plan
        self.processes = processes
        write_json(run_dir / WORKLOAD, plan.to_json())
        self.load_start = 0.0
        self.env = {**os.environ, "FEEDLAB_RUN_DIR": str(run_dir), **tokens.locust_env(),
                    "FEEDLAB_SEED": str(seed), "FEEDLAB_PROCESSES": str(processes),
                    "FEEDLAB_LISTENERS": str(listeners)}
        self.argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
                     "--users", str(processes), "--spawn-rate", str(processes), "--stop-timeout", "5",
                     "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        if processes > 1:
            self.argv += ["--processes", str(processes)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def load_end(self) -> float:
        return self.load_start + self.plan.duration_s

    def start(self) -> float:
        """Start Locust; returns the epoch time the first arrival is due (the load's start)."""
        self.load_start = time.time() + STARTUP_S
        log = open(self.run_dir / "locust.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**self.env, "FEEDLAB_LOAD_START": f"{self.load_start:.6f}"},
                                     cwd=self.run_dir, preexec_fn=_die_with_parent)
        self._sampler = threading.Thread(target=self._sample, name="generator-cpu", daemon=True)
        self._sampler.start()
        return self.load_start

    def _sample(self) -> None:
        """CPU of the Locust process and of each worker process it forked, and of the whole
        machine (steal included), once a second."""
        assert self.proc is not None
        watched: dict[int, tuple[str, psutil.Process]] = {}
        machine = MachineCpu()
        with JsonlWriter(self.run_dir / GENERATOR) as out, JsonlWriter(self.run_dir / MACHINE) as machine_out:
            try:
                main = psutil.Process(self.proc.pid)
                watched[main.pid] = ("locust" if self.processes == 1 else "locust-master", main)
                main.cpu_percent(None)
                while not self._stop.wait(1.0) and main.is_running():
                    for child in main.children():
                        if child.pid not in watched:
                            watched[child.pid] = (f"locust-worker-{len(watched)}", child)
                            child.cpu_percent(None)
                    now = time.time()
                    machine_out.write(machine.sample(now))
                    for name, proc in list(watched.values()):
                        try:
                            out.write(GeneratorSample(t=now, process=name, cpu_percent=proc.cpu_percent(None)))
                        except psutil.NoSuchProcess:
                            watched.pop(proc.pid, None)
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
