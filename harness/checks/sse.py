"""SSE (design §04, notification gateway): a user holding a stream open is told of each new
tweet of an account they follow. The design calls it best effort: a signal may be lost while a
shard is down (the fan-out does not send a signal late), so this check reports by default, and
decides the run only when the scenario says so (`checks: {sse: gate}`).

Expected signals: each tweet the target acknowledged (ledger; a retried post's id once) by an
author whose tweets are pushed (push tier or throttled band: fewer followers than 95 % of the
pull threshold when it was acknowledged, so that no tier is in doubt; a pull-tier tweet is
merged at read time and signals no one), for each listener who followed the author
at that time (seeded graph, then graph_changes) and whose stream was open from before the
acknowledgement until `slo.sse_delay_p99_s` after it. A signal is delivered when that listener
received an `event: tweet` naming the tweet; its delay is from the acknowledgement.

Judged on tweets acknowledged outside fault windows (and their recovery): delivered share at
least `slo.sse_delivered_min` and delay p99 within `slo.sse_delay_p99_s`. The fault windows'
share is evidence. No stream, or nothing expected outside faults: unknown.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.checks.stats import nearest_rank
from harness.rundata import RunData

NAME = "sse"
PUSHED_SHARE = 0.95   # authors below this share of the pull threshold are surely pushed


class _Follows:
    """Who followed whom, and how many followers an author had, at a time."""

    def __init__(self, run: RunData) -> None:
        assert run.graph is not None
        self.graph = run.graph
        self.changes: dict[tuple[int, int], list[tuple[float, bool]]] = defaultdict(list)
        self.count_changes: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for c in sorted(run.graph_changes, key=lambda c: c.t):
            self.changes[(c.follower, c.followee)].append((c.t, c.following))
            self.count_changes[c.followee].append((c.t, 1 if c.following else -1))

    def follows(self, follower: int, followee: int, t: float) -> bool:
        state = self.graph.follows(follower, followee)
        for when, following in self.changes.get((follower, followee), ()):
            if when > t:
                break
            state = following
        return state

    def followers(self, author: int, t: float) -> int:
        return self.graph.follower_count(author) + sum(d for when, d in self.count_changes.get(author, ()) if when <= t)


def check(run: RunData) -> CheckResult:
    slo = run.slo
    bound, share_min = slo.sse_delay_p99_s, slo.sse_delivered_min
    opened = [s for s in run.streams if s.opened_t is not None]
    if not run.streams or run.graph is None:
        return not_exercised(NAME, "no SSE listener held a stream in this run")
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in sorted(opened, key=lambda s: s.opened_t or 0.0):
        spans[s.user].append((s.opened_t or 0.0, s.closed_t))
    starts = {u: [lo for lo, _ in ss] for u, ss in spans.items()}

    def open_through(user: int, lo: float, hi: float) -> bool:
        i = bisect.bisect_right(starts[user], lo) - 1
        return i >= 0 and spans[user][i][1] >= hi

    received: dict[tuple[int, str], float] = {}
    copies = Counter((s.user, s.tweet_id) for s in run.signals)
    for sig in run.signals:
        key = (sig.user, sig.tweet_id)
        received[key] = min(received.get(key, sig.t), sig.t)
    acked: dict[str, tuple[float, int]] = {}
    for a in run.acks:
        if a.tweet_id not in acked or a.ack_t < acked[a.tweet_id][0]:
            acked[a.tweet_id] = (a.ack_t, a.author_id)
    follows = _Follows(run)
    pushed_below = PUSHED_SHARE * run.graph.spec.pull_threshold
    in_fault = run.fault_predicate()
    judged: dict[str, list[float | None]] = {"steady": [], "fault": []}   # delay, None: not delivered
    missing: list[dict[str, Any]] = []
    for tweet, (ack_t, author) in sorted(acked.items(), key=lambda kv: kv[1][0]):
        listening = [u for u in spans if u != author and open_through(u, ack_t, ack_t + bound)
                     and follows.follows(u, author, ack_t)]
        if not listening or follows.followers(author, ack_t) >= pushed_below:
            continue
        window = "fault" if in_fault(ack_t) else "steady"
        for user in listening:
            got = received.get((user, tweet))
            judged[window].append(None if got is None else got - ack_t)
            if got is None and window == "steady":
                missing.append({"listener": user, "tweet": tweet, "author": author, "ack_t": ack_t})

    def summary_of(delays: list[float | None]) -> dict[str, Any]:
        got = sorted(d for d in delays if d is not None)
        return {"expected": len(delays), "delivered": len(got),
                "delivered_share": round(len(got) / len(delays), 5) if delays else None,
                "delay_median_s": round(statistics.median(got), 3) if got else None,
                "delay_p99_s": round(nearest_rank(got, 99) or 0.0, 3) if got else None,
                "delay_max_s": round(got[-1], 3) if got else None}

    steady, fault = summary_of(judged["steady"]), summary_of(judged["fault"])
    evidence = {
        "listeners": len({s.user for s in run.streams}), "connections": len(opened),
        "connections_refused": sum(1 for s in run.streams if s.opened_t is None),
        "refused_by_status": dict(Counter(str(s.status) for s in run.streams if s.opened_t is None)),
        "signals_received": len(run.signals), "signals_repeated": sum(n - 1 for n in copies.values() if n > 1),
        "delivered_min": share_min, "delay_p99_bound_s": bound,
        "steady": steady, "fault": fault,
        "missing": len(missing), "missing_examples": missing[:EXAMPLES_MAX],
    }
    if not steady["expected"]:
        return CheckResult(NAME, Verdict.UNKNOWN, f"{len(opened)} streams opened, but no tweet outside the fault "
                           "windows was expected by a listener held open through its bound", evidence)
    share, p99 = steady["delivered_share"], steady["delay_p99_s"]
    summary = (f"{steady['delivered']} of {steady['expected']} signals delivered to connected followers outside "
               f"faults ({share:.2%}, bound ≥ {share_min:.2%}), delay p99 "
               + ("n/a" if p99 is None else f"{p99:.2f} s") + f" (bound ≤ {bound:g} s)")
    if fault["expected"]:
        summary += f"; in fault windows {fault['delivered']} of {fault['expected']}"
    if share < share_min or p99 is None or p99 > bound:
        if missing:
            m = missing[0]
            summary += f"; e.g. user {m['listener']} never told of tweet {m['tweet']} by {m['author']}"
        return CheckResult(NAME, Verdict.FAIL, summary, evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
