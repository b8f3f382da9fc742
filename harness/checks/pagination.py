"""Pagination (design §05b: cursor pagination): pages of a feed read while tweets keep arriving
neither repeat nor skip a tweet, and each is in order.

Anomalies:
- **out of order**: a home-feed page (feed, page, walk, backfill watch) whose ids are not
  strictly decreasing, or a delta not strictly increasing: ids are time ordered;
- **repeated**: an id twice in one page, or in two pages of one walk (a walk follows cursors
  page after page);
- **skipped**: within the span a walk covered (its first page's newest id to its last page's
  oldest), a tweet that the same reader had already been served before the walk began (so it
  was in the feed: fan-out is asynchronous, and a tweet not yet fanned out may reach the feed
  behind the walk) and that the reader's final feed still holds, which no page of the walk
  showed. A tweet the run took down (deleted, or a retweet undone or of a deleted tweet) or one
  by an account the reader unfollowed (acknowledged, or asked with no answer) is left to the
  deletion and unfollow checks: a target that keeps serving those in some reads and not others
  is their failure, not pagination's. Nor is a tweet acknowledged from FAULT_MARGIN_S before a
  fault to its heal plus the recovery grace judged for skips: its fan-out overlapped the fault,
  and a cache that failed over lacks it until the worker catches up (the design reads from the
  store "while cache rebuilds"; how late it arrives is the freshness check's).

A run with no walk cannot judge skips (the rest is still judged on every page).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import (
    CHRONOLOGICAL,
    final_reads,
    final_shows,
    indeterminate,
    known_authors,
    not_exercised,
    removals,
)
from harness.rundata import RunData
from records import Observation

NAME = "pagination"
FAULT_MARGIN_S = 5.0   # a tweet acknowledged this long before a fault may still be in the worker's batch


def _page_anomalies(obs: Observation) -> list[str]:
    ids = [int(i) for i in obs.ids]
    out = []
    if len(set(ids)) != len(ids):
        out.append("an id twice in one page")
    if obs.op in CHRONOLOGICAL and any(a <= b for a, b in zip(ids, ids[1:], strict=False)):
        out.append("not newest first")
    if obs.op == "delta" and any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        out.append("not oldest first")
    return out


def check(run: RunData) -> CheckResult:
    pages = [o for o in run.observations if o.op in CHRONOLOGICAL | {"delta"}]
    if not pages:
        return not_exercised(NAME, "no feed page was read in this run")
    bad_pages = [{"reader": o.user, "op": o.op, "t": o.t, "problems": p} for o in pages if (p := _page_anomalies(o))]
    walks: dict[str, list[Observation]] = defaultdict(list)
    for o in pages:
        if o.op == "walk" and o.walk:
            walks[o.walk].append(o)
    finals = final_reads(run, "timeline")
    served_before: dict[int, list[tuple[float, str]]] = defaultdict(list)   # reader -> (answered, id)
    for o in pages:
        if o.op != "delta":
            served_before[o.user] += [(o.t, tid) for tid in o.ids]
    maybe = indeterminate(run)
    taken_down = removals(run).keys() | maybe.maybe_removed
    authors = known_authors(run)   # also tweets made before the run
    spans = [(lo - FAULT_MARGIN_S, hi) for _, lo, hi in run.fault_intervals()]
    acked = {a.tweet_id: a.ack_t for a in run.acks}
    acked.update({rid: a.t for a in run.actions if a.kind == "retweet" for rid in a.ids})
    fanned_out_in_fault = {tid for tid, t in acked.items() if any(lo <= t <= hi for lo, hi in spans)}
    left_to_freshness = 0
    unfollowed: dict[int, set[int]] = defaultdict(set)
    for c in run.graph_changes:
        if not c.following:
            unfollowed[c.follower].add(c.followee)
    for follower, followee in maybe.maybe_unfollowed:
        unfollowed[follower].add(followee)
    repeated: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    boundaries = 0
    for walk, seq in walks.items():
        seq.sort(key=lambda o: o.page)
        seen: dict[str, int] = {}
        for o in seq:
            for tid in o.ids:
                if tid in seen and seen[tid] != o.page:
                    repeated.append({"walk": walk, "reader": o.user, "tweet": tid, "pages": [seen[tid], o.page]})
                seen.setdefault(tid, o.page)
        boundaries += sum(1 for a, b in zip(seq, seq[1:], strict=False) if a.ids and b.ids)
        read = finals.get(seq[0].user)
        shown = [int(t) for o in seq for t in o.ids]
        if read is None or not read.complete or not shown:
            continue
        earlier = {tid for t, tid in served_before[seq[0].user] if t < seq[0].sent_t}
        hi, lo = int(seq[0].ids[0]) if seq[0].ids else max(shown), min(shown)
        reader = seq[0].user
        for tid, shows in final_shows(read):
            t = int(tid)
            if tid in taken_down or shows in taken_down or authors.get(tid) in unfollowed[reader]:
                continue
            if lo < t < hi and tid in earlier and tid not in seen:
                if tid in fanned_out_in_fault:
                    left_to_freshness += 1
                    continue
                skipped.append({"walk": walk, "reader": seq[0].user, "tweet": str(tid),
                                "after_page": max((o.page for o in seq if o.ids and int(o.ids[-1]) > t), default=0)})
    evidence = {"pages": len(pages), "walks": len(walks), "page_boundaries": boundaries,
                "bad_pages": len(bad_pages), "bad_pages_examples": bad_pages[:EXAMPLES_MAX],
                "repeated_across_pages": len(repeated), "repeated_examples": repeated[:EXAMPLES_MAX],
                "skipped": len(skipped), "skipped_examples": skipped[:EXAMPLES_MAX],
                "not_judged_fanned_out_in_a_fault": left_to_freshness}
    summary = (f"{len(pages)} pages, {len(walks)} walks ({boundaries} page boundaries): {len(bad_pages)} pages out "
               f"of order or with a repeat, {len(repeated)} tweets repeated across pages, {len(skipped)} skipped "
               "(bound 0)" + (f"; {left_to_freshness} missing from a walk but fanned out during a fault, left to "
                              "freshness" if left_to_freshness else ""))
    if bad_pages or repeated or skipped:
        return CheckResult(NAME, Verdict.FAIL, summary, evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
