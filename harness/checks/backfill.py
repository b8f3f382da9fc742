"""Backfill (design §10, user follows celebrity): a new follower of a throttled-band or
pull-tier account finds its newest tweets in their feed within the bound
(`slo.backfill`, 10 s).

Each large follow (action follow_large) names the account's newest tweets as read just before
the follow; the workload then watches the follower's feed once a second. Anomaly: no read of
the follower's feed within the bound showed all of them (those deleted since, retweets whose
original was deleted since, and a follow undone within the bound, excused). A full page can
only show what is newer than its last item: a followed account's tweet older than that (its
follower's feed filled with newer tweets, as in a write spike) is not asked of it, and a page
that could show none of them says nothing. The delay is the first read that showed them all.

A follow is on time when a read *sent* within the bound showed them all (its answer may come a
little after: when the server looked is not known more closely than that). The bound counts
healthy time: a follow whose bound overlaps fault windows gets that much longer (with the
store paused for 8 s, a backfill took 13 s).

A run with no large follow cannot judge this (unknown, not gating); a follow whose watch ended
before the bound without a verdict (the feed did not answer) is unknown.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import HOME_FEED, not_exercised, removals
from harness.rundata import RunData
from records import Observation

NAME = "backfill"


def _holdable(page: Observation, expected: set[str]) -> set[str]:
    """The expected tweets `page` could hold: a full first page of the feed (newest first, more
    after it) cannot hold a tweet older than its last item. Any other read is held to all."""
    first_page = page.op in ("feed", "backfill") or (page.op == "walk" and page.page == 0)
    if not (first_page and page.has_more and page.ids):
        return expected
    floor = min(int(i) for i in page.ids)
    return {t for t in expected if int(t) >= floor}


def _shows(page: Observation, expected: set[str]) -> bool | None:
    """Whether a read of the follower's feed shows every expected tweet it could hold. None:
    it could hold none of them (the follower's feed filled with newer tweets), so it says
    nothing."""
    holdable = _holdable(page, expected)
    return holdable <= set(page.ids) if holdable else None


def check(run: RunData) -> CheckResult:
    bound = run.slo.backfill_s
    follows = [(a, a.other) for a in run.actions if a.kind == "follow_large" and a.other is not None]
    if not follows:
        return not_exercised(NAME, "no follow of a large account in this run", bound_s=bound)
    reads: dict[int, list[Observation]] = defaultdict(list)
    for o in run.observations:
        if o.op in HOME_FEED:
            reads[o.user].append(o)
    undone: dict[tuple[int, int], list[float]] = defaultdict(list)
    for c in run.graph_changes:
        if not c.following:
            undone[(c.follower, c.followee)].append(c.t)
    gone = removals(run)
    # a retweet goes with its original: one of the account's retweets whose original was deleted
    gone |= {rid: gone[a.tweet] for a in run.actions if a.kind == "retweet" and a.tweet in gone for rid in a.ids}
    faults = [(lo, hi) for _, lo, hi in run.fault_intervals(grace_s=0.0)]
    delays: list[float] = []
    late: list[dict[str, Any]] = []
    unknown: list[dict[str, Any]] = []
    extended = 0
    for f, other in follows:
        if any(f.t < t <= f.t + bound for t in undone[(f.user, other)]):
            continue
        # the bound in healthy time: the fault time inside it is added
        within = bound + sum(max(0.0, min(hi, f.t + bound) - max(lo, f.t)) for lo, hi in faults)
        extended += within > bound
        expected = {i for i in f.ids if i not in gone}
        if not expected:
            delays.append(0.0)
            continue
        after = [(o, v) for o in sorted((o for o in reads[f.user] if o.sent_t >= f.t), key=lambda o: o.t)
                 if (v := _shows(o, expected)) is not None]
        shown = next((o for o, v in after if v), None)
        if shown is not None and shown.sent_t - f.t <= within:
            delays.append(shown.t - f.t)
            continue
        if shown is None and not any(o.sent_t >= f.t + within for o, _ in after):
            unknown.append({"follower": f.user, "followed": other, "t": f.t, "reads_after": len(after)})
            continue
        latest = max((o for o, _ in after if o.sent_t <= f.t + within), key=lambda o: o.t, default=None)
        late.append({"follower": f.user, "followed": other, "followed_t": f.t,
                     "missing": sorted(_holdable(latest, expected) - set(latest.ids)) if latest else sorted(expected),
                     "shown_after_s": None if shown is None else round(shown.t - f.t, 3)})
    evidence: dict[str, Any] = {"bound_s": bound, "large_follows": len(follows), "judged": len(delays) + len(late),
                                "delay_median_s": statistics.median(delays) if delays else None,
                                "delay_max_s": max(delays) if delays else None,
                                "late": len(late), "late_examples": late[:EXAMPLES_MAX],
                                "unknown": len(unknown), "unknown_examples": unknown[:EXAMPLES_MAX],
                                "bound_extended_by_faults": extended}
    summary = (f"{len(follows)} follows of large accounts: {len(late)} new followers without the account's newest "
               f"tweets {bound:g} s of healthy time later (bound 0)"
               + (f"; delay median {evidence['delay_median_s']:.1f} s, max {evidence['delay_max_s']:.1f} s"
                  if delays else ""))
    if late:
        e = late[0]
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. user {e['follower']} followed {e['followed']} and "
                           f"lacked {', '.join(e['missing'][:3])} after {bound:g} s", evidence)
    if unknown and not delays:
        return CheckResult(NAME, Verdict.UNKNOWN, f"{summary}; {len(unknown)} follows' feeds not read", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
