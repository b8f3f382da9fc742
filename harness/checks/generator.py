"""Load-generator health: a run whose generator could not keep up is invalid, whatever else.

Three ways a generator betrays its measurement, each from its own record:
- CPU (generator.jsonl): a process whose mean CPU over the load window exceeds the gate was
  the bottleneck; its timings belong to it, not to the target.
- dropped arrivals (arrivals.jsonl): with MAX_IN_FLIGHT requests outstanding the open model
  drops an arrival rather than delay it; any drop means the offered load was not offered.
- late arrivals: the scheduler started more than LATE_SHARE_MAX of them over 50 ms after their
  time (its event loop was busy). Latency is still charged from the intended time, but a
  generator that far behind no longer holds the arrival rate.
- a lost generator (generators.jsonl, a distributed run): one that stopped answering the Locust
  master, or left, before it had sent its last records; its share of the plan was not offered,
  and what it had not yet sent is missing from the run's records.
- a generator whose clock is more than CLOCK_OFFSET_MAX_S off the master's (beyond the error of
  the measure): its records' times cannot be lined up with the faults, the probes and the
  other generators' (each generator times its requests on its own clock).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from harness.checks.result import CheckResult, Verdict
from harness.rundata import RunData

NAME = "generator"
LATE_SHARE_MAX = 0.01
CLOCK_OFFSET_MAX_S = 0.1


def check(run: RunData) -> CheckResult:
    bound = run.slo.generator_cpu_max_percent
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
    due = sum(a.due for a in run.arrivals)
    dropped = sum(a.dropped for a in run.arrivals)
    late = sum(a.late for a in run.arrivals)
    late_share = late / due if due else 0.0
    evidence = {"bound_percent": bound, "processes": per_process, "max_mean_cpu_percent": mean,
                "arrivals_due": due, "arrivals_dropped": dropped, "arrivals_late": late,
                "late_share": late_share, "late_share_max": LATE_SHARE_MAX,
                "max_lag_ms": max((a.max_lag_ms for a in run.arrivals), default=None)}
    generators = {e.generator: e for e in run.generators if e.event in ("joined", "done", "lost")}
    lost = sorted(g for g, e in generators.items() if e.event == "lost")
    if run.generators:   # each generator's last word: done, lost, or (cut short) joined
        evidence["generators"] = {g: {"event": e.event, "t": e.t, "detail": e.detail} for g, e in generators.items()}
        evidence["turned_away"] = [f"{e.generator}: {e.detail}" for e in run.generators
                                   if e.event in ("turned-away", "late")]
    problems = []
    for g in lost:
        e = generators[g]
        at = f" at +{e.t - run.load_start_t:.0f} s" if run.load_start_t is not None else ""
        problems.append(f"{g} lost{at} ({e.detail}): its share of the arrivals was not offered")
    for e in run.generators:
        if e.event == "clock" and e.clock_offset_s is not None \
                and abs(e.clock_offset_s) - (e.clock_error_s or 0.0) > CLOCK_OFFSET_MAX_S:
            problems.append(f"{e.generator}'s clock is {e.detail} (bound ±{CLOCK_OFFSET_MAX_S * 1000:.0f} ms): "
                            "its records cannot be lined up with the run's")
    if mean > bound:
        problems.append(f"{hottest} saturated ({mean:.0f} % CPU mean, bound ≤ {bound:g} %)")
    if dropped:
        problems.append(f"{dropped} of {due} arrivals dropped")
    if late_share > LATE_SHARE_MAX:
        problems.append(f"{late_share:.1%} of arrivals late (bound ≤ {LATE_SHARE_MAX:.0%})")
    summary = (f"hottest load process {hottest} at {mean:.0f} % CPU mean over {len(per_process)} processes; "
               f"{due} arrivals, {dropped} dropped, {late} late")
    if problems:
        return CheckResult(NAME, Verdict.FAIL, "run invalid: " + "; ".join(problems), evidence,
                           invalidates_run=True)
    if not run.arrivals:
        return CheckResult(NAME, Verdict.UNKNOWN, summary + " (no arrival records: drops cannot be ruled out)",
                           evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
