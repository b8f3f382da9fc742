"""Availability and blast radius of a cache-node fault (design §10, timeline cache node failure:
"serve from Cassandra while the cache rebuilds").

For each fault window that took a Redis primary away from its clients (killed, stopped,
paused, its link down or cut: the fault's first event with `slots` names the ranges the node
served), the home-feed reads sent in the window (feed, pages, walks, deltas, ranked,
backfill watches; abandoned attempts aside) are split by where the reader's data lives: a
user's timeline and follow sets are keyed with the hash tag `{user_id}` (the reference
target's layout), so a reader whose id hashes to the node's slots is *affected*, anyone
else is on a healthy shard.

Anomalies, per window:
- **not served**: fewer than `slo.cache_node_served_min` (default 99.9 %) of all feed reads
  answered 200 (a degraded read from the store counts as served);
- **healthy-shard errors**: any feed read of a reader on a healthy shard not answered 200:
  one node's failure must not reach users whose data it does not hold.

Faults of a component the feed read path does not use (the Kafka broker or its link, a fan-out
worker or its links, one API instance behind the balancer or nginx's link to it, Prometheus,
the ranker) are judged the same way
with every reader on a "healthy shard": none of their feed reads may fail, leaving aside reads
that also fall in another fault's window. Faults of what every read needs (nginx, Toxiproxy as
a whole, Cassandra for hydration misses) and the load generator's own link to nginx (a
client-side fault: every request crosses it) are listed as not judged: the design promises
nothing there, and the `errors` check bounds them.

A run with no such fault says nothing (unknown, not gating).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from redis.crc import key_slot

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import HOME_FEED, not_exercised
from harness.checks.stats import new_histogram, percentile_ms, record_ms
from harness.rundata import RunData, measured
from records import FaultWindow, Request

NAME = "availability"
FEED_READS = HOME_FEED | {"backfill"}


def user_slot(user: int) -> int:
    """The Redis Cluster slot of every key tagged `{user}` (hash tags hash only the tag)."""
    return int(key_slot(str(user).encode()))


# targets whose faults the feed read path must not notice
READ_PATH_FREE = re.compile(r"kafka|worker-\d+|api-\d+|prometheus|ranker")


def _judged_faults(run: RunData) -> tuple[list[tuple[FaultWindow, list[tuple[int, int]]]], list[FaultWindow]]:
    """(window, slots it took away) of each fault judged, and the faults not judged. A fault
    that took no slots and that the read path does not need has an empty slot list."""
    judged, not_judged = [], []
    for f in run.faults:
        if f.start_t is None:
            continue
        took = next((e for e in f.events if e.get("slots")), None)
        client, _, node = f.target.rpartition("->")   # one client role's link: `worker->redis-2`
        if took is not None and node.startswith("redis-") and client in ("", "api"):
            judged.append((f, [(int(lo), int(hi)) for lo, hi in took["slots"]]))
        elif client == "worker" or READ_PATH_FREE.fullmatch(node):   # the workers' links: no read uses them
            judged.append((f, []))
        else:
            not_judged.append(f)
    return judged, not_judged


def _judge(f: FaultWindow, slots: list[tuple[int, int]], reads: list[Request], served_min: float
           ) -> tuple[dict[str, Any], list[str]]:
    end = f.end_t if f.end_t is not None else max((r.t for r in reads), default=f.start)
    inside = [r for r in reads if f.start <= r.t <= end]
    affected: dict[bool, list[Request]] = defaultdict(list)
    for r in inside:
        slot = user_slot(r.user) if r.user is not None else -1
        affected[any(lo <= slot <= hi for lo, hi in slots)].append(r)
    served = sum(1 for r in inside if r.status == 200)
    share = served / len(inside) if inside else 1.0
    healthy_failed = [r for r in affected[False] if r.status != 200]
    figures = {
        "fault": f.name, "target": f.target, "start_t": f.start, "end_t": f.end_t, "slots": slots,
        "feed_reads": len(inside), "served": served, "served_share": share, "served_min": served_min,
        "affected_reads": len(affected[True]), "affected_served": sum(1 for r in affected[True] if r.status == 200),
        "healthy_reads": len(affected[False]), "healthy_failed": len(healthy_failed),
        "healthy_failed_examples": [{"reader": r.user, "op": r.op, "t": r.t, "status": r.status, "error": r.error}
                                    for r in healthy_failed[:EXAMPLES_MAX]],
        "latency_p99_ms": percentile_ms(record_ms(new_histogram(), (r.latency_ms for r in inside if r.status == 200)),
                                        99),
    }
    problems = []
    if not slots:   # a fault the read path does not need: every read is on a healthy shard
        if healthy_failed:
            problems.append(f"{f.name} on {f.target}: {len(healthy_failed)} of {len(inside)} feed reads failed, "
                            f"and the read path does not use {f.target} (bound 0)")
        return figures, problems
    if share < served_min:
        problems.append(f"{f.name} on {f.target}: {share:.2%} of {len(inside)} feed reads served "
                        f"(bound ≥ {served_min:.1%})")
    if healthy_failed:
        problems.append(f"{f.name} on {f.target}: {len(healthy_failed)} feed reads failed for readers on healthy "
                        "shards (bound 0)")
    return figures, problems


def _line(w: dict[str, Any]) -> str:
    p99 = f", p99 {w['latency_p99_ms']:.0f} ms" if w["latency_p99_ms"] else ""
    if not w["slots"]:
        return (f"{w['fault']} on {w['target']}: {w['served']} of {w['feed_reads']} feed reads served "
                f"(the read path does not use it: bound all){p99}")
    return (f"{w['fault']} on {w['target']}: {w['served']} of {w['feed_reads']} feed reads served "
            f"({w['served_share']:.2%}, bound ≥ {w['served_min']:.1%}), {w['healthy_failed']} of "
            f"{w['healthy_reads']} failed on healthy shards (bound 0){p99}")


def _others(run: RunData, f: FaultWindow) -> list[tuple[float, float]]:
    """The intervals of the other faults, whose reads a fault that took no slots is not charged with."""
    return [(o.start, o.end_t if o.end_t is not None else float("inf")) for o in run.faults
            if o is not f and o.start_t is not None]


def check(run: RunData) -> CheckResult:
    faults, not_judged = _judged_faults(run)
    if not faults:
        return not_exercised(NAME, "no fault of a Redis node or of a component the read path does not use",
                             not_judged=[f"{f.name} on {f.target}" for f in not_judged])
    reads = [r for r in measured(run.requests) if r.op in FEED_READS]
    windows, problems = [], []
    for f, slots in faults:
        others = [] if slots else _others(run, f)
        mine = [r for r in reads if not any(lo <= r.t <= hi for lo, hi in others)]
        bound = run.slo.cache_node_served_min if slots else 1.0
        figures, found = _judge(f, slots, mine, bound)
        windows.append(figures)
        problems += found
    summary = "; ".join(_line(w) for w in windows)
    evidence = {"windows": windows, "not_judged": [f"{f.name} on {f.target}" for f in not_judged]}
    if problems:
        return CheckResult(NAME, Verdict.FAIL, "; ".join(problems), evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
