"""The machine was the target's: a run on a machine whose hypervisor took its CPU away is invalid.

On a virtual machine the kernel counts "steal": time a CPU was ready to run this guest and the
hypervisor ran another one instead. Every process here (the target and the load generator)
then runs slower, and every latency measured is the host's contention, not the target's. The
load generator samples the machine's CPU once a second (machine.jsonl); a mean steal over the
load window above the bound (`slo.steal`, 10 % by default) makes the run invalid, whatever else
it measured. (Seen here on 2026-12-04: 50 % steal for minutes, and a default campaign whose
feed p99 went from 80 ms to 2.9 s on unchanged code.)

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

NAME = "machine"


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
    speed = run.manifest.interpreter_ms
    evidence = {"bound_percent": bound, "samples": len(samples), "steal_mean_percent": steal,
                "interpreter_ms": speed,
                "steal_max_percent": worst.steal_percent, "steal_max_t": worst.t, "busy_mean_percent": busy,
                "seconds_over_bound": sum(1 for s in samples if s.steal_percent > bound)}
    summary = (f"CPU stolen by the hypervisor {steal:.1f} % mean (bound ≤ {bound:g} %; max {worst.steal_percent:.0f} %)"
               f" over {len(samples)} s of load; machine busy {busy:.0f} %"
               + (f", fixed Python work {speed:g} ms before the start" if speed is not None else "") + " (not judged)")
    if steal > bound:
        return CheckResult(NAME, Verdict.FAIL, f"run invalid: {summary}: the latencies measured are the host's "
                           "contention, not the target's", evidence, invalidates_run=True)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
