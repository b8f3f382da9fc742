"""Availability: errors outside faults against a rate, errors inside faults against a time budget.

An error is a request without a usable answer: no response (status 0: timeout, refused
connection), a 5xx, or a client-side error. 4xx answers are the client's problem, not errors.

Outside fault windows (and their recovery grace) the error share must not exceed
`error_rate_max`. Inside, some errors are the point of the fault; what is bounded is how long
users see them: the distinct wall-clock seconds (by send time) with at least one error, counted
per fault window, must not exceed `fault_error_seconds_max` for any window. A request belongs
to a fault when it was in flight during its window (or grace): one due just before a pause
that waited it out is the fault's.
"""

from __future__ import annotations

import math
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.rundata import DEFAULT_FAULT_GRACE_S, RunData
from records import Request

NAME = "errors"


def _example(r: Request) -> dict[str, object]:
    return {"t": r.t, "op": r.op, "status": r.status, "error": r.error, "latency_ms": r.latency_ms}


def check(run: RunData) -> CheckResult:
    slo = run.slo
    if not run.requests:
        return CheckResult(NAME, Verdict.UNKNOWN, "no requests recorded", {})
    in_flight = run.in_flight_predicate()
    inside = [r for r in run.requests if in_flight(r)]
    outside = [r for r in run.requests if not in_flight(r)]
    errors_out = [r for r in outside if not r.ok]
    errors_in = [r for r in inside if not r.ok]
    share = len(errors_out) / len(outside) if outside else 0.0
    per_fault: list[dict[str, Any]] = []
    worst = 0
    for window, lo, hi in run.fault_intervals(DEFAULT_FAULT_GRACE_S):
        seconds = len({math.floor(r.t) for r in errors_in if r.t <= hi and r.t + r.latency_ms / 1000 >= lo})
        per_fault.append({"name": window.name, "target": window.target, "error_seconds": seconds})
        worst = max(worst, seconds)
    evidence = {
        "error_rate_max": slo.error_rate_max,
        "fault_error_seconds_max": slo.fault_error_seconds_max,
        "requests": len(run.requests),
        "requests_outside_faults": len(outside),
        "errors_outside_faults": len(errors_out),
        "error_share_outside_faults": share,
        "requests_inside_faults": len(inside),
        "errors_inside_faults": len(errors_in),
        "error_seconds_inside_faults": len({math.floor(r.t) for r in errors_in}),
        "error_seconds_per_fault": per_fault,
        "examples_outside_faults": [_example(r) for r in errors_out[:EXAMPLES_MAX]],
        "examples_inside_faults": [_example(r) for r in errors_in[:EXAMPLES_MAX]],
    }
    failed = share > slo.error_rate_max or worst > slo.fault_error_seconds_max
    summary = (
        f"error share {share:.4%} outside faults (bound ≤ {slo.error_rate_max:.4%}); "
        f"worst fault {worst} error-seconds (bound ≤ {slo.fault_error_seconds_max})"
    )
    return CheckResult(NAME, Verdict.FAIL if failed else Verdict.PASS, summary, evidence)
