"""When each request is due: the open workload model, without any I/O (so it is unit-tested).

A scenario's phases give each operation an arrival rate that may ramp between phases. The
load generator sends a request at each arrival whatever happened to the earlier ones (an open
model, like k6's arrival-rate executors and wrk2): a slow target makes requests pile up, it
does not slow the arrivals down, and latency is measured from the arrival (the *intended* send
time), so a stall is charged to every request that waited behind it (no coordinated omission).

Arrivals of each operation form a Poisson process with rate λ(t), drawn by thinning (Lewis and
Shedler): candidates at the operation's peak rate, each kept with probability λ(t) / peak. A
generator split over N processes splits one plan exactly: each process draws the whole sequence
from the same seed and sends every N-th arrival, so N processes send the arrivals one would.
(Each drawing a thinned process of its own, at the rates × 1/N, gave the same load on average
but a different one for every N.)
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class PhaseSpan:
    name: str
    start_s: float
    end_s: float
    ramp_s: float
    rates: dict[str, float]
    previous: dict[str, float]   # the rates ramped from (the previous phase's; zeros first)


@dataclass(frozen=True)
class ArrivalPlan:
    phases: tuple[PhaseSpan, ...]

    @classmethod
    def from_phases(cls, phases: list[dict[str, Any]]) -> ArrivalPlan:
        """From [{name, duration, ramp, rates}] (a scenario's workload.phases, dumped)."""
        spans, t, previous = [], 0.0, {op: 0.0 for p in phases for op in p["rates"]}
        for p in phases:
            rates = {op: float(r) for op, r in p["rates"].items()}
            spans.append(PhaseSpan(name=p["name"], start_s=t, end_s=t + float(p["duration"]),
                                   ramp_s=float(p.get("ramp", 0.0)), rates=rates, previous=previous))
            t += float(p["duration"])
            previous = rates
        return cls(tuple(spans))

    def to_json(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "duration": p.end_s - p.start_s, "ramp": p.ramp_s, "rates": p.rates}
                for p in self.phases]

    @property
    def duration_s(self) -> float:
        return self.phases[-1].end_s if self.phases else 0.0

    @property
    def ops(self) -> list[str]:
        return sorted({op for p in self.phases for op, r in p.rates.items() if r > 0})

    def phase_at(self, t: float) -> PhaseSpan | None:
        for p in self.phases:
            if p.start_s <= t < p.end_s:
                return p
        return None

    def rate(self, op: str, t: float) -> float:
        p = self.phase_at(t)
        if p is None:
            return 0.0
        target = p.rates.get(op, 0.0)
        into = t - p.start_s
        if p.ramp_s > 0 and into < p.ramp_s:
            before = p.previous.get(op, 0.0)
            return before + (target - before) * into / p.ramp_s
        return target

    def peak(self, op: str) -> float:
        return max((max(p.rates.get(op, 0.0), p.previous.get(op, 0.0)) for p in self.phases), default=0.0)

    def expected(self, op: str) -> float:
        """Arrivals of `op` over the whole plan, on average (ramps are linear)."""
        total = 0.0
        for p in self.phases:
            ramp = min(p.ramp_s, p.end_s - p.start_s)
            target, before = p.rates.get(op, 0.0), p.previous.get(op, 0.0)
            total += ramp * (target + before) / 2 + (p.end_s - p.start_s - ramp) * target
        return total

    def arrivals(self, rng: random.Random, part: int = 0, parts: int = 1) -> Iterator[tuple[float, str]]:
        """(seconds from the start, operation), in time order: of the whole plan, every
        `parts`-th arrival from the `part`-th (0-based). The parts of one seed are disjoint and
        together are the whole plan."""
        if not 0 <= part < parts:
            raise ValueError(f"part {part} of {parts}: a part is 0 to {parts - 1}")
        streams = [self._stream(op, rng) for op in self.ops]
        yield from itertools.islice(heapq.merge(*streams), part, None, parts)

    def _stream(self, op: str, rng: random.Random) -> Iterator[tuple[float, str]]:
        peak = self.peak(op)
        if peak <= 0:
            return
        own = random.Random(rng.random())   # each operation its own stream: merge order is stable
        t = 0.0
        end = self.duration_s
        while True:
            t += own.expovariate(peak)
            if t >= end:
                return
            if own.random() * peak < self.rate(op, t):
                yield t, op
