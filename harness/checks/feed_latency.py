"""Feed p99, measured on the client, outside fault windows.

What is counted: every GET /v1/feed request (ops "feed" and "feed_page") that got an HTTP
response, whatever its status: a fast 500 is still a wait a user had. Requests with no response
(status 0: timeout, refused connection) are left out: their latency is the client's give-up
time, not the server's, and they are the availability check's business. This cannot hide a slow
tail: that check allows at most 0.01 % of such requests outside faults, and p99 looks at 1 %.

Requests sent inside a fault window or its recovery grace are reported, not judged: a fault's
cost is bounded by the availability check's error-seconds budget.
"""

from __future__ import annotations

from harness.checks.result import CheckResult, Verdict
from harness.checks.stats import latency_summary
from harness.rundata import RunData

NAME = "feed_latency"
FEED_OPS = frozenset({"feed", "feed_page", "walk"})   # GET /v1/feed pages (ranked and backfill watches apart)


def check(run: RunData) -> CheckResult:
    bound = run.slo.feed_p99_ms
    feed = [r for r in run.requests if r.op in FEED_OPS and r.status > 0]
    if not feed:
        return CheckResult(NAME, Verdict.UNKNOWN, "no feed request got a response", {"bound_ms": bound})
    in_flight = run.in_flight_predicate()   # a read that waited out the start of a fault is the fault's
    inside = [r for r in feed if in_flight(r)]
    outside = [r for r in feed if not in_flight(r)]
    figures = latency_summary(r.latency_ms for r in outside)
    evidence = {
        "bound_ms": bound,
        "outside_faults": figures,
        "inside_faults_p99_ms": latency_summary(r.latency_ms for r in inside)["p99_ms"],
        "inside_faults_count": len(inside),
        "whole_run_p99_ms": latency_summary(r.latency_ms for r in feed)["p99_ms"],
    }
    p99 = figures["p99_ms"]
    if p99 is None:
        return CheckResult(NAME, Verdict.UNKNOWN, "every feed request was inside a fault window", evidence)
    verdict = Verdict.PASS if p99 < bound else Verdict.FAIL
    summary = f"feed p99 {p99:.1f} ms over {len(outside)} requests outside faults (bound < {bound:g} ms)"
    return CheckResult(NAME, verdict, summary, evidence)
