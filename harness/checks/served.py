"""What the run's records say was served, and what the workload changed: the shared reading of
observations, actions and final reads that the behaviour checks (deletion, unfollow,
duplicates, engagement, pagination, backfill, celebrity merge) build on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from harness.checks.result import CheckResult, Verdict
from harness.rundata import RunData
from records import FinalRead, Observation

# Ops whose pages are the reader's home feed, newest first (delta is oldest first; ranked is
# in ranking order; profile is another user's tweets).
CHRONOLOGICAL = frozenset({"feed", "feed_page", "walk", "backfill"})
HOME_FEED = CHRONOLOGICAL | {"delta", "ranked"}


def not_exercised(name: str, why: str, **evidence: object) -> CheckResult:
    """A check the run gave nothing to judge: unknown, shown, and not deciding the run (a
    scenario without deletes says nothing about deletion, for or against the target)."""
    return CheckResult(name, Verdict.UNKNOWN, f"not exercised: {why}", dict(evidence), gating=False)


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a page as served: its id, its author, and the tweet it shows (a retweet's
    original, else itself)."""

    id: str
    author: int
    shows: str
    likes: int


def items(obs: Observation) -> Iterator[Item]:
    for i, tid in enumerate(obs.ids):
        original = obs.originals[i] if i < len(obs.originals) else None
        yield Item(tid, obs.authors[i] if i < len(obs.authors) else 0, original or tid,
                   obs.likes[i] if i < len(obs.likes) else 0)


def final_shows(read: FinalRead) -> Iterator[tuple[str, str]]:
    """(item id, the tweet it shows) of each item of a final read."""
    for tid in read.tweet_ids:
        yield str(tid), read.originals.get(str(tid), str(tid))


def removals(run: RunData) -> dict[str, float]:
    """Tweets the target acknowledged taking down, with the acknowledgement's time: deleted
    tweets, and retweets undone (by the retweet's own id)."""
    out: dict[str, float] = {}
    for a in run.actions:
        if a.kind == "delete" and a.tweet:
            out[a.tweet] = min(out.get(a.tweet, a.t), a.t)
        elif a.kind == "unretweet":
            for rid in a.ids:
                out[rid] = min(out.get(rid, a.t), a.t)
    return out


def authors_of(run: RunData) -> dict[str, int]:
    """The author of every tweet the run knows of: acknowledged posts (the ledger) and the
    retweets it made (whose author is the retweeter)."""
    out = {str(a.tweet_id): int(a.author_id) for a in run.acks}
    for a in run.actions:
        if a.kind == "retweet":
            out.update({rid: a.user for rid in a.ids})
    return out


def known_authors(run: RunData) -> dict[str, int]:
    """The author of every item the run was served or made, by item id (a retweet's author is
    the retweeter): `authors_of`, and every item a read showed, which covers tweets made before
    the run (a service feedlab did not start keeps earlier runs' tweets in its feeds)."""
    out = {i.id: i.author for o in run.observations for i in items(o) if i.author}
    out.update(authors_of(run))
    return out


@dataclass(frozen=True, slots=True)
class Indeterminate:
    """Changes the run asked for and got no answer to (no response, or a 5xx): each may or may
    not have been applied (Jepsen's indeterminate operations), so no check may count on either.
    A DELETE that timed out at nginx can still have deleted the tweet; an unfollow the same."""

    maybe_removed: frozenset[str]                   # tweets maybe deleted; retweet ids maybe undone
    maybe_unfollowed: dict[tuple[int, int], float]  # (follower, followee) -> from when


def indeterminate(run: RunData) -> Indeterminate:
    retweet_ids: dict[tuple[int, str], list[str]] = {}
    for a in run.actions:
        if a.kind == "retweet" and a.tweet:
            retweet_ids[(a.user, a.tweet)] = list(a.ids)
    removed: set[str] = set()
    unfollowed: dict[tuple[int, int], float] = {}
    for r in run.requests:
        if r.ok or r.target is None or r.user is None:
            continue
        if r.op == "delete":
            removed.add(r.target)
        elif r.op == "unretweet":
            removed.update(retweet_ids.get((r.user, r.target), []))
        elif r.op == "unfollow" and r.target.isdigit():
            pair = (r.user, int(r.target))
            unfollowed[pair] = min(unfollowed.get(pair, r.t), r.t)
    return Indeterminate(frozenset(removed), unfollowed)


def final_reads(run: RunData, kind: str) -> dict[int, FinalRead]:
    """One final read per user of `kind`: a complete read wins over an incomplete one."""
    out: dict[int, FinalRead] = {}
    for r in run.final_reads:
        if r.kind == kind and (r.user_id not in out or r.complete or not out[r.user_id].complete):
            out[int(r.user_id)] = r
    return out
