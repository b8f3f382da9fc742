"""Engagement counts (design §02: like, retweet and reply counts, eventual): what is counted,
under which keys, and what a served tweet shows.

Every count is a sum of monotonic counters, so that the counter lane's checkpoint logic (which
only ever adds to Cassandra counters) serves them all alike: likes; retweets and the retweets
undone; replies and the replies deleted. A tweet shows `likes`, `retweets - unretweets` and
`replies - unreplies`.

Each counter counts each *member* once, whatever the number of deliveries (Kafka is
at-least-once): a like by its user, a retweet or its undo by the retweet's own id, a reply or
its deletion by the reply's id. A user who retweets, undoes and retweets again makes two
retweets (two ids) and one undo: a count of 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

CounterKey = tuple[int, str]   # (tweet id, counter name)
COUNTERS = ("likes", "retweets", "unretweets", "replies", "unreplies")
# Engagement events (the `engagement` topic, keyed by the tweet counted): type -> (counter,
# the field naming the member counted once).
EVENTS = {"like": ("likes", "user_id"), "retweet": ("retweets", "retweet_id"),
          "unretweet": ("unretweets", "retweet_id"), "reply": ("replies", "reply_id"),
          "unreply": ("unreplies", "reply_id")}
# Counters whose members the store records before their events are queued (feed.likes; the
# retweets, standing in feed.retweets or undone in feed.retweets_undone; the undone ones; the
# replies in feed.replies, and those deleted): a counted set lost with its shard is rebuilt
# from there.
MEMBERS_RECORDED = ("likes", "retweets", "unretweets", "replies", "unreplies")
COLUMNS = {"likes": "like_count", "retweets": "retweet_count", "unretweets": "unretweet_count",
           "replies": "reply_count", "unreplies": "unreply_count"}   # feed.tweet_counters


def counter_key(counter: str, tweet_id: int) -> str:
    """The Redis counter (in the tweet's slot, beside `tweet:{id}`)."""
    return f"likes:{{{tweet_id}}}" if counter == "likes" else f"{counter}:{{{tweet_id}}}"


def counted_key(counter: str, tweet_id: int) -> str:
    """The set of members a counter has counted (same slot)."""
    return f"counted:{{{tweet_id}}}" if counter == "likes" else f"counted:{counter}:{{{tweet_id}}}"


@dataclass(frozen=True, slots=True)
class Engagement:
    """What a served tweet shows."""

    likes: int = 0
    retweets: int = 0
    replies: int = 0

    @classmethod
    def from_counts(cls, counts: dict[str, int]) -> Engagement:
        """From the five counters (a missing one is 0); an undo counted before its retweet
        (a re-delivery out of order) never shows as a negative count."""
        c = {name: counts.get(name, 0) for name in COUNTERS}
        return cls(c["likes"], max(0, c["retweets"] - c["unretweets"]), max(0, c["replies"] - c["unreplies"]))

    def to_json(self) -> dict[str, Any]:
        return {"likes": self.likes, "retweets": self.retweets, "replies": self.replies,
                "likes_display": display_count(self.likes)}


def event(kind: str, tweet_id: int, member: int) -> dict[str, Any]:
    """An engagement event: `member` counted once under `kind`'s counter of `tweet_id`."""
    return {"type": kind, "tweet_id": str(tweet_id), EVENTS[kind][1]: str(member), "t": time.time()}


def display_count(n: int) -> str:
    """1234 -> "1.2K", 1500000 -> "1.5M" (design §10: approximate above 1,000). A count that
    rounds up to a thousand of one unit is shown in the next: 999,999 -> "1M", not "1000K"."""
    if n < 1_000:
        return str(n)
    for unit, suffix in ((1_000, "K"), (1_000_000, "M"), (1_000_000_000, "B")):
        shown = f"{n / unit:.1f}"
        if float(shown) < 1_000 or suffix == "B":
            return shown.removesuffix(".0") + suffix
    raise AssertionError("unreachable: the last unit always returns")
