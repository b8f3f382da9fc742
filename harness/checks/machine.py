"""The machine was the target's: a run on a machine whose hypervisor took its CPU away is invalid.

On a virtual machine the kernel counts "steal": time a CPU was ready to run this guest and the
hypervisor ran another one instead. Every process here (the target and the load generator)
then runs slower, and every latency measured is the host's contention, not the target's. The
load generator samples the machine's CPU once a second (machine.jsonl); a mean steal above the
bound (`slo.steal`, 10 % by default) over any 10 s of the load makes the run invalid, whatever
else it measured. (Seen here on 2026-12-04: 50 % steal for minutes, and a default campaign whose
feed p99 went from 80 ms to 2.9 s on unchanged code.)

Any 10 s, not the whole load: the latency gates judge windows that short (the steady state's
windows are 10 s) and a p99 is decided by its slowest 1 %, so a stretch of steal decides them
while the whole run's mean dilutes it. On 2026-12-07 a `deletion-lag` run had 7.4 % steal over
its 60 s, but 8-20 % every second from its 34th (16.4 % over the 10 s from its 36th), and failed
its feed p99 in its last two 10 s windows only (297 and 403 ms, against 41-145 ms before).

It also shows, not judged, how busy the machine was and how long a fixed piece of Python work
took before the run started (harness/machine_speed.py): a slower CPU, which steal does not
show, makes every latency longer.

A run without machine samples (recorded before this check existed) cannot rule steal out: the
check says unknown and does not gate.
"""

from __future__ import annotations

import math
import statistics

from harness.checks.result import CheckResult, Verdict
from harness.rundata import RunData
from records import MachineSample

NAME = "machine"
WINDOW_S = 10.0   # steal is judged over every stretch this long of the load (the steady state's window)


def check(run: RunData) -> CheckResult:
    bound = run.slo.steal_max_percent
    lo = run.load_start_t if run.load_start_t is not None else -math.inf
    hi = run.load_end_t if run.load_end_t is not None else math.inf
    samples = [s for s in run.machine if lo <= s.t <= hi]
    if not samples:
        return CheckResult(NAME, Verdict.UNKNOWN, "no machine CPU samples in the load window: steal not measured",
                           {"bound_percent": bound}, gating=False)
    steal = statistics.fmean(s.steal_percent for s in samples)
    busy = statistics.fmean(s.busy_percent for s in samples)
    worst = max(samples, key=lambda s: s.steal_percent)
    window_steal, window_t = worst_window(samples, WINDOW_S)
    window_from = window_t - (run.load_start_t if run.load_start_t is not None else samples[0].t)
    speed = run.manifest.interpreter_ms
    evidence = {"bound_percent": bound, "samples": len(samples), "steal_mean_percent": steal,
                "window_s": WINDOW_S, "steal_worst_window_percent": window_steal, "steal_worst_window_t": window_t,
                "interpreter_ms": speed,
                "steal_max_percent": worst.steal_percent, "steal_max_t": worst.t, "busy_mean_percent": busy,
                "seconds_over_bound": sum(1 for s in samples if s.steal_percent > bound)}
    summary = (f"CPU stolen by the hypervisor {steal:.1f} % mean, {window_steal:.1f} % over its worst {WINDOW_S:g} s"
               f" ({window_from:.0f} s into the load; bound ≤ {bound:g} % over any {WINDOW_S:g} s;"
               f" max {worst.steal_percent:.0f} %)"
               f" over {len(samples)} s of load; machine busy {busy:.0f} %"
               + (f", fixed Python work {speed:g} ms before the start" if speed is not None else "") + " (not judged)")
    if window_steal > bound:
        return CheckResult(NAME, Verdict.FAIL, f"run invalid: {summary}: the latencies measured are the host's "
                           "contention, not the target's", evidence, invalidates_run=True)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)


def worst_window(samples: list[MachineSample], width_s: float) -> tuple[float, float]:
    """The highest mean steal over `width_s` seconds of consecutive samples, and when that stretch
    began. A sample covers the second before its time, so a stretch is whole once it holds a
    sample `width_s` - 1 s after its first one (half a second early still counts: the sampler
    drifts). A load shorter than one stretch: its mean."""
    stretches: list[tuple[float, float]] = []
    end, total = 0, 0.0
    for start, first in enumerate(samples):
        while end < len(samples) and samples[end].t < first.t + width_s:
            total += samples[end].steal_percent
            end += 1
        if samples[end - 1].t >= first.t + width_s - 1.5:
            stretches.append((total / (end - start), first.t))
        total -= first.steal_percent
    if not stretches:
        return statistics.fmean(s.steal_percent for s in samples), samples[0].t
    return max(stretches, key=lambda stretch: stretch[0])   # the first of equals: when it began
