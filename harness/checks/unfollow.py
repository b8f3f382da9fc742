"""Unfollow (design §10): once an unfollow is acknowledged, nothing its author wrote is served
in the follower's home feed (the read-time filter drops what was fanned out before).

From graph_changes: for each (follower, followee), the spans from an acknowledged unfollow to
the next acknowledged follow of the same account (or the end of the run). Anomalies:

- a home-feed read by the follower whose request left inside such a span, serving an item
  whose author is the unfollowed account (a retweet's author is its retweeter, so the
  unfollowed account retweeting counts, and someone else retweeting it does not);
- the follower's final home feed, if the last change of the pair was the unfollow, holding a
  tweet of the unfollowed account (authors known from the ledger and the retweets the
  workload made).

A run with no unfollow cannot judge this (unknown, not gating).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import HOME_FEED, final_reads, items, known_authors, not_exercised
from harness.rundata import RunData

NAME = "unfollow"


def check(run: RunData) -> CheckResult:
    changes: dict[tuple[int, int], list[tuple[float, bool]]] = defaultdict(list)
    for c in sorted(run.graph_changes, key=lambda c: c.t):
        changes[(c.follower, c.followee)].append((c.t, c.following))
    spans: dict[int, list[tuple[float, float, int]]] = defaultdict(list)   # follower -> (from, to, followee)
    unfollows = 0
    for (follower, followee), seq in changes.items():
        for n, (t, following) in enumerate(seq):
            if following:
                continue
            unfollows += 1
            until = next((t2 for t2, f2 in seq[n + 1:] if f2), float("inf"))
            spans[follower].append((t, until, followee))
    if not unfollows:
        return not_exercised(NAME, "no unfollow was acknowledged in this run")
    served: list[dict[str, Any]] = []
    reads_checked = 0
    for obs in run.observations:
        if obs.op not in HOME_FEED or obs.user not in spans:
            continue
        active = {followee: t for t, until, followee in spans[obs.user] if t < obs.sent_t < until}
        if not active:
            continue
        reads_checked += 1
        for item in items(obs):
            if item.author in active:
                served.append({"follower": obs.user, "unfollowed": item.author, "tweet": item.id, "op": obs.op,
                               "unfollowed_t": active[item.author], "served_t": obs.t,
                               "after_s": round(obs.t - active[item.author], 3)})
    authors = known_authors(run)   # also tweets made before the run
    finals = final_reads(run, "timeline")
    after_settle: list[dict[str, Any]] = []
    for (follower, followee), seq in changes.items():
        read = finals.get(follower)
        if seq[-1][1] or read is None:
            continue
        after_settle += [{"follower": follower, "unfollowed": followee, "tweet": str(t), "unfollowed_t": seq[-1][0]}
                         for t in read.tweet_ids if authors.get(str(t)) == followee]
    evidence = {"unfollows": unfollows, "reads_checked": reads_checked, "served_after_unfollow": len(served),
                "served_after_unfollow_examples": served[:EXAMPLES_MAX], "served_after_settle": len(after_settle),
                "served_after_settle_examples": after_settle[:EXAMPLES_MAX]}
    summary = (f"{unfollows} unfollows, {reads_checked} home-feed reads after them: {len(served)} items of an "
               f"unfollowed account served, {len(after_settle)} in final feeds (bound 0)")
    if served or after_settle:
        worst = (served or after_settle)[0]
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. user {worst['follower']} served tweet "
                           f"{worst['tweet']} of {worst['unfollowed']} after unfollowing it", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
