"""Reports of a run: summary.json for machines, junit.xml for CI, report.html for people.

All three are recomputed from the run directory and the check results; writing them never
needs the stack. Each file is written whole or not at all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from harness.checks import CheckResult, exit_code, invalid, overall
from harness.checks.stats import new_histogram, percentile_ms, record_ms
from harness.gates import observe
from harness.rundata import RunData
from records import JUNIT, REPORT, SUMMARY, write_json
from reports import html, junit
from workloads.gate_spec import parse_figure

__all__ = ["headline", "jsonable", "write_reports"]


def jsonable(value: Any) -> Any:
    """Strict JSON: enums as values, infinities and NaN as strings ("inf"), dataclasses as dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def headline(run: RunData, results: list[CheckResult]) -> dict[str, Any]:
    """The figures a person looks at first, lifted from the checks' evidence."""
    ev = {r.name: r.evidence for r in results}
    start, end = run.load_start_t, run.load_end_t
    return {
        "feed_p99_ms": ev.get("feed_latency", {}).get("outside_faults", {}).get("p99_ms"),
        "freshness_median_s": ev.get("freshness", {}).get("median_s"),
        "error_share_outside_faults": ev.get("errors", {}).get("error_share_outside_faults"),
        "lost_from_store": ev.get("nothing_lost", {}).get("missing_from_store"),
        "missing_from_timelines": ev.get("nothing_lost", {}).get("missing_from_timeline"),
        "generator_max_mean_cpu_percent": ev.get("generator", {}).get("max_mean_cpu_percent"),
        "generator_machine_share": _machine_share(ev.get("generator", {}).get("processes") or {},
                                                  run.manifest.cpu_count),
        "requests": len(run.requests),
        "acked_tweets": len(run.acks),
        "faults": len(run.faults),
        "load_duration_s": end - start if start is not None and end is not None else None,
        "p99_ms_by_op": p99_by_op(run),
        "arrivals": {"due": sum(a.due for a in run.arrivals), "dropped": sum(a.dropped for a in run.arrivals),
                     "late": sum(a.late for a in run.arrivals)},
        "target": target_figures(run),
        "spike": spike_drain(run),
        "rising": rising_crossing(run),
    }


def _machine_share(processes: dict[str, dict[str, float]], cpus: int | None) -> float | None:
    """The load generator's mean CPU, all its processes together, as a share of the machine."""
    if not processes or not cpus:
        return None
    return sum(p["mean_cpu_percent"] for p in processes.values()) / (100 * cpus)


def p99_by_op(run: RunData) -> dict[str, dict[str, float | None]]:
    """Client-side p99 of every operation (answered requests), outside and inside fault windows
    (with the checks' grace after each)."""
    in_fault = run.fault_predicate()
    by_op: dict[str, dict[str, list[float]]] = {}
    for r in run.requests:
        if r.status > 0:
            side = "inside_faults" if in_fault(r.t) else "outside_faults"
            by_op.setdefault(r.op, {"outside_faults": [], "inside_faults": []})[side].append(r.latency_ms)
    out: dict[str, dict[str, float | None]] = {}
    for op, sides in sorted(by_op.items()):
        out[op] = {}
        for side, values in sides.items():
            hist = new_histogram()
            record_ms(hist, values)
            out[op][side] = percentile_ms(hist, 99) if values else None
    return out


_TARGET_FIGURES = {"timeline_cache_hit_ratio_mean": "hit_ratio.mean.run", "kafka_consumer_lag_max": "kafka_lag.max.run",
                   "fanout_lag_p99_max_s": "fanout_lag.max.run", "degraded_per_s_max": "degraded.max.run"}


def target_figures(run: RunData) -> dict[str, float | None]:
    """The target's own metrics over the run (load and settle), read as gates read them."""
    return {key: observe(run, parse_figure(name))[0] for key, name in _TARGET_FIGURES.items()}


def _summed(run: RunData, name: str) -> list[tuple[float, float]]:
    """A target series summed over its labels, per sample time."""
    total: dict[float, float] = {}
    for series in (run.target_metrics.get(name) or {}).get("series", []):
        for t, v in series["points"]:
            if v is not None:
                total[float(t)] = total.get(float(t), 0.0) + float(v)
    return sorted(total.items())


DRAIN_FLOOR = 10.0   # messages: a lag this small is drained whatever it was before


def spike_drain(run: RunData) -> dict[str, Any] | None:
    """For a workload whose heaviest-writing phase writes at least 5x its first phase (the World
    Cup spike): how long after that phase ended the fan-out consumer's Kafka lag took to fall
    back to its level before the phase (at least DRAIN_FLOOR), and that time over the phase's
    length. None when there is no such phase or no lag series."""
    phases = run.manifest.phases
    rates = {p["name"]: p["rates"] for p in (run.manifest.config.get("scenario") or {})
             .get("workload", {}).get("phases", [])}
    writes = [(sum(rates.get(p["name"], {}).get(op, 0.0) for op in ("post", "celebrity_post")), p) for p in phases]
    if len(writes) < 2:
        return None
    heaviest_rate, spike = max(writes, key=lambda w: w[0])
    if writes[0][0] <= 0 or heaviest_rate < 5 * writes[0][0]:
        return None
    lag = _summed(run, "kafka_consumer_lag")
    start, end = float(spike["start_t"]), float(spike["end_t"])
    before = [v for t, v in lag if start - 20 <= t < start]
    during = [v for t, v in lag if start <= t <= end]
    if not lag or not during:
        return None
    level = max([DRAIN_FLOOR, *before])
    drained_at = next((t for t, v in lag if t >= end and v <= level), None)
    drain = None if drained_at is None else drained_at - end
    return {"phase": spike["name"], "duration_s": end - start, "lag_peak": max(during), "lag_before": level,
            "drain_s": drain, "drain_over_duration": None if drain is None else drain / (end - start)}


def rising_crossing(run: RunData) -> dict[str, Any] | None:
    """The celebrity workload's rising account: its seeded followers, the new ones the workload
    added (acknowledged follows that changed something, each follower once), and when (seconds
    into the load) its follower count, unfollows taken off, first reached the pull threshold.
    None when the run made no such follow."""
    graph = run.graph
    if graph is None:
        return None
    account = graph.rising
    changes = [c for c in run.graph_changes if c.followee == account]   # flips only, in time order
    added = {c.follower for c in changes if c.following}
    if not added:
        return None
    before = len(graph.followers_of(account))
    count, crossed = before, None
    for c in changes:
        count += 1 if c.following else -1
        if crossed is None and count >= graph.spec.pull_threshold:
            crossed = c.t
    start = run.load_start_t or changes[0].t
    return {"account": account, "followers_seeded": before, "follows_added": len(added),
            "pull_threshold": graph.spec.pull_threshold,
            "crossed_at_s": crossed - start if crossed is not None and before < graph.spec.pull_threshold else None}


def write_reports(run_dir: Path, run: RunData, results: list[CheckResult]) -> Path:
    """Write summary.json, junit.xml and report.html into `run_dir`; return the report's path."""
    run_dir = Path(run_dir)
    write_json(run_dir / SUMMARY, jsonable({
        "run_id": run.manifest.run_id,
        "verdict": overall(results),
        "exit_code": exit_code(results),
        "valid": not invalid(results),
        "partial": run.partial,
        "aborted": run.manifest.aborted,
        "headline": headline(run, results),
        "checks": [asdict(r) for r in results if r.kind == "check"],
        "gates": [asdict(r) for r in results if r.kind == "gate"],
        "baseline": next((asdict(r) for r in results if r.kind == "baseline"), None),
        "manifest": run.manifest.to_json(),
    }))
    _write_whole(run_dir / JUNIT, junit.render(results, jsonable))
    report = run_dir / REPORT
    _write_whole(report, html.render(run, results, jsonable).encode())
    return report


def _write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
