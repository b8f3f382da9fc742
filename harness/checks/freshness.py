"""Freshness: from a canary's acknowledgement to its first sighting in a follower's feed.

Each probe record is one (canary, follower) pair. A canary never seen before the probe gave up
counts as infinitely stale: it is the worst freshness there is, and it can move the median,
so a target that silently drops fan-out cannot pass by having fewer fast samples. Records whose
ack falls inside a fault window (or its recovery grace) are reported but not judged: the gate
is about steady state.
"""

from __future__ import annotations

import math
import statistics

from harness.checks.result import CheckResult, Verdict
from harness.checks.stats import nearest_rank
from harness.rundata import RunData, split_by_fault
from records import ProbeRecord

NAME = "freshness"


def _freshness(records: list[ProbeRecord]) -> list[float]:
    return sorted(math.inf if r.freshness_s is None else r.freshness_s for r in records)


def check(run: RunData) -> CheckResult:
    bound = run.slo.freshness_median_s
    if not run.probes:
        return CheckResult(NAME, Verdict.UNKNOWN, "no canary probe records", {"bound_s": bound})
    outside, inside = split_by_fault(run.probes, lambda r: r.ack_t, run.fault_predicate())
    values = _freshness(outside)
    inside_values = _freshness(inside)
    evidence = {
        "bound_s": bound,
        "n": len(values),
        "median_s": statistics.median(values) if values else None,
        "p90_s": nearest_rank(values, 90),
        "p99_s": nearest_rank(values, 99),
        "max_s": values[-1] if values else None,
        "unseen": sum(1 for r in outside if r.seen_t is None),
        "inside_faults_n": len(inside_values),
        "inside_faults_median_s": statistics.median(inside_values) if inside_values else None,
        "inside_faults_unseen": sum(1 for r in inside if r.seen_t is None),
    }
    median = evidence["median_s"]
    if median is None:
        return CheckResult(NAME, Verdict.UNKNOWN, "every canary was acked inside a fault window", evidence)
    verdict = Verdict.PASS if median < bound else Verdict.FAIL
    summary = (
        f"freshness median {median:.2f} s over {len(values)} canary reads, {evidence['unseen']} never seen "
        f"(bound < {bound:g} s)"
    )
    return CheckResult(NAME, verdict, summary, evidence)
