"""One supervised OS process: started, signalled and stopped by name, its output in a log file.

Every child is started in its own process group with PR_SET_PDEATHSIG=SIGKILL, so if the process
that owns the stack dies (Ctrl-C, SIGTERM, a crash, even SIGKILL) the kernel kills the
children too: no orphans. Hence the owner must stay alive for the stack's lifetime (the harness
during `run`, the detached supervisor after `feedlab up`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent(nice: int = 0) -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgid(0, 0)
    if nice:
        os.nice(nice)   # before exec: every thread the program starts inherits it


# The kernel's sched_prio_to_weight for nice 0 to 19 (kernel/sched/core.c)
_WEIGHTS = (1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15)


def cpu_weight(nice: int) -> int:
    """The scheduler's weight of a task at `nice` (0 to 19): the cpu.shares (cgroup v1) that
    gives a container the share such a task has against nice-0 ones."""
    if not 0 <= nice < len(_WEIGHTS):
        raise ValueError(f"nice {nice}: a component runs at 0 to 19")
    return _WEIGHTS[nice]


# Linux sends the parent-death signal when the *thread* that forked the child exits, not the
# process: a component restarted by a fault's heal on the chaos thread was SIGKILLed when that
# thread finished its schedule (the heal sweep found redis-1 dead after every campaign). Every
# component is therefore forked by one thread that lives as long as the harness (an executor's
# worker stays alive while idle).
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    log: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    image: str = ""          # the docker runtime's image for it (compose/images/<image>)
    nice: int = 0            # its CPU priority below the others' (a container: cpu.shares, `cpu_weight`)


class ManagedProcess:
    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self._popen: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self) -> None:
        if self.running():
            return
        self.spec.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env}
        with open(self.spec.log, "ab") as log:
            log.write(f"\n--- feedlab: starting {self.name} at {time.ctime()}: {' '.join(self.spec.argv)}\n".encode())
            log.flush()
            try:
                self._popen = _SPAWNER.submit(
                    subprocess.Popen, list(self.spec.argv), stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=self.spec.cwd, env=env,
                    preexec_fn=functools.partial(_die_with_parent, self.spec.nice),
                ).result()
            except FileNotFoundError as exc:
                raise ComponentError(self.name, f"cannot execute {self.spec.argv[0]}: {exc.strerror}") from exc
        self.paused = False

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def state(self) -> str:
        """"running", "paused", "stopped" (never started, or not yet), or "exited(N)"."""
        if self.running():
            return "paused" if self.paused else "running"
        code = self.returncode()
        return "stopped" if code is None else f"exited({code})"

    def signal(self, sig: int) -> None:
        if self.running():
            assert self._popen is not None
            os.killpg(self._popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self.signal(signal.SIGKILL)
            self._popen.wait(timeout=10)
        self.paused = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            if self.paused:
                self.resume()
            self.signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.paused = False

    def log_tail(self, lines: int = 15) -> str:
        try:
            data = self.spec.log.read_bytes()[-20000:].decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (and may be signalled)."""
    try:
        os.kill(int(str(pid)), 0)
        return True
    except (OSError, ValueError):
        return False


class ComponentError(RuntimeError):
    """A component failed to start or to become healthy; says which and where to look."""

    def __init__(self, component: str, problem: str, log: Path | None = None, tail: str = "") -> None:
        self.component, self.problem, self.log, self.tail = component, problem, log, tail
        where = f" (log: {log})" if log else ""
        super().__init__(f"{component}: {problem}{where}")


def wait_until(
    check: Callable[[], bool], *, deadline_s: float, proc: ManagedProcess | None, what: str, interval: float = 0.25
) -> None:
    """Poll `check` until it is true; fail fast if `proc` exits, or after the deadline."""
    end = time.monotonic() + deadline_s
    last_exc: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and not proc.running():
            raise ComponentError(
                proc.name, f"exited with code {proc.returncode()} before {what}", proc.spec.log, proc.log_tail()
            )
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure of a probe just means "not yet"
            last_exc = exc
        time.sleep(interval)
    name = proc.name if proc else what
    detail = f" (last probe error: {last_exc})" if last_exc else ""
    raise ComponentError(
        name, f"not {what} within {deadline_s:.0f} s{detail}", proc.spec.log if proc else None,
        proc.log_tail() if proc else "",
    )
