"""When faults happen: each scheduled fault on its own clock (Jepsen's nemesis generators).

A fault is invoked at `at` seconds into the load and healed `heal_after` seconds after its
invoke returned; with `every` it happens again every `every` seconds from `at` while the load
runs; with a `seed` as well, the gaps are random (uniform, averaging `every`) and the same for
the same seed. Several faults run at once, each in its own thread. `heal_all` stops every clock
and heals whatever is still broken, at most once each; an invoke that failed half-way is healed
too. The campaign always calls it (Ctrl-C, SIGTERM and errors included).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from chaos.fault import Fault
from records import FaultWindow

Say = Callable[[str], None]
JOIN_S = 180.0   # an invoke still running at the end gets this long (a Cassandra restart takes ~60 s)


class Planned(Protocol):
    """One scheduled fault, as a scenario gives it (workloads.scenario.Fault)."""

    action: str
    target: str
    at: float
    heal_after: float
    every: float | None
    seed: int | None
    params: dict[str, Any]


def start_times(p: Planned, until: float) -> list[float]:
    """Seconds into the load at which `p` is invoked (before `until`)."""
    times, t = [], p.at
    rng = random.Random(p.seed) if p.seed is not None else None
    while t < until:
        times.append(t)
        if p.every is None:
            break
        if rng is None:
            t += p.every
        else:   # a gap of heal_after plus a random rest, averaging `every`
            t += p.heal_after + rng.uniform(0, 2 * (p.every - p.heal_after))
    return times


class FaultSchedule:
    def __init__(self, planned: Sequence[Planned], make: Callable[[Planned], Fault], *, load_start: float,
                 load_duration: float, say: Say) -> None:
        self.planned = list(planned)
        self.make = make
        self.load_start = load_start
        self.load_duration = load_duration
        self.say = say
        self.errors: list[str] = []
        self._faults: list[Fault] = []     # every fault whose invoke began, in that order
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._clock, args=(p,), name=f"chaos-{i}-{p.action}", daemon=True)
                         for i, p in enumerate(planned)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _clock(self, p: Planned) -> None:
        for at in start_times(p, self.load_duration):
            if self._stop.wait(max(0.0, self.load_start + at - time.time())):
                return
            try:
                fault = self.make(p)
            except Exception as exc:  # noqa: BLE001 - recorded; the other clocks go on
                self._error(f"{p.action} @ {p.target}: cannot build: {exc}")
                return
            with self._lock:
                self._faults.append(fault)
            self.say(f"chaos: {fault.name} @ {p.target} invoking")
            try:
                fault.invoke()
                self.say(f"chaos: {fault.name} @ {fault.window.target}: {fault.window.events[-1]['what']}")
            except Exception as exc:  # noqa: BLE001 - recorded; heal still runs
                fault.window.event("invoke-failed", error=str(exc))
                if fault.window.start_t is None:
                    fault.window.start_t = time.time()
                self._error(f"{fault.name} @ {p.target}: {exc}")
            if self._stop.wait(p.heal_after):
                return
            self._heal(fault)

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
        self.say(f"chaos: {message}")

    def _heal(self, fault: Fault) -> None:
        if fault.window.end_t is not None:
            return
        try:
            fault.heal()
            if fault.window.end_t is None:   # it never acted (its invoke failed before it could)
                fault.window.end_t = time.time()
            self.say(f"chaos: {fault.name} @ {fault.window.target} healed")
        except Exception as exc:  # noqa: BLE001
            fault.window.event("heal-failed", error=str(exc))
            self._error(f"heal {fault.name} @ {fault.window.target}: {exc}")

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def active(self) -> list[str]:
        """Faults invoked and not yet healed, as "name @ target"."""
        return [f"{f.name} @ {f.window.target}" for f in self.faults() if f.window.end_t is None]

    def windows(self) -> list[FaultWindow]:
        return [f.window for f in self.faults()]

    def heal_all(self) -> None:
        """Stop every clock, then heal whatever is still broken."""
        self._stop.set()
        deadline = time.monotonic() + JOIN_S
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=max(0.0, deadline - time.monotonic()))
        for fault in self.faults():
            self._heal(fault)
