"""Fan-out stall after a worker dies (design §10, fan-out backlog after a worker crash): how long
the tweets a dead fan-out worker held wait before another worker takes them on, seen from the
outside through the freshness canaries.

For each fault that took a fan-out worker away (a `worker-N` killed or stopped): the canaries
acknowledged from its death until `slo.fanout_stall` before its heal started it again (each had
that long to be seen before the restarted worker, joining its groups, made them rebalance
again), each with its longest wait for a probed follower to see it.

Kafka hands a dead consumer's partitions to the rest of its group only once the group knows it
is gone: the reference target's workers tell within about a second (targets/feed/peers.py),
Kafka's session alone in 10 s. Until then a canary on one of its partitions waits; one on a
live worker's partition does not. So the worst wait is the stall, less the time before the
first canary that fell on a dead partition (a few canary intervals at most: `workload.canaries`),
plus that canary's own fan-out.

Judged against `slo.fanout_stall` (default 4 s: the design's goal for the stall is a quarter of
Kafka's 10 s session, 2.5 s, and a canary then waits its turn in the surviving worker's backlog
of a write burst. In four clean `worker-crash` runs on 2026-12-07 the stall, in the coordinator's
log, was 0.58-1.15 s and the worst canary waited 0.77-2.36 s; with the `slow-failover` defect,
10.8 s and 14.3 s). A canary never seen waited forever.

A canary acknowledged within the bound of another fault's window is left out: that fault may
have held it up (another worker's rejoin, a Kafka pause). A run without such a fault, or whose
workers were gone no longer than the bound, cannot judge this (not exercised); a fault with no
canary to judge while the worker was gone saw nothing (unknown, which gates).
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

from harness.checks.recovery import by_canary, wait_s
from harness.checks.result import CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.rundata import RunData
from records import FaultWindow, ProbeRecord

NAME = "fanout_stall"
WORKER = re.compile(r"^worker-\d+$")
DEATHS = ("killed", "stopped")     # chaos/process.py's events for a kill and a stop


def gone(w: FaultWindow, load_end: float) -> tuple[float, str, float] | None:
    """(when the worker died, how, when its heal started it again) for a fault that took a
    fan-out worker away; None for any other fault."""
    if not WORKER.match(w.target):
        return None
    death = next((e for e in w.events if e.get("what") in DEATHS), None)
    if death is None:
        return None
    back = next((float(e["t"]) for e in w.events if e.get("what") == "restarting"), None)
    end = back if back is not None else (w.end_t if w.end_t is not None else load_end)
    return float(death["t"]), str(death["what"]), end


def waits(probes: list[ProbeRecord]) -> list[tuple[float, float, str, int]]:
    """Each canary: (ack time, its longest wait (inf: a follower never saw it), id, that follower)."""
    out = []
    for tid, ps in by_canary(probes).items():
        worst = max(ps, key=wait_s)
        out.append((ps[0].ack_t, wait_s(worst), tid, worst.follower_id))
    return sorted(out)


def check(run: RunData) -> CheckResult:
    bound = run.slo.fanout_stall_s
    absences = [(w, a) for w in run.faults if (a := gone(w, run.load_end_t or math.inf)) is not None]
    if not absences:
        return not_exercised(NAME, "no fan-out worker was killed or stopped", bound_s=bound)
    if run.load_end_t is None:
        return CheckResult(NAME, Verdict.UNKNOWN, "the end of the load was not recorded", {"bound_s": bound})
    if all(back - bound <= died for _, (died, _, back) in absences):
        return not_exercised(NAME, f"no fan-out worker was gone longer than the bound ({bound:g} s)", bound_s=bound)
    canaries = waits(run.probes)
    gaps = [b[0] - a[0] for a, b in zip(canaries, canaries[1:], strict=False)]
    faults: list[dict[str, Any]] = []
    for w, (died, how, back) in absences:
        # another fault near the canary could hold it up too (a worker's rejoin, a Kafka pause)
        others = [(o.start - bound, (o.end_t if o.end_t is not None else run.load_end_t) + bound)
                  for o in run.faults if o is not w and o.start_t is not None]
        window = [c for c in canaries if died <= c[0] < back - bound]
        inside = [c for c in window if not any(lo <= c[0] <= hi for lo, hi in others)]
        entry: dict[str, Any] = {"target": w.target, "how": how, "died_t": died, "gone_s": round(back - died, 3),
                                 "judged_s": round(max(0.0, back - bound - died), 3), "canaries": len(inside),
                                 "left_to_other_faults": len(window) - len(inside)}
        if inside:
            ack, wait, tid, follower = max(inside, key=lambda c: c[1])
            entry.update(worst_wait_s=wait, worst_tweet=tid, worst_follower=follower,
                         worst_acked_after_s=round(ack - died, 3),
                         over_bound=sum(1 for c in inside if c[1] > bound))
        faults.append(entry)
    outside = [c[1] for c in canaries if not any(died <= c[0] < back for _, (died, _, back) in absences)]
    evidence: dict[str, Any] = {
        "bound_s": bound, "faults": faults,
        "canary_interval_s": statistics.median(gaps) if gaps else None,
        "worst_wait_outside_s": max(outside) if outside else None,
    }
    unseen = [f for f in faults if not f["canaries"] and f["judged_s"] > 0]
    judged = [f for f in faults if f["canaries"]]
    parts = [f"{f['target']} {f['how']}: its canaries waited at most {_show(f['worst_wait_s'])} "
             f"({f['canaries']} acked in the first {f['judged_s']:.1f} s of the {f['gone_s']:.1f} s it was gone)"
             for f in judged]
    parts += [f"{f['target']} {f['how']}: no canary acked in the first {f['judged_s']:.1f} s of the "
              f"{f['gone_s']:.1f} s it was gone"
              + (f" outside other faults' windows ({f['left_to_other_faults']} in them)"
                 if f["left_to_other_faults"] else "") for f in unseen]
    summary = "; ".join(parts) + f" (bound {bound:g} s)"
    late = [f for f in judged if f["worst_wait_s"] > bound]
    if late:
        worst = max(late, key=lambda f: f["worst_wait_s"])
        return CheckResult(NAME, Verdict.FAIL, summary + f"; canary {worst['worst_tweet']}, acked "
                           f"{worst['worst_acked_after_s']:.1f} s after {worst['target']} died, reached follower "
                           f"{worst['worst_follower']} after {_show(worst['worst_wait_s'])}", evidence)
    if unseen:
        return CheckResult(NAME, Verdict.UNKNOWN, summary, evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)


def _show(seconds: float) -> str:
    return "forever (never seen)" if math.isinf(seconds) else f"{seconds:.2f} s"
