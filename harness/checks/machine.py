"""The machine was the target's: a run on a machine whose hypervisor took its CPU away is invalid.

On a virtual machine the kernel counts "steal": time a CPU was ready to run this guest and the
hypervisor ran another one instead. Every process here (the target and the load generator)
then runs slower, and every latency measured is the host's contention, not the target's. The
load generator samples the machine's CPU once a second (machine.jsonl); a mean steal above the
bound (`slo.steal`, 10 % by default) over any 10 s of the load makes the run invalid, whatever
else it measured. (Seen here on 2026-12-04: 50 % steal for minutes, and a default campaign whose
feed p99 went from 80 ms to 2.9 s on unchanged code.) The run's checks still say what they found
(the verify table lists them), but the run decides nothing.

Any 10 s, not only the whole load's mean: a p99 is decided by the slowest 1 % of its window, so
steal over a small part of a judged window decides it while the whole run's mean dilutes it; 10 s
is also the shortest after-heal window the steady state judges. On 2026-12-07 a `deletion-lag`
run had 7.4 % steal over its 60 s, but 8-20 % every second from its 34th (16.4 % over its worst
10 s), and failed its feed p99 only in its after-heal window, 40-60 s into the load (297 and
403 ms over its two 10 s steps, against 41-145 ms before).

A sample is the CPU since the one before it, normally a second; a late one covers more, and
weighs as much as the time it covers (the sampler is late when the machine is, which is when
steal matters).

It also shows, not judged, how busy the machine was and how long a fixed piece of Python work
took before the run started (harness/machine_speed.py): a slower CPU, which steal does not
show, makes every latency longer.

A run without machine samples (recorded before this check existed) cannot rule steal out: the
check says unknown and does not gate.
"""

from __future__ import annotations

import itertools
import math
import statistics

from harness.checks.result import CheckResult, Verdict
from harness.checks.steady_state import MIN_AFTER_S
from harness.rundata import RunData
from records import MachineSample

NAME = "machine"
WINDOW_S = MIN_AFTER_S   # steal is judged over every stretch this long of the load


def check(run: RunData) -> CheckResult:
    bound = run.slo.steal_max_percent
    lo = run.load_start_t if run.load_start_t is not None else -math.inf
    hi = run.load_end_t if run.load_end_t is not None else math.inf
    samples = [s for s in run.machine if lo <= s.t <= hi]
    if not samples:
        return CheckResult(NAME, Verdict.UNKNOWN, "no machine CPU samples in the load window: steal not measured",
                           {"bound_percent": bound}, gating=False)
    spans = covered(samples)
    steal = weighted_mean(samples, spans)
    busy = statistics.fmean(s.busy_percent for s in samples)
    worst = max(samples, key=lambda s: s.steal_percent)
    stretch = worst_stretch(samples, spans, WINDOW_S)
    load_t0 = run.load_start_t if run.load_start_t is not None else samples[0].t - spans[0]
    speed = run.manifest.interpreter_ms
    evidence = {"bound_percent": bound, "samples": len(samples), "steal_mean_percent": steal,
                "window_s": WINDOW_S, "interpreter_ms": speed,
                "steal_max_percent": worst.steal_percent, "steal_max_t": worst.t, "busy_mean_percent": busy,
                "seconds_over_bound": sum(1 for s in samples if s.steal_percent > bound)}
    if stretch is None:   # a load shorter than one stretch: its mean is judged
        window_steal = steal
        judged = f"the load is shorter than {WINDOW_S:g} s: its mean judged"
    else:
        window_steal, from_t, to_t = stretch
        evidence.update(steal_worst_window_percent=window_steal, steal_worst_window_from_t=from_t,
                        steal_worst_window_to_t=to_t)
        judged = (f"{window_steal:.1f} % over its worst {WINDOW_S:g} s"
                  f" ({max(0.0, from_t - load_t0):.0f}-{to_t - load_t0:.0f} s into the load)")
    summary = (f"CPU stolen by the hypervisor over {len(samples)} s of load: {steal:.1f} % mean, {judged},"
               f" {worst.steal_percent:.0f} % in its worst second (bound ≤ {bound:g} % over any {WINDOW_S:g} s);"
               f" machine busy {busy:.0f} %"
               + (f", fixed Python work {speed:g} ms before the start" if speed is not None else "") + " (not judged)")
    if window_steal > bound:
        return CheckResult(NAME, Verdict.FAIL, f"run invalid: {summary}: the latencies measured are the host's "
                           "contention, not the target's", evidence, invalidates_run=True)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)


def covered(samples: list[MachineSample]) -> list[float]:
    """The seconds each sample covers: since the one before it (the first: a second)."""
    return [1.0] + [max(0.0, b.t - a.t) for a, b in itertools.pairwise(samples)]


def weighted_mean(samples: list[MachineSample], spans: list[float]) -> float:
    total = math.fsum(spans)
    if total <= 0:
        return statistics.fmean(s.steal_percent for s in samples)
    return math.fsum(s.steal_percent * w for s, w in zip(samples, spans, strict=True)) / total


def worst_stretch(samples: list[MachineSample], spans: list[float],
                  width_s: float) -> tuple[float, float, float] | None:
    """The highest mean steal over `width_s` seconds of consecutive samples, with when that
    stretch began and ended; None when the samples cover less than one stretch. A stretch starts
    where its first sample's time begins and holds the samples that end within `width_s` of that;
    it counts once they cover all but half a second of it (the sampler drifts). The first of
    equal stretches is the one named."""
    best: tuple[float, float, float] | None = None
    end = 0
    for start, first in enumerate(samples):
        begins = first.t - spans[start]
        end = max(end, start + 1)
        while end < len(samples) and samples[end].t <= begins + width_s + 0.5:
            end += 1
        ends = samples[end - 1].t
        if ends - begins < width_s - 0.5:
            continue   # not whole: the load's end, or a gap the next sample's time does not reach
        mean = weighted_mean(samples[start:end], spans[start:end])
        if best is None or mean > best[0]:
            best = (mean, begins, ends)
    return best
