"""Deletion propagation (design §10, tweet deletion lag): once a deletion is acknowledged, the
tweet leaves every feed within a bound, and is gone for good after the settle period.

Deletions are the delete actions the run recorded, and the undos of retweets (a retweet undone
is the retweet taken down, by its own id). An item *shows* a deleted tweet when it is that
tweet, or a retweet of it (a retweet goes with its original). Anomalies:

- **served late**: a read whose request left more than the bound (`slo.deletion_lag`, 60 s:
  the design accepts "seconds to minutes") after the deletion's acknowledgement, showing it;
- **served after settle**: a final read (home feed or author's tweets) showing it.

The lag of each deletion is the last time any read that left after its acknowledgement still
showed it (0 when none did): its distribution is evidence, the bound is the verdict. A run with
no deletion cannot judge this (unknown, not gating).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import final_shows, items, not_exercised, removals
from harness.checks.stats import nearest_rank
from harness.rundata import RunData

NAME = "deletion"


def _reason(gone: str, served_as: str, undone: set[str]) -> str:
    if gone in undone:
        return "undone retweet"
    return "deleted tweet" if gone == served_as else "retweet of a deleted tweet"


def check(run: RunData) -> CheckResult:
    bound = run.slo.deletion_lag_s
    removed = removals(run)
    undone = {rid for a in run.actions if a.kind == "unretweet" for rid in a.ids}
    if not removed:
        return not_exercised(NAME, "no deletion (or retweet undone) was acknowledged in this run", bound_s=bound)
    last_served: dict[str, float] = {}
    late: list[dict[str, Any]] = []
    for obs in run.observations:
        for item in items(obs):
            for gone in {item.id, item.shows} & removed.keys():
                acked = removed[gone]
                if obs.sent_t <= acked:
                    continue
                last_served[gone] = max(last_served.get(gone, acked), obs.t)
                if obs.sent_t > acked + bound:
                    late.append({"tweet": gone, "served_as": item.id, "reader": obs.user, "op": obs.op,
                                 "reason": _reason(gone, item.id, undone), "deleted_t": acked, "served_t": obs.t,
                                 "after_s": round(obs.t - acked, 3)})
    after_settle: list[dict[str, Any]] = []
    for read in run.final_reads:
        for item_id, shows in final_shows(read):
            for gone in {item_id, shows} & removed.keys():
                after_settle.append({"tweet": gone, "served_as": item_id, "reader": read.user_id,
                                     "read": read.kind, "reason": _reason(gone, item_id, undone),
                                     "deleted_t": removed[gone]})
    lags = sorted(last_served.get(t, a) - a for t, a in removed.items())
    evidence = {
        "bound_s": bound, "deletions": len(removed),
        "deletes": sum(1 for a in run.actions if a.kind == "delete"),
        "retweets_undone": sum(1 for a in run.actions if a.kind == "unretweet"),
        "served_after_deletion": len(last_served),
        "lag_median_s": statistics.median(lags), "lag_p99_s": nearest_rank(lags, 99), "lag_max_s": lags[-1],
        "served_late": len(late), "served_late_examples": late[:EXAMPLES_MAX],
        "served_after_settle": len(after_settle), "served_after_settle_examples": after_settle[:EXAMPLES_MAX],
        "served_by_reason": dict(Counter(e["reason"] for e in late + after_settle)),
    }
    summary = (f"{len(removed)} deletions: lag max {lags[-1]:.1f} s (median {evidence['lag_median_s']:.1f} s); "
               f"{len(late)} reads served a deleted tweet past {bound:g} s, {len(after_settle)} after settle "
               f"(bound 0)")
    if late or after_settle:
        worst = (late or after_settle)[0]
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. tweet {worst['tweet']} deleted, still served to "
                           f"user {worst['reader']}", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
