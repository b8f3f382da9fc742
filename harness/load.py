"""Runs the Locust workload as its own headless process(es), or as a Locust master and its
generators (`--generators`), and watches their CPU.

The generator's health is part of the result: a load process that saturates its core delays
requests and hides latency, so its CPU is sampled every second into generator.jsonl and the
generator checker marks such a run invalid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from harness.runtime.process import _die_with_parent
from harness.tokens import TokenSource
from records import (
    GENERATOR,
    GENERATORS,
    MACHINE,
    WORKLOAD,
    GeneratorSample,
    JsonlWriter,
    MachineSample,
    read_jsonl,
    write_json,
)
from workloads.arrivals import ArrivalPlan

LOCUSTFILE = Path(__file__).resolve().parent.parent / "workloads" / "locustfile.py"
# A generator of a distributed run (`feedlab generator`): a Locust worker, told its master's address
GENERATOR_ARGV = ["-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--headless", "--loglevel", "WARNING"]


STARTUP_S = 3.0   # Locust's start-up, before the first arrival is due
JOIN_WAIT_S = 120.0   # a distributed run waits this long for every generator to join and be ready
DONE_WAIT_S = 3.0     # and this long, after the drain, for their last records (the rest come as they quit)


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
    workload.json), each load process sending its part of the one plan (every N-th arrival:
    workloads/arrivals.py). Either in `processes` processes on this machine (Locust's own
    multi-process mode, one scheduler user in each), or, with `generators`, as a Locust master
    on 127.0.0.1:`master_port` and that many generator processes (Locust workers: `feedlab
    generator`), of which this starts all but `remote_generators`; the others join from other
    hosts (workloads/distributed.py)."""

    def __init__(self, *, run_dir: Path, host: str, plan: ArrivalPlan, tokens: TokenSource, seed: int,
                 processes: int = 1, listeners: int = 0, generators: int = 0, remote_generators: int = 0,
                 master_port: int = 0, say: Callable[[str], None] = lambda _: None) -> None:
        self.run_dir = run_dir
        self.plan = plan
        self.processes = processes
        self.generators = generators
        self.remote_generators = remote_generators
        self.master_port = master_port
        self.say = say
        write_json(run_dir / WORKLOAD, plan.to_json())
        self.load_start = 0.0
        self.env = {**os.environ, "FEEDLAB_RUN_DIR": str(run_dir), **tokens.locust_env(),
                    "FEEDLAB_SEED": str(seed), "FEEDLAB_PROCESSES": str(processes),
                    "FEEDLAB_LISTENERS": str(listeners)}
        users = generators or processes
        self.argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host,
                     # 0: the plan drains itself (run_plan), so a user left is only idling; a grace
                     # to finish its task waited out in full on every stop (explicit: the
                     # environment's LOCUST_STOP_TIMEOUT must not change it)
                     "--users", str(users), "--spawn-rate", str(users), "--stop-timeout", "0",
                     "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        self.join_key = secrets.token_urlsafe(18)   # what a generator must show to get the run's tokens
        if generators:
            self.env.update(FEEDLAB_ROLE="master", FEEDLAB_GENERATORS=str(generators), FEEDLAB_JOIN_KEY=self.join_key)
            self.argv += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                          "--expect-workers", str(generators), "--expect-workers-max-wait", f"{JOIN_WAIT_S:.0f}"]
        elif processes > 1:
            self.argv += ["--processes", str(processes)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.local_generators: list[subprocess.Popen[bytes]] = []
        self._workdirs: list[Path] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def load_end(self) -> float:
        return self.load_start + self.plan.duration_s

    @property
    def join_command(self) -> str:
        """How a generator joins: the key goes in the environment, where other users of its
        host cannot read it (a command line they can)."""
        return f"FEEDLAB_JOIN_KEY={self.join_key} feedlab generator --master 127.0.0.1:{self.master_port}"

    def start(self) -> float:
        """Start Locust; returns the epoch time the first arrival is due (the load's start). A
        distributed run's start is the master's, once every generator is ready."""
        self.load_start = time.time() + STARTUP_S
        with open(self.run_dir / "locust.log", "ab") as log:   # the child has its own copy
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**self.env, "FEEDLAB_LOAD_START": f"{self.load_start:.6f}"},
                                         cwd=self.run_dir, preexec_fn=_die_with_parent)
        for k in range(self.generators - self.remote_generators):
            self.local_generators.append(self._start_generator(k))
        self._sampler = threading.Thread(target=self._sample, name="generator-cpu", daemon=True)
        self._sampler.start()
        if self.generators:
            self.load_start = self._wait_for_start()
        return self.load_start

    def _start_generator(self, k: int) -> subprocess.Popen[bytes]:
        """One of this machine's generators: `feedlab generator`, as on another host. It gets
        nothing of the run but the master's address and the join key (no run directory, no
        token, its own working directory): all it learns and records goes through the master."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDLAB_")}
        env["FEEDLAB_JOIN_KEY"] = self.join_key
        workdir = Path(tempfile.mkdtemp(prefix="feedlab-generator-cwd-"))
        self._workdirs.append(workdir)
        with open(self.run_dir / f"generator-local-{k}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "harness.cli", "generator", "--master",
                                     f"127.0.0.1:{self.master_port}"], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=workdir, preexec_fn=_die_with_parent)

    def _events(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.run_dir / GENERATORS))

    def _wait_for_start(self) -> float:
        """Until the master has every generator ready and names the start: the start, or an
        error saying which generators did not come, or why one refused."""
        assert self.proc is not None
        if self.remote_generators:
            self.say(f"generators: waiting for {self.remote_generators} to join from other hosts: run "
                     f"`{self.join_command}` on each (reaching 127.0.0.1:{self.master_port} here, e.g. through "
                     f"`ssh -L`)")
        deadline = time.time() + JOIN_WAIT_S
        next_note = time.time() + 10
        while True:
            events = self._events()
            for e in events:
                if e["event"] == "start":
                    self.say(f"generators: {self.generators} ready; the load starts in "
                             f"{e['load_start_t'] - time.time():.1f} s")
                    return float(e["load_start_t"])
                if e["event"] == "refused":
                    raise RuntimeError(f"{e['generator']} refused the run: {e['detail']}")
            joined = [e["generator"] for e in events if e["event"] == "joined"]
            for k, local in enumerate(self.local_generators):
                if local.poll() is not None:
                    raise RuntimeError(f"generator {k} of this machine exited (code {local.returncode}) before the "
                                       f"start; see {self.run_dir / f'generator-local-{k}.log'}")
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Locust master exited (code {self.proc.returncode}) with {len(joined)} of "
                                   f"{self.generators} generator(s) ready; see {self.run_dir / 'locust.log'}")
            if time.time() > deadline:
                raise RuntimeError(f"{len(joined)} of {self.generators} generator(s) ready after {JOIN_WAIT_S:.0f} s"
                                   f" (`{self.join_command}` joins one); see {self.run_dir / 'locust.log'}")
            if time.time() >= next_note:
                next_note += 10
                self.say(f"generators: {len(joined)} of {self.generators} ready")
            time.sleep(0.25)

    def _sample(self) -> None:
        """CPU of the Locust process and of each worker process it forked, and of the whole
        machine (steal included), once a second. A distributed run's generators sample their
        own CPU and send it with their records."""
        assert self.proc is not None
        watched: dict[int, tuple[str, psutil.Process]] = {}
        machine = MachineCpu()
        with JsonlWriter(self.run_dir / GENERATOR) as out, JsonlWriter(self.run_dir / MACHINE) as machine_out:
            try:
                main = psutil.Process(self.proc.pid)
                watched[main.pid] = ("locust" if self.processes == 1 and not self.generators else "locust-master",
                                     main)
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

    def _wait_for_generators_done(self) -> None:
        """Every generator that joined has sent its last records (or was lost), or DONE_WAIT_S passed."""
        deadline = time.time() + DONE_WAIT_S
        while time.time() < deadline and self.proc is not None and self.proc.poll() is None:
            events = self._events()
            joined = {e["generator"] for e in events if e["event"] == "joined"}
            ended = {e["generator"] for e in events if e["event"] in ("done", "lost")}
            if joined <= ended:
                return
            time.sleep(0.25)

    def stop(self) -> None:
        """Ask Locust to stop (it writes its summary), then make sure it is gone; a distributed
        run's master first gets every generator's last records."""
        if self.generators and self.load_start and time.time() >= self.load_end:   # not when cut short
            self._wait_for_generators_done()
        self._stop.set()
        for proc in [self.proc, *self.local_generators]:   # the master first: it tells its generators to quit
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for workdir in self._workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
