"""Load-generator health: a saturated generator under-reports latency, so its run is invalid.

When a Locust process runs out of CPU it sends late and times late (coordinated omission): the
target looks faster than it is. A process whose mean CPU over the load window exceeds the gate
makes the run fail, whatever the other checks say.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from harness.checks.result import CheckResult, Verdict
from harness.rundata import RunData

NAME = "generator"


def check(run: RunData) -> CheckResult:
    bound = run.gates.generator_cpu_max_percent
    lo = run.load_start_t if run.load_start_t is not None else -math.inf
    hi = run.load_end_t if run.load_end_t is not None else math.inf
    cpu: dict[str, list[float]] = defaultdict(list)
    for s in run.generator:
        if lo <= s.t <= hi:
            cpu[s.process].append(s.cpu_percent)
    if not cpu:
        return CheckResult(NAME, Verdict.UNKNOWN, "no generator CPU samples in the load window", {})
    per_process = {
        p: {"samples": len(v), "mean_cpu_percent": statistics.fmean(v), "max_cpu_percent": max(v)}
        for p, v in sorted(cpu.items())
    }
    hottest, figures = max(per_process.items(), key=lambda kv: kv[1]["mean_cpu_percent"])
    mean = figures["mean_cpu_percent"]
    evidence = {"bound_percent": bound, "processes": per_process, "max_mean_cpu_percent": mean}
    verdict = Verdict.FAIL if mean > bound else Verdict.PASS
    summary = (
        f"hottest load process {hottest} at {mean:.0f} % CPU mean over {len(per_process)} processes "
        f"(bound ≤ {bound:g} %){'; run invalid: generator saturated' if verdict is Verdict.FAIL else ''}"
    )
    return CheckResult(NAME, verdict, summary, evidence)
