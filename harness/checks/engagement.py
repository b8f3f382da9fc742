"""Engagement counts (design §02 and §10, counter divergence): like, retweet and reply counts
converge to what was acknowledged, and none is lost.

The truth for each tweet comes from the actions the run recorded: the distinct users whose like
was acknowledged; the retweets acknowledged less those undone; the replies acknowledged less
those deleted. A request that got no answer (or a 5xx) may have landed all the same: it widens
the accepted range by one instead of deciding it. Anomalies:

- **lost or extra after settle**: a tweet's count in its author's final tweets outside the
  accepted range (likes, retweets or replies). Only a tweet in this run's ledger is known to
  have started at zero; any other (a service feedlab did not start keeps the tweets, likes and
  retweets of earlier runs and of its other users) is judged only for counts below what was
  acknowledged: nothing lost, and nothing claimed about what it had before. Such a tweet that
  no read showed under its own author (only inside retweets) has no final read: not judged;
- **not converged**: a read, outside fault windows, whose request left more than the bound
  (`slo.counts_converge`, 10 s) after a like was acknowledged and showed fewer likes than
  were acknowledged by then.

Deleted tweets are left out. A run with no like, retweet or reply cannot judge this (unknown,
not gating); a tweet whose author's final read is missing or incomplete is unknown.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import final_reads, indeterminate, items, known_authors, not_exercised
from harness.rundata import RunData

NAME = "engagement"
COUNTS = ("likes", "retweets", "replies")


class _Truth:
    """One tweet's acknowledged engagement, and how far indeterminate requests may move it."""

    def __init__(self) -> None:
        self.likers: set[int] = set()
        self.maybe_likers: set[int] = set()
        self.retweets: set[str] = set()
        self.undone: set[str] = set()
        self.replies: set[str] = set()
        self.deleted_replies: set[str] = set()
        self.maybe = {c: 0 for c in COUNTS}      # may have been added
        self.maybe_gone = {c: 0 for c in COUNTS}  # may have been taken away

    def bounds(self, count: str) -> tuple[int, int]:
        if count == "likes":
            return len(self.likers), len(self.likers | self.maybe_likers)
        made, gone = (self.retweets, self.undone) if count == "retweets" else (self.replies, self.deleted_replies)
        n = len(made - gone)
        return n - self.maybe_gone[count], n + self.maybe[count]


def _truths(run: RunData) -> dict[str, _Truth]:
    truth: dict[str, _Truth] = defaultdict(_Truth)
    deleted = {a.tweet for a in run.actions if a.kind == "delete" and a.tweet}
    reply_of: dict[str, str] = {}
    for a in run.actions:
        if not a.tweet:
            continue
        if a.kind == "like":
            truth[a.tweet].likers.add(a.user)
        elif a.kind == "retweet":
            truth[a.tweet].retweets.update(a.ids)
        elif a.kind == "unretweet":
            truth[a.tweet].undone.update(a.ids)
        elif a.kind == "reply":
            truth[a.tweet].replies.update(a.ids)
            reply_of.update({r: a.tweet for r in a.ids})
    for reply, parent in reply_of.items():
        if reply in deleted:
            truth[parent].deleted_replies.add(reply)
    for r in run.requests:   # no answer, or a 5xx: it may have landed
        if r.target is None or r.ok:
            continue
        if r.op == "like" and r.user is not None:
            truth[r.target].maybe_likers.add(r.user)
        elif r.op == "retweet":
            truth[r.target].maybe["retweets"] += 1
        elif r.op == "unretweet":
            truth[r.target].maybe_gone["retweets"] += 1
        elif r.op == "reply":
            truth[r.target].maybe["replies"] += 1
        elif r.op == "delete" and r.target in reply_of:
            truth[reply_of[r.target]].maybe_gone["replies"] += 1
    return {t: v for t, v in truth.items() if t not in deleted}


def _not_converged(run: RunData, bound: float) -> tuple[int, list[dict[str, Any]]]:
    """Reads outside faults that showed fewer likes than were acknowledged `bound` before (each
    user's first acknowledged like of a tweet: a like is counted once per user)."""
    first: dict[tuple[str, int], float] = {}
    for a in run.actions:
        if a.kind == "like" and a.tweet:
            first[(a.tweet, a.user)] = min(first.get((a.tweet, a.user), a.t), a.t)
    acked: dict[str, list[float]] = defaultdict(list)
    for (tweet, _), t in first.items():
        acked[tweet].append(t)
    for times in acked.values():
        times.sort()
    in_fault = run.fault_predicate()
    judged, late = 0, []
    for obs in run.observations:
        if in_fault(obs.sent_t):
            continue
        for item in items(obs):
            if item.shows not in acked:
                continue
            times = acked[item.shows]
            due = bisect.bisect_right(times, obs.sent_t - bound)
            judged += 1
            if item.likes < due:
                late.append({"tweet": item.shows, "reader": obs.user, "served_t": obs.t, "likes_shown": item.likes,
                             "likes_acked_by_then": due, "last_of_them_acked_t": times[due - 1]})
    return judged, late


def check(run: RunData) -> CheckResult:
    bound = run.slo.counts_converge_s
    truths = _truths(run)
    if not truths:
        return not_exercised(NAME, "no like, retweet or reply was acknowledged in this run", bound_s=bound)
    made = {str(a.tweet_id) for a in run.acks}   # the ledger: tweets that started at zero
    authors = known_authors(run)
    finals = final_reads(run, "author")
    maybe_removed = indeterminate(run).maybe_removed
    wrong: list[dict[str, Any]] = []
    unknown: list[str] = []
    gone: list[str] = []
    checked = unledgered = 0
    unread: list[str] = []
    for tweet, truth in truths.items():
        if tweet not in made and tweet not in authors:
            unread.append(tweet)   # its author unknown: no final read of it was asked for
            continue
        read = finals.get(authors.get(tweet, -1))
        shown = read.counts.get(tweet) if read is not None else None
        if shown is None and tweet in maybe_removed and read is not None and read.complete:
            gone.append(tweet)   # a delete with no answer took effect: a tweet that is gone has no counts
            continue
        if shown is None:
            unknown.append(tweet)
            continue
        checked += 1
        made_here = tweet in made
        unledgered += not made_here
        for n, count in enumerate(COUNTS):
            lo, hi = truth.bounds(count)
            if shown[n] < lo or (made_here and shown[n] > hi):
                wrong.append({"tweet": tweet, "count": count, "shown": shown[n],
                              "acknowledged": lo if lo == hi else [lo, hi],
                              **({} if made_here else {"not_in_ledger": True})})
    judged, late = _not_converged(run, bound)
    evidence = {"bound_s": bound, "tweets": len(truths), "tweets_checked": checked, "tweets_unknown": len(unknown),
                "tweets_unknown_examples": unknown[:EXAMPLES_MAX],
                "tweets_gone_by_unanswered_delete": gone[:EXAMPLES_MAX],
                "tweets_not_in_ledger": unledgered,
                "tweets_not_in_ledger_unread": len(unread),
                "tweets_not_in_ledger_unread_examples": unread[:EXAMPLES_MAX],
                "likes_acknowledged": sum(len(t.likers) for t in truths.values()),
                "retweets_acknowledged": sum(len(t.retweets) for t in truths.values()),
                "replies_acknowledged": sum(len(t.replies) for t in truths.values()),
                "wrong_after_settle": len(wrong), "wrong_after_settle_examples": wrong[:EXAMPLES_MAX],
                "wrong_by_count": {c: sum(1 for w in wrong if w["count"] == c) for c in COUNTS},
                "reads_judged": judged, "not_converged": len(late), "not_converged_examples": late[:EXAMPLES_MAX]}
    older = (f" ({unledgered} not in this run's ledger, e.g. made before it: judged only for counts below "
             f"what was acknowledged)" if unledgered else "")
    summary = (f"{checked} of {len(truths)} engaged tweets checked after settle{older}: {len(wrong)} counts wrong; "
               f"{len(late)} of {judged} reads showed fewer likes than acknowledged {bound:g} s before (bound 0)")
    if unread:
        summary += f"; {len(unread)} not in the ledger and shown only inside retweets, not judged"
    if wrong or late:
        if wrong:
            w = wrong[0]
            example = f"tweet {w['tweet']} shows {w['shown']} {w['count']}, {w['acknowledged']} acknowledged"
        else:
            w = late[0]
            example = (f"tweet {w['tweet']} showed {w['likes_shown']} likes with {w['likes_acked_by_then']} "
                       f"acknowledged over {bound:g} s before")
        return CheckResult(NAME, Verdict.FAIL, f"{summary}; e.g. {example}", evidence)
    if unknown:
        return CheckResult(NAME, Verdict.UNKNOWN, f"{summary}; {len(unknown)} tweets' final counts unread", evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
