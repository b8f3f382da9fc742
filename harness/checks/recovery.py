"""Recovery: how long after a fault heals the target is back where it was before the faults.

For each group of overlapping faults, from its last heal:
- **Kafka lag** (the target's `feed_kafka_consumer_lag` per consumer group, from Prometheus):
  every group back at its steady level (the highest it was before the first fault, at least
  LAG_FLOOR messages) for STABLE_S: its mean over them at most that level, no sample above
  SWING times it (a worker that resumes late lets the lag build *after* the heal);
- **freshness** back under its bound (`slo.freshness_median`): the first canary acknowledged
  after the heal whose median follower saw it in time.

The recovery time is the later of the two, measured through any later fault (a fault that does
not touch the pipeline hides nothing); each group is judged against `slo.recovery` (default
30 s, the design's failover budget). A group back within it passes. One not back by then fails,
unless another fault began within the bound or the load ended first: then it cannot be told
(unknown); nor can the lag without the target's metrics (Prometheus lost: said, unknown), nor
the freshness of a target that was not fresh before the first fault.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from harness.checks.result import CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.rundata import RunData
from records import FaultWindow, ProbeRecord

NAME = "recovery"
LAG_SERIES = "kafka_consumer_lag"
LAG_FLOOR = 10.0         # messages: a group's lag this small is back, whatever it was before (a paced lane
                         # wanders a few messages around its level: its pre-fault maximum is no ceiling)
STABLE_S = 5.0           # the lag must stay at its steady level this long to count as back
SWING = 1.5              # ... its mean at most the level, no sample above this many times it
BEFORE_MARGIN_S = 2.0    # the steady level is read until this long before the first invoke


def lag_points(run: RunData) -> dict[str, list[tuple[float, float]]]:
    """Each consumer group's lag over time (summed over the processes reporting it): (t, messages)."""
    by_group: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for s in (run.target_metrics.get(LAG_SERIES) or {}).get("series") or []:
        group = str((s.get("labels") or {}).get("group", ""))
        for t, v in s.get("points") or []:
            if v is not None:
                by_group[group][float(t)] += float(v)
    return {g: sorted(points.items()) for g, points in sorted(by_group.items())}


def groups(faults: list[FaultWindow], load_end: float) -> list[list[FaultWindow]]:
    """Faults whose windows overlap, together (a fault never healed lasts to the end of load)."""
    out: list[list[FaultWindow]] = []
    end = -math.inf
    for w in sorted(faults, key=lambda w: w.start):
        w_end = w.end_t if w.end_t is not None else load_end
        if out and w.start <= end:
            out[-1].append(w)
            end = max(end, w_end)
        else:
            out.append([w])
            end = w_end
    return out


def by_canary(probes: list[ProbeRecord]) -> dict[str, list[ProbeRecord]]:
    """The probe records of each canary tweet (one per follower watched), by tweet id."""
    out: dict[str, list[ProbeRecord]] = defaultdict(list)
    for p in probes:
        out[p.tweet_id].append(p)
    return out


def wait_s(p: ProbeRecord) -> float:
    """A follower's wait for a canary; inf: never seen."""
    return math.inf if p.freshness_s is None else p.freshness_s


def canaries(probes: list[ProbeRecord]) -> list[tuple[float, float, str]]:
    """Each canary tweet: (ack time, median follower freshness (inf: unseen), id), by ack time."""
    return sorted((ps[0].ack_t, statistics.median(wait_s(p) for p in ps), tid)
                  for tid, ps in by_canary(probes).items())


def lag_back(points: list[tuple[float, float]], level: float, since: float, until: float) -> float | None:
    """When, in [since, until), the lag was back at its steady level: over the STABLE_S that
    follow (which may end after `until`: a next fault that does not move the lag does not hide
    it), its mean at or below `level` and no sample above SWING times it. A lane that commits
    in batches (the counter lane, at its checkpoints) swings around its level, past its
    pre-fault maximum now and then (44 against 34 in a smoke run, which then never counted as
    back); a backlog keeps the mean above it."""
    after = [(t, v) for t, v in points if t >= since]
    for i, (t, _) in enumerate(after):
        if t >= until or after[-1][0] < t + STABLE_S:
            break
        window = [v for u, v in after[i:] if u <= t + STABLE_S]
        if statistics.fmean(window) <= level and max(window) <= SWING * level:
            return t
    return None


def check(run: RunData) -> CheckResult:
    faults = [w for w in run.faults if w.start_t is not None]
    if not faults:
        return not_exercised(NAME, "the scenario schedules no fault")
    load_end = run.load_end_t
    if load_end is None:
        return CheckResult(NAME, Verdict.UNKNOWN, "the end of the load was not recorded", {})
    bound, fresh_bound = run.slo.recovery_s, run.slo.freshness_median_s
    first = min(w.start for w in faults)
    lags = lag_points(run)
    steady_from, steady_to = run.load_start_t or 0.0, first - BEFORE_MARGIN_S
    levels = {g: max(LAG_FLOOR, *(v for t, v in points if steady_from <= t < steady_to))
              for g, points in lags.items() if any(steady_from <= t < steady_to for t, _ in points)}
    tweets = canaries(run.probes)
    fresh_before = [f for t, f, _ in tweets if t < first - BEFORE_MARGIN_S]
    stale_before = bool(fresh_before) and statistics.median(fresh_before) >= fresh_bound
    rows: list[dict[str, Any]] = []
    clusters = groups(faults, load_end)
    for i, group in enumerate(clusters):
        heal = max(w.end_t if w.end_t is not None else load_end for w in group)
        # measured through any later fault (one that does not touch the pipeline hides nothing),
        # and judged knowing when the next one came
        next_start = clusters[i + 1][0].start if i + 1 < len(clusters) else math.inf
        row: dict[str, Any] = {"faults": [f"{w.name} @ {w.target}" for w in group],
                               "fault_starts": [w.start for w in group], "heal_t": heal,
                               "window_s": max(0.0, load_end - heal),
                               "next_fault_after_s": None if math.isinf(next_start) else next_start - heal}
        back = {g: lag_back(lags[g], level, heal, load_end) for g, level in levels.items()}
        row["lag_back_by_group_s"] = {g: None if t is None else round(max(0.0, t - heal), 2) for g, t in back.items()}
        lag_t = None if not back or None in back.values() else max(t for t in back.values() if t is not None)
        fresh = next(((t, f, tid) for t, f, tid in tweets if heal <= t < load_end and f < fresh_bound), None)
        row["lag_back_s"] = None if lag_t is None else max(0.0, lag_t - heal)
        row["freshness_back_s"] = None if fresh is None else fresh[0] - heal
        row["first_fresh_canary"] = None if fresh is None else {"tweet": fresh[2], "freshness_s": fresh[1]}
        row["stale_canaries_after_heal"] = [{"tweet": tid, "acked_after_heal_s": round(t - heal, 1),
                                             "freshness_s": f} for t, f, tid in tweets
                                            if heal <= t < load_end and (fresh is None or t < fresh[0])][:10]
        parts = [row["lag_back_s"], row["freshness_back_s"]]
        row["recovery_s"] = None if None in parts else max(p for p in parts if p is not None)
        another_fault_within_bound = next_start < heal + bound
        if row["recovery_s"] is not None and row["recovery_s"] <= bound:
            row["verdict"] = "pass"
        elif another_fault_within_bound or not levels or stale_before or row["window_s"] < bound:
            row["verdict"] = "unknown"         # the next fault, or the end of the load, came first
        else:
            row["verdict"] = "fail"            # the bound passed, under load and no other fault, without it
        rows.append(row)
    evidence = {"bound_s": bound, "freshness_bound_s": fresh_bound, "lag_steady_levels": levels,
                "stable_s": STABLE_S, "groups": rows}
    said = "; ".join(_line(r, lag_measured=bool(levels)) for r in rows)
    if any(r["verdict"] == "fail" for r in rows):
        return CheckResult(NAME, Verdict.FAIL, f"{said} (bound {bound:g} s)", evidence)
    if not levels:
        why = run.manifest.target_metrics_error or "no Kafka lag samples before the first fault"
        return CheckResult(NAME, Verdict.UNKNOWN, f"cannot tell the Kafka lag's recovery: {why}; {said}", evidence)
    if stale_before:
        return CheckResult(NAME, Verdict.UNKNOWN, f"freshness was over its bound ({fresh_bound:g} s) before the "
                           f"first fault: nothing to recover to; {said}", evidence)
    if any(r["verdict"] == "unknown" for r in rows):
        return CheckResult(NAME, Verdict.UNKNOWN, f"{said} (bound {bound:g} s)", evidence)
    return CheckResult(NAME, Verdict.PASS, f"{said} (bound {bound:g} s)", evidence)


def _line(row: dict[str, Any], *, lag_measured: bool = True) -> str:
    what = " + ".join(row["faults"])
    if not lag_measured:   # without the lag's series, only freshness can be said
        back = row["freshness_back_s"]
        return (f"{what}: freshness back {back:.1f} s after the heal" if back is not None
                else f"{what}: freshness not back in the {row['window_s']:.0f} s after the heal")
    if row["recovery_s"] is not None:
        by_group = row["lag_back_by_group_s"]
        slowest = f", {max(by_group, key=by_group.get)}" if by_group else ""
        return (f"{what}: back {row['recovery_s']:.1f} s after the heal (Kafka lag {row['lag_back_s']:.1f} s"
                f"{slowest}, freshness {row['freshness_back_s']:.1f} s)")
    missing = [name for name, key in (("Kafka lag", "lag_back_s"), ("freshness", "freshness_back_s"))
               if row[key] is None]
    if not missing:
        return f"{what}: back only {row['recovery_s']:.1f} s after the heal"
    nxt = "" if row["next_fault_after_s"] is None else f", the next fault {row['next_fault_after_s']:.0f} s after it"
    return f"{what}: {' and '.join(missing)} not back in the {row['window_s']:.0f} s after the heal{nxt}"
