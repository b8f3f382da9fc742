"""The steady-state hypothesis (Chaos Toolkit's model): probes with tolerances, judged before the
first fault, through the run, and after the last heal.

Probes, each with the scenario's own bound as its tolerance (`slo:`):
- feed p99 (client side, GET /v1/feed pages that got an answer) below `feed_p99`;
- error share (no answer, 5xx, client-side errors; abandoned attempts aside) at most `error_rate`;
- canary freshness median below `freshness_median`, when the window holds 3 canaries or more.

Windows: *before* runs from the end of the first phase's ramp to 2 s before the first fault's invoke;
*after* from the last heal plus `slo.steady_after` (10 s unless the scenario says otherwise) to
the end of the load. The probes are also given every 10 s through the run (evidence
`timeline`), for the report.

Verdict: no fault, nothing to hold the target to (not exercised). A target not in steady state
before the first fault, or with too little load before it to tell (fewer than 100 feed reads),
makes the run **unknown**: what the faults did cannot be told from what was already wrong. A
target that is not back in steady state after the last heal **fails**. An after-window shorter
than 10 s is not judged (said in the summary): the load ended too soon after the last heal.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from harness.checks.feed_latency import FEED_OPS
from harness.checks.result import CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.checks.stats import latency_summary
from harness.rundata import RunData, measured
from records import ProbeRecord, Request

NAME = "steady_state"
MIN_FEED_READS = 100     # before the first fault: fewer cannot tell a p99
MIN_AFTER_S = 10.0       # a shorter after-window is not judged
MIN_CANARIES = 3         # fewer: the freshness probe is not taken
TIMELINE_STEP_S = 10.0
BEFORE_MARGIN_S = 2.0    # the before-window ends this long before the first invoke
NOT_STEADY_BEFORE = "not in steady state before the first fault"   # how an unknown of that kind begins


def probes(requests: list[Request], canaries: list[ProbeRecord]) -> dict[str, Any]:
    """The probes' figures over one window's requests and canaries."""
    feed = [r for r in requests if r.op in FEED_OPS and r.status > 0]
    failed = sum(1 for r in requests if not r.ok)
    freshness = [math.inf if c.freshness_s is None else c.freshness_s for c in canaries]
    return {
        "feed_reads": len(feed),
        "feed_p99_ms": latency_summary(r.latency_ms for r in feed)["p99_ms"],
        "requests": len(requests),
        "errors": failed,
        "error_share": failed / len(requests) if requests else None,
        "canaries": len(freshness),
        "freshness_median_s": statistics.median(freshness) if len(freshness) >= MIN_CANARIES else None,
    }


def out_of_tolerance(figures: dict[str, Any], run: RunData) -> list[str]:
    """What a window's probes say is out of the steady state (empty: in it)."""
    slo, out = run.slo, []
    p99 = figures["feed_p99_ms"]
    if p99 is not None and p99 >= slo.feed_p99_ms:
        out.append(f"feed p99 {p99:.1f} ms (tolerance < {slo.feed_p99_ms:g} ms)")
    share = figures["error_share"]
    if share is not None and share > slo.error_rate_max:
        out.append(f"{figures['errors']} errors in {figures['requests']} requests, {share:.3%} "
                   f"(tolerance ≤ {slo.error_rate_max:.3%})")
    fresh = figures["freshness_median_s"]
    if fresh is not None and fresh >= slo.freshness_median_s:
        out.append(f"freshness median {fresh:.2f} s (tolerance < {slo.freshness_median_s:g} s)")
    return out


def _within(run: RunData, lo: float, hi: float) -> dict[str, Any]:
    requests = [r for r in measured(run.requests) if lo <= r.t < hi]
    canaries = [c for c in run.probes if lo <= c.ack_t < hi]
    return {"start_t": lo, "end_t": hi, **probes(requests, canaries)}


def _steady_from(run: RunData, load_start: float) -> float:
    phases = run.manifest.config.get("scenario", {}).get("workload", {}).get("phases") or [{}]
    return load_start + float(phases[0].get("ramp", 0.0))


def unsteady_before(results: Iterable[CheckResult]) -> bool:
    """Whether these results say the target was off its steady state before the first fault."""
    return any(r.name == NAME and r.verdict is Verdict.UNKNOWN and r.summary.startswith(NOT_STEADY_BEFORE)
               for r in results)


def check(run: RunData) -> CheckResult:
    faults = [w for w in run.faults if w.start_t is not None]
    if not faults:
        return not_exercised(NAME, "the scenario schedules no fault")
    load_start, load_end = run.load_start_t, run.load_end_t
    if load_start is None or load_end is None:
        return CheckResult(NAME, Verdict.UNKNOWN, "the load's start or end was not recorded", {})
    first = min(w.start for w in faults)
    ends = [w.end_t for w in faults]
    if None in ends and run.partial:
        return CheckResult(NAME, Verdict.UNKNOWN, "the run was cut short with a fault not healed", {})
    # reads sent just before the first invoke may be answered after it
    before = _within(run, _steady_from(run, load_start), first - BEFORE_MARGIN_S)
    last_heal = max((e for e in ends if e is not None), default=None) if None not in ends else None
    after = _within(run, last_heal + run.slo.steady_after_s, load_end) if last_heal is not None else None
    timeline = [_within(run, t, min(t + TIMELINE_STEP_S, load_end))
                for t in _steps(load_start, load_end)]
    evidence: dict[str, Any] = {
        "tolerances": {"feed_p99_ms": run.slo.feed_p99_ms, "error_rate": run.slo.error_rate_max,
                       "freshness_median_s": run.slo.freshness_median_s},
        "before": before, "after": after, "timeline": timeline,
    }
    if before["feed_reads"] < MIN_FEED_READS:
        return CheckResult(NAME, Verdict.UNKNOWN, f"cannot tell the steady state before the first fault: "
                           f"{before['feed_reads']} feed reads in {first - before['start_t']:.0f} s "
                           f"(at least {MIN_FEED_READS})", evidence)
    wrong_before = out_of_tolerance(before, run)
    if wrong_before:
        return CheckResult(NAME, Verdict.UNKNOWN, f"{NOT_STEADY_BEFORE}: " + "; ".join(wrong_before), evidence)
    said = f"in steady state before the first fault ({_line(before)})"
    if after is None:
        return CheckResult(NAME, Verdict.FAIL, f"{said}; a fault was never healed", evidence)
    if after["end_t"] - after["start_t"] < MIN_AFTER_S or not after["requests"]:
        span = max(0.0, after["end_t"] - after["start_t"])
        return CheckResult(NAME, Verdict.PASS, f"{said}; after the last heal not judged: the load ended "
                           f"{span:.0f} s after its recovery grace (at least {MIN_AFTER_S:g} s)", evidence)
    wrong_after = out_of_tolerance(after, run)
    if wrong_after:
        return CheckResult(NAME, Verdict.FAIL, f"{said}; NOT back in it "
                           f"{run.slo.steady_after_s:g} s after the last heal: " + "; ".join(wrong_after), evidence)
    return CheckResult(NAME, Verdict.PASS, f"{said}, and back in it after the last heal ({_line(after)})", evidence)


def _steps(start: float, end: float) -> list[float]:
    n = max(0, math.ceil((end - start) / TIMELINE_STEP_S))
    return [start + i * TIMELINE_STEP_S for i in range(n)]


def _line(figures: dict[str, Any]) -> str:
    parts = [f"feed p99 {figures['feed_p99_ms']:.0f} ms" if figures["feed_p99_ms"] is not None else "no feed reads",
             f"{figures['errors']} errors in {figures['requests']}"]
    if figures["freshness_median_s"] is not None:
        parts.append(f"freshness median {figures['freshness_median_s']:.2f} s")
    return ", ".join(parts)
