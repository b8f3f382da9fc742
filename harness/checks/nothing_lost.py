"""Nothing acknowledged is lost: a set check of the write ledger against the final reads.

Every tweet the target acknowledged (ledger.jsonl) must, after the settle period, be

(a) in its author's tweets (FinalRead kind "author"), else it is **lost from the store**;
(b) if its author is push tier, in the home timeline (kind "timeline") of every follower, else
    it is **missing from a timeline**, unless the timeline cap legitimately trimmed it.

Timelines are capped lists (manifest "timeline_cap", newest first), so an old tweet falling
off is correct behaviour. For each follower the expected set is the newest `cap` ids among the
acked tweets of the push-tier authors they follow (Snowflake ids are time ordered, compared as
integers). Other tweets take slots too: the follower's own tweets, and writes that timed out on
the client (indeterminate: they may have landed). So every id the timeline shows is ranked
alongside the expected ones; one that landed but is not shown was itself trimmed and cannot matter.
Some entries hold a slot without being shown: a retweet whose original was deleted (hydration
drops it), and the tweets of an account the follower unfollowed (the read filter drops them);
they are ranked alongside too (`hidden_slots`).

On a large graph the campaign reads back a seeded sample of the followers' timelines (manifest
"final_reads_max_timelines"); the check draws the same sample and says so in its summary.

Retweets are tweets of the retweeter's: one acknowledged, not undone, whose original was not
deleted, must be in the home timeline of each follower of a push-tier retweeter whose final
feed was read (the campaign reads a few per retweeter) and whose feed has room for it.

Pull-tier ("celebrity") tweets are merged at read time, never fanned out, and not checked here.
A user whose final read is missing or stopped early (complete False) cannot prove a tweet
absent: such pairs make the check unknown, unless some other tweet is definitely missing.
The graph is the seeded one: a (follower, author) pair whose follow changed during the run
(graph_changes) is the unfollow and backfill checks' business, not this one's. A delete,
unretweet or unfollow that got no answer (no response, or a 5xx) may have landed: its tweet,
retweet or pair is not expected either way (`served.indeterminate`). A tweet whose
deletion was acknowledged is not expected anywhere (the deletion check holds it to being gone).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.checks.result import EXAMPLES_MAX, CheckResult, Verdict
from harness.checks.served import Indeterminate, authors_of, indeterminate
from harness.final_reads import timelines_to_read
from harness.rundata import RunData
from records import Ack, FinalRead
from workloads.graph import Graph

NAME = "nothing_lost"


@dataclass
class _Tally:
    checked_pairs: int = 0
    trimmed_by_cap: int = 0
    timelines_due: int = 0
    timelines_checked: int = 0
    lost_from_store: list[dict[str, Any]] = field(default_factory=list)
    missing_from_timeline: list[dict[str, Any]] = field(default_factory=list)
    unknown_users: dict[tuple[str, int], str] = field(default_factory=dict)


def _index_reads(reads: list[FinalRead]) -> dict[tuple[str, int], FinalRead]:
    """One read per (kind, user): a complete read wins over an incomplete one."""
    index: dict[tuple[str, int], FinalRead] = {}
    for r in reads:
        key = (r.kind, int(r.user_id))
        if key not in index or r.complete or not index[key].complete:
            index[key] = r
    return index


def _definitely_absent(tally: _Tally, read: FinalRead | None, kind: str, user: int) -> bool:
    """For a tweet not shown: True when the read was complete, else note the user as unknown."""
    if read is not None and read.complete:
        return True
    tally.unknown_users[(kind, user)] = "no final read" if read is None else (read.error or "read incomplete")
    return False


def _check_store(tally: _Tally, acks: list[Ack], reads: dict[tuple[str, int], FinalRead]) -> None:
    by_author: dict[int, list[Ack]] = defaultdict(list)
    for a in acks:
        by_author[a.author_id].append(a)
    for author, authored in by_author.items():
        read = reads.get(("author", author))
        shown = {str(t) for t in read.tweet_ids} if read else set()
        for a in authored:
            if a.tweet_id in shown:
                continue
            if _definitely_absent(tally, read, "author", author):
                tally.lost_from_store.append({"tweet_id": a.tweet_id, "author": author, "ack_t": a.ack_t})


def hidden_slots(run: RunData, graph: Graph, maybe: Indeterminate) -> dict[int, set[str]]:
    """Per follower, the timeline entries that hold a slot without being shown: retweets (by an
    account they follow) whose original was deleted, and what accounts they unfollowed during
    the run wrote before the unfollow."""
    deleted = {a.tweet for a in run.actions if a.kind == "delete"} | maybe.maybe_removed
    undone = {rid for a in run.actions if a.kind == "unretweet" for rid in a.ids}
    written: dict[int, list[tuple[float, str]]] = defaultdict(list)   # author -> (ack, id)
    for ack in run.acks:
        written[int(ack.author_id)].append((ack.ack_t, str(ack.tweet_id)))
    hidden: dict[int, set[str]] = defaultdict(set)
    for a in run.actions:
        if a.kind != "retweet":
            continue
        written[a.user] += [(a.t, rid) for rid in a.ids]
        if a.tweet in deleted:
            for follower in graph.followers_of(a.user):
                hidden[follower].update(set(a.ids) - undone)
    for c in run.graph_changes:
        if not c.following:
            hidden[c.follower].update(tid for t, tid in written[c.followee] if t < c.t)
    for follower, followee in maybe.maybe_unfollowed:   # if it landed, all of theirs is filtered out
        hidden[follower].update(tid for _, tid in written[followee])
    return hidden


def _check_timelines(tally: _Tally, run: RunData, graph: Graph, acks: list[Ack],
                     reads: dict[tuple[str, int], FinalRead], maybe: Indeterminate,
                     hidden: dict[int, set[str]]) -> None:
    pushed: dict[int, list[Ack]] = defaultdict(list)
    for a in acks:
        if graph.followers_of(a.author_id) and graph.is_push_tier(a.author_id):
            pushed[a.author_id].append(a)
    changed = {(c.follower, c.followee) for c in run.graph_changes} | maybe.maybe_unfollowed.keys()
    followees: dict[int, list[int]] = defaultdict(list)
    for author in pushed:
        for follower in graph.followers_of(author):
            if (follower, author) not in changed:
                followees[follower].append(author)
    in_fault = run.fault_predicate()
    cap = run.timeline_cap
    limit = run.manifest.final_reads_max_timelines
    sample = timelines_to_read(followees, limit or None, run.manifest.seed or 0)
    tally.timelines_due, tally.timelines_checked = len(followees), len(sample)
    for follower in sample:
        authors = followees[follower]
        read = reads.get(("timeline", follower))
        shown = {str(t) for t in read.tweet_ids} if read else set()
        due = {a.tweet_id: a for author in authors for a in pushed[author]}
        # Anything else the timeline shows (own tweets, writes that timed out yet landed) holds a slot too.
        others = {t for t in shown | hidden[follower] if t not in due and t.isdigit()}
        newest = sorted(due.keys() | others, key=int, reverse=True)[:cap]
        expected = [due[t] for t in newest if t in due]
        tally.trimmed_by_cap += len(due) - len(expected)
        for a in expected:
            tally.checked_pairs += 1
            if a.tweet_id in shown:
                continue
            if _definitely_absent(tally, read, "timeline", follower):
                tally.missing_from_timeline.append({
                    "tweet_id": a.tweet_id, "author": a.author_id, "follower": follower,
                    "ack_t": a.ack_t, "ack_in_fault": in_fault(a.ack_t),
                })


def _check_retweets(tally: _Tally, run: RunData, graph: Graph, reads: dict[tuple[str, int], FinalRead],
                    maybe: Indeterminate, hidden: dict[int, set[str]]) -> int:
    """Retweets missing from the timelines of the retweeter's followers that were read; the
    number of (retweet, follower) pairs checked."""
    undone = {rid for a in run.actions if a.kind == "unretweet" for rid in a.ids} | maybe.maybe_removed
    deleted = {a.tweet for a in run.actions if a.kind == "delete"} | maybe.maybe_removed
    changed = {(c.follower, c.followee) for c in run.graph_changes} | maybe.maybe_unfollowed.keys()
    authors = authors_of(run)
    pulled = set(graph.celebrities)
    checked = 0
    for a in run.actions:
        if a.kind != "retweet" or a.tweet in deleted or not graph.is_push_tier(a.user):
            continue
        for rid in set(a.ids) - undone:
            for follower in graph.followers_of(a.user):
                read = reads.get(("timeline", follower))
                if read is None or not read.complete or (follower, a.user) in changed:
                    continue
                shown = {str(t) for t in read.tweet_ids}
                # The timeline holds the newest `cap` pushed ids; pull-tier tweets are merged in
                # at read time and hold no slot (an id of unknown author is taken as pushed).
                pushed = sorted({int(t) for t in shown | hidden[follower] if authors.get(t) not in pulled},
                                reverse=True)
                if len(pushed) >= run.timeline_cap and int(rid) < pushed[run.timeline_cap - 1]:
                    continue   # trimmed by the cap
                checked += 1
                if rid not in shown:
                    tally.missing_from_timeline.append({"tweet_id": rid, "retweet_of": a.tweet, "author": a.user,
                                                        "follower": follower, "ack_t": a.t, "ack_in_fault": False})
    return checked


def check(run: RunData) -> CheckResult:
    maybe = indeterminate(run)
    deleted = {a.tweet for a in run.actions if a.kind == "delete"} | maybe.maybe_removed
    acks = list({str(a.tweet_id): Ack(str(a.tweet_id), int(a.author_id), a.ack_t, a.source)
                 for a in run.acks if str(a.tweet_id) not in deleted}.values())
    if not acks:
        return CheckResult(NAME, Verdict.UNKNOWN, "no acknowledged tweets in the ledger", {"acked": 0})
    reads = _index_reads(run.final_reads)
    tally = _Tally()
    _check_store(tally, acks, reads)
    retweet_pairs = 0
    if run.graph is not None:
        hidden = hidden_slots(run, run.graph, maybe)
        _check_timelines(tally, run, run.graph, acks, reads, maybe, hidden)
        retweet_pairs = _check_retweets(tally, run, run.graph, reads, maybe, hidden)
    lost, missing = tally.lost_from_store, tally.missing_from_timeline
    evidence: dict[str, Any] = {
        "acked": len(acks),
        "timeline_cap": run.timeline_cap,
        "checked_pairs": tally.checked_pairs,
        "checked_retweet_pairs": retweet_pairs,
        "timelines_due": tally.timelines_due,
        "timelines_checked": tally.timelines_checked,
        "trimmed_by_cap": tally.trimmed_by_cap,
        "missing_from_store": len(lost),
        "missing_from_store_examples": lost[:EXAMPLES_MAX],
        "missing_from_timeline": len(missing),
        "missing_from_timeline_in_fault": sum(1 for m in missing if m["ack_in_fault"]),
        "followers_missing_tweets": len({m["follower"] for m in missing}),
        "missing_from_timeline_examples": missing[:EXAMPLES_MAX],
        "unknown_users": len(tally.unknown_users),
        "unknown_users_examples": [
            {"kind": k, "user": u, "why": why}
            for (k, u), why in list(tally.unknown_users.items())[:EXAMPLES_MAX]
        ],
        "graph": run.graph is not None,
    }
    summary = (
        f"{len(acks)} acked tweets: {len(lost)} lost from the store, {len(missing)} of "
        f"{tally.checked_pairs} (tweet, follower) pairs missing from timelines (bound 0)"
        + (f"; timelines of a sample of {tally.timelines_checked:,} of {tally.timelines_due:,} followers"
           if tally.timelines_checked < tally.timelines_due else "")
    )
    if lost or missing:
        return CheckResult(NAME, Verdict.FAIL, summary, evidence)
    if run.graph is None:
        return CheckResult(NAME, Verdict.UNKNOWN, f"{summary}; no graph.json: timelines unchecked", evidence)
    if tally.unknown_users:
        unread = f"{summary}; {len(tally.unknown_users)} users' final reads missing or incomplete"
        return CheckResult(NAME, Verdict.UNKNOWN, unread, evidence)
    return CheckResult(NAME, Verdict.PASS, summary, evidence)
