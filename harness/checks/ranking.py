"""Ranking fallback (design §10, ranking model degradation): while the ranker fails, ranked
feed reads are still answered (chronologically, behind the circuit breaker), never an error.

Judged on the ranked reads (op "ranked") due inside a degrade-ranker fault window: each must be
answered 200. A 5xx or no answer there is an anomaly. Ranked reads outside such windows are the
errors check's like any other request. A run with no ranker fault, or no ranked read inside
one, cannot judge this (unknown, not gating).
"""

from __future__ import annotations

from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.rundata import RunData

NAME = "ranking_fallback"
FAULT = "degrade-ranker"


def check(run: RunData) -> CheckResult:
    windows = [(w.start, w.end_t if w.end_t is not None else float("inf")) for w in run.faults if w.name == FAULT]
    if not windows:
        return not_exercised(NAME, "no ranker fault in this run")
    inside = [r for r in run.requests if r.op == "ranked" and any(lo <= r.t <= hi for lo, hi in windows)]
    if not inside:
        return not_exercised(NAME, "no ranked read was due while the ranker failed")
    failed: list[dict[str, Any]] = [{"t": r.t, "user": r.user, "status": r.status, "error": r.error}
                                    for r in inside if r.status != 200]
    evidence = {"fault_windows": len(windows), "ranked_reads": len(inside), "answered": len(inside) - len(failed),
                "failed": len(failed), "failed_examples": failed[:EXAMPLES_MAX]}
    summary = f"{len(inside) - len(failed)} of {len(inside)} ranked reads answered while the ranker failed (bound all)"
    if failed:
        statuses = sorted({f['status'] for f in failed})
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; {len(failed)} failed (HTTP {statuses})", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
