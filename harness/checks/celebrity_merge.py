"""Celebrity merge (design §05, hybrid fan-out): the tweets of followed pull-tier accounts are
merged into the follower's feed at read time: present, once, in order.

Pull-tier accounts are the seeded graph's (followers at or above the pull threshold); their
followers are the seeded ones plus who followed them during the run, until they unfollowed.
For a first page of a follower's home feed read outside fault windows, every acknowledged
tweet of a followed pull-tier account that the page's range covers (newer than its oldest item,
or any when the page is the whole feed) and that was acknowledged more than SETTLE_S before the
read left must be on it. Anomaly: **missing** from such a page, or from the follower's final
feed (within its range). Repeats and order are the pagination check's.

A run in which no pull-tier account tweeted cannot judge this (unknown, not gating).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import final_reads, indeterminate, items, not_exercised, removals
from harness.rundata import RunData
from records import FollowChange
from workloads.graph import Graph

NAME = "celebrity_merge"
# The API re-reads the pull-tier registry every 2 s and each account's newest tweets every 1 s,
# and an account enters the registry when the fan-out worker first handles one of its tweets.
SETTLE_S = 5.0
FIRST_PAGES = frozenset({"feed", "backfill"})


class _Follows:
    """Whether a reader followed a pull-tier account at a time: the seeded graph, then changes."""

    def __init__(self, graph: Graph, changes: list[FollowChange], pulled: set[int],
                 unknown_from: dict[tuple[int, int], float]) -> None:
        self.graph = graph
        self.unknown_from = unknown_from   # an unfollow that got no answer: from then on, who knows
        self.changes: dict[tuple[int, int], list[tuple[float, bool]]] = defaultdict(list)
        for c in sorted(changes, key=lambda c: c.t):
            if c.followee in pulled:
                self.changes[(c.follower, c.followee)].append((c.t, c.following))

    def at(self, reader: int, account: int, t: float) -> bool:
        """Whether `reader` followed `account` at `t` for certain."""
        since = self.unknown_from.get((reader, account))
        if since is not None and t >= since:
            return False
        seq = self.changes.get((reader, account))
        before = [f for ct, f in seq if ct < t] if seq else []
        return before[-1] if before else self.graph.follows(reader, account)


def check(run: RunData) -> CheckResult:
    graph = run.graph
    if graph is None:
        return not_exercised(NAME, "no graph.json: who follows whom is unknown")
    pulled = set(graph.celebrities)
    maybe = indeterminate(run)
    gone = removals(run).keys() | maybe.maybe_removed
    tweets: dict[int, list[tuple[int, float]]] = defaultdict(list)   # account -> [(id, ack)] ascending
    for a in run.acks:
        if a.author_id in pulled and str(a.tweet_id) not in gone:
            tweets[int(a.author_id)].append((int(a.tweet_id), a.ack_t))
    if not tweets:
        return not_exercised(NAME, "no pull-tier account tweeted in this run")
    for seq in tweets.values():
        seq.sort()
    follows = _Follows(graph, run.graph_changes, pulled, maybe.maybe_unfollowed)
    in_fault = run.fault_predicate()
    missing: list[dict[str, Any]] = []
    pages = expected_total = 0
    for obs in run.observations:
        if obs.op not in FIRST_PAGES or obs.page != 0 or in_fault(obs.sent_t):
            continue
        shown = {int(i.shows) for i in items(obs)} | {int(i) for i in obs.ids}
        floor = min((int(i) for i in obs.ids), default=0) if obs.has_more else 0
        judged = False
        for account, seq in tweets.items():
            if not follows.at(obs.user, account, obs.sent_t):
                continue
            for tid, ack in seq[bisect.bisect_right(seq, (floor, float("inf"))):]:
                if ack > obs.sent_t - SETTLE_S:
                    continue
                judged = True
                expected_total += 1
                if tid not in shown:
                    missing.append({"reader": obs.user, "account": account, "tweet": str(tid), "read_t": obs.t,
                                    "acked_before_s": round(obs.sent_t - ack, 3)})
        pages += judged
    finals_missing: list[dict[str, Any]] = []
    for reader, read in final_reads(run, "timeline").items():
        if not read.complete or not read.tweet_ids:
            continue
        floor = min(int(t) for t in read.tweet_ids) if len(read.tweet_ids) >= run.timeline_cap else 0
        shown = {int(t) for t in read.tweet_ids} | {int(o) for o in read.originals.values()}
        for account, seq in tweets.items():
            if follows.at(reader, account, float("inf")):
                finals_missing += [{"reader": reader, "account": account, "tweet": str(tid)}
                                   for tid, _ in seq if tid > floor and tid not in shown]
    evidence = {"pull_tier_accounts_tweeting": sorted(tweets), "pull_tier_tweets": sum(map(len, tweets.values())),
                "pages_judged": pages, "expected_on_pages": expected_total, "missing": len(missing),
                "missing_examples": missing[:EXAMPLES_MAX], "missing_from_final_feeds": len(finals_missing),
                "missing_from_final_feeds_examples": finals_missing[:EXAMPLES_MAX]}
    summary = (f"{evidence['pull_tier_tweets']} tweets of {len(tweets)} pull-tier accounts, {pages} followers' first "
               f"pages judged: {len(missing)} of {expected_total} expected missing, {len(finals_missing)} missing from "
               "final feeds (bound 0)")
    if missing or finals_missing:
        e = (missing or finals_missing)[0]
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. user {e['reader']}'s feed lacked tweet {e['tweet']} "
                           f"of pull-tier account {e['account']}", evidence)
    if not pages:
        return not_exercised(NAME, "no follower of a tweeting pull-tier account read a first page outside faults",
                             **evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
