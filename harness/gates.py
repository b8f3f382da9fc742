"""Gates judged on a recorded run: each scenario threshold becomes one result (kind "gate").

A gate reads one metric inside one window of the run (workloads.gate_spec explains both):
- client metrics from the request history, by intended send time (so a request queued behind
  a stall counts where it was due), latency percentiles from an HDR histogram of the answered
  requests, `rate` as the failed share of all requests;
- freshness from the canary probes, by acknowledgement time; a canary never seen is infinitely
  stale, as in the freshness check;
- target metrics from the Prometheus series kept in target_metrics.json, by sample time.

A window with nothing in it gives `unknown` (the gate could not be judged), never `pass`. On an
invalid run (the generator check failed) every gate is `unknown`: the figures are shown, but a
run that measured its own generator passes nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace

from harness.checks.feed_latency import FEED_OPS
from harness.checks.result import CheckResult, Verdict, invalid
from harness.checks.stats import nearest_rank, new_histogram, record_ms
from harness.rundata import DEFAULT_FAULT_GRACE_S, RunData
from records.manifest import NO_METRICS_SOURCE
from workloads.gate_spec import METRICS, PHASE_PREFIX, Figure, GateSpec, Source, Unit

_PERCENTILES = {"p50": 50.0, "median": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def gate_specs(run: RunData) -> list[GateSpec]:
    return [GateSpec.from_json(g) for g in run.manifest.gates if isinstance(g, dict)]


def window_predicate(run: RunData, window: str) -> Callable[[float], bool]:
    """Whether a time (epoch seconds) falls in `window` of this run."""
    lo = run.load_start_t if run.load_start_t is not None else -math.inf
    end = run.load_end_t if run.load_end_t is not None else math.inf
    hi = max(end, run.manifest.settle_end_t or end)   # the run's lag drains after the load
    faults = [(a, b) for _, a, b in run.fault_intervals(grace_s=0.0)]
    recoveries = [(b, b + DEFAULT_FAULT_GRACE_S) for _, b in faults]
    if window == "run":
        return lambda t: lo <= t <= hi
    if window == "fault":
        return lambda t: any(a <= t <= b for a, b in faults)
    if window == "recovery":
        return lambda t: any(a < t <= b for a, b in recoveries)
    if window == "steady":
        in_fault = run.fault_predicate()
        return lambda t: lo <= t <= hi and not in_fault(t)
    if window.startswith(PHASE_PREFIX):
        name = window.removeprefix(PHASE_PREFIX)
        phases = [(float(p["start_t"]), float(p["end_t"])) for p in run.manifest.phases
                  if p.get("name") == name]
        return lambda t: any(a <= t < b for a, b in phases)
    raise ValueError(f"unknown window {window!r}")


def _client(run: RunData, figure: Figure, inside: Callable[[float], bool]) -> tuple[float | None, int]:
    ops = FEED_OPS if figure.metric == "feed" else None if figure.metric == "errors" else {figure.metric}
    requests = [r for r in run.requests if (ops is None or r.op in ops) and inside(r.t)]
    if figure.window == "steady":   # nor in flight when a fault began (checks/errors.py says why)
        in_flight = run.in_flight_predicate()
        requests = [r for r in requests if not in_flight(r)]
    if figure.aggregate == "count":
        return float(len(requests)), len(requests)
    if figure.aggregate == "rate":
        return (sum(not r.ok for r in requests) / len(requests) if requests else None), len(requests)
    answered = [r.latency_ms for r in requests if r.status > 0]
    if not answered:
        return None, 0
    if figure.aggregate == "mean":
        return statistics.fmean(answered) / 1000, len(answered)
    hist = record_ms(new_histogram(), answered)
    if figure.aggregate == "max":
        return hist.get_max_value() / 1e6, len(answered)
    return hist.get_value_at_percentile(_PERCENTILES[figure.aggregate]) / 1e6, len(answered)


def _freshness(run: RunData, figure: Figure, inside: Callable[[float], bool]) -> tuple[float | None, int]:
    probes = [p for p in run.probes if inside(p.ack_t)]
    values = sorted(math.inf if p.freshness_s is None else p.freshness_s for p in probes)
    if figure.aggregate == "count":
        return float(len(values)), len(values)
    if figure.aggregate == "unseen":
        return float(sum(p.seen_t is None for p in probes)), len(values)
    if not values:
        return None, 0
    if figure.aggregate == "mean":
        return (math.inf if math.isinf(values[-1]) else statistics.fmean(values)), len(values)
    if figure.aggregate == "max":
        return values[-1], len(values)
    return nearest_rank(values, _PERCENTILES[figure.aggregate]), len(values)


def _target(run: RunData, figure: Figure, inside: Callable[[float], bool]) -> tuple[float | None, int]:
    series = METRICS[figure.metric].series
    entry = run.target_metrics.get(series or "") or {}
    points = [float(v) for s in entry.get("series", []) for t, v in s["points"] if v is not None and inside(t)]
    if not points:
        return None, 0
    value = max(points) if figure.aggregate == "max" else min(points) if figure.aggregate == "min" \
        else statistics.fmean(points)
    return value, len(points)


_SOURCES = {Source.CLIENT: _client, Source.FRESHNESS: _freshness, Source.TARGET: _target}


def observe(run: RunData, figure: Figure) -> tuple[float | None, int]:
    """(the aggregate over the window, how many samples it came from); None when there were none."""
    return _SOURCES[METRICS[figure.metric].source](run, figure, window_predicate(run, figure.window))


def show(value: float | None, unit: Unit) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞"
    if unit is Unit.DURATION:
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit is Unit.SHARE:
        return f"{value:.2%}" if value >= 0.01 else f"{value:.4%}"
    return f"{value:.4g}"


def judge(run: RunData, spec: GateSpec, *, run_invalid: bool = False) -> CheckResult:
    observed, samples = observe(run, spec.figure)
    evidence = {"metric": spec.metric, "window": spec.window, "aggregate": spec.aggregate, "expr": spec.expr,
                "threshold": spec.threshold, "observed": observed, "samples": samples,
                "unit": spec.unit.value, "abort_on_fail": spec.abort_on_fail}
    measured = f"{spec.aggregate} {show(observed, spec.unit)} over {samples} samples in {spec.window}"
    if observed is None and METRICS[spec.metric].source is Source.TARGET and run.manifest.metrics_absent:
        return CheckResult(spec.name, Verdict.UNKNOWN, f"not judged: the target's metrics were {NO_METRICS_SOURCE}",
                           evidence, kind="gate", gating=False)
    if observed is None:
        return CheckResult(spec.name, Verdict.UNKNOWN, f"nothing measured in window {spec.window}", evidence,
                           kind="gate")
    if run_invalid:
        return CheckResult(spec.name, Verdict.UNKNOWN, f"{measured}; not judged: the run is invalid", evidence,
                           kind="gate")
    verdict = Verdict.PASS if spec.passes(observed) else Verdict.FAIL
    return CheckResult(spec.name, verdict, f"{measured} (gate {spec.expr})", evidence, kind="gate")


def judge_all(run: RunData, checks: Iterable[CheckResult], specs: list[GateSpec] | None = None) -> list[CheckResult]:
    """Every gate; the one that aborted the run (manifest "aborted") fails whatever the whole
    window says now: the run stopped because of it and its remaining figures were never measured."""
    run_invalid = invalid(checks)
    aborted = run.manifest.aborted or {}
    out = []
    for spec in gate_specs(run) if specs is None else specs:
        result = judge(run, spec, run_invalid=run_invalid)
        if spec.name == aborted.get("gate") and result.verdict is Verdict.PASS:
            result = replace(result, verdict=Verdict.FAIL,
                             summary=f"aborted the run ({aborted.get('summary')}); now {result.summary}")
        out.append(result)
    return out

