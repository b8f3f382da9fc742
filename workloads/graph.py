"""The social graph a campaign runs on: power-law, reproducible from a seed, bulk-loaded.

Shape (design §4): each user follows a log-normal number of accounts (median ~150, capped at
the follow cap and the population); whom they follow is drawn with Zipf weights over the
population (a few accounts are followed by many, most by few). A handful of celebrities are
then followed by a large share of everyone, which puts them above the pull threshold.

At these populations a median of 150 followings is dense (150 of 2,000 users is 7.5 %), so an
uncapped Zipf draw would push dozens of ordinary accounts past the pull threshold. Ordinary
accounts are therefore capped at 80 % of the pull threshold: the tail still reaches well into
the throttled band, and the pull tier holds just the configured celebrities.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class GraphSize(StrEnum):
    SMALL = "small"
    DEFAULT = "default"
    LARGE = "large"


@dataclass(frozen=True, kw_only=True)
class GraphSpec:
    users: int
    celebrities: int
    push_threshold: int
    pull_threshold: int
    median_following: int = 150
    follow_cap: int = 5000
    zipf_exponent: float = 0.9
    seed: int = 1

    @classmethod
    def preset(cls, size: GraphSize, seed: int = 1) -> GraphSpec:
        table = {  # DESIGN.md §4
            GraphSize.SMALL: cls(users=2000, celebrities=2, push_threshold=200, pull_threshold=1000, seed=seed),
            GraphSize.DEFAULT: cls(users=20000, celebrities=5, push_threshold=2000, pull_threshold=10000, seed=seed),
            GraphSize.LARGE: cls(users=200000, celebrities=20, push_threshold=20000, pull_threshold=100000,
                                 seed=seed),
        }
        return table[size]

    def with_users(self, users: int) -> GraphSpec:
        """The same shape and thresholds over another population (a scenario's `graph.users`)."""
        return replace(self, users=users)


@dataclass
class Graph:
    spec: GraphSpec
    followers: dict[int, list[int]] = field(default_factory=dict)   # author -> sorted follower ids

    @property
    def user_ids(self) -> range:
        return range(1, self.spec.users + 1)

    def edges(self) -> list[tuple[int, int]]:
        """(follower, followee) pairs."""
        return list(self.iter_edges())

    def iter_edges(self) -> Iterator[tuple[int, int]]:
        for a, fs in self.followers.items():
            for f in fs:
                yield f, a

    @property
    def edge_count(self) -> int:
        return sum(len(fs) for fs in self.followers.values())

    def follower_count(self, author: int) -> int:
        return len(self.followers.get(author, ()))

    def is_push_tier(self, author: int) -> bool:
        return self.follower_count(author) < self.spec.pull_threshold

    @property
    def celebrities(self) -> list[int]:
        return [a for a, fs in self.followers.items() if len(fs) >= self.spec.pull_threshold]

    def digest(self) -> str:
        h = hashlib.sha256()
        for author in sorted(self.followers):
            h.update(f"{author}:{','.join(map(str, self.followers[author]))};".encode())
        return h.hexdigest()[:16]

    @property
    def rising(self) -> int:
        """The account the celebrity workload makes cross the pull threshold mid-run: the
        ordinary account with the most followers (the lowest id among equals)."""
        return rising_account(self.followers, self.spec.pull_threshold)

    def to_json(self) -> dict[str, object]:
        return {"seed": self.spec.seed, "users": self.spec.users, "hash": self.digest(),
                "push_threshold": self.spec.push_threshold, "pull_threshold": self.spec.pull_threshold,
                "celebrities": self.celebrities, "rising": self.rising,
                "followers": {str(a): fs for a, fs in sorted(self.followers.items())}}


def rising_account(followers: Mapping[int, Sequence[int]], pull_threshold: int) -> int:
    below = [(len(fs), -a) for a, fs in followers.items() if len(fs) < pull_threshold]
    return -max(below)[1] if below else 1


def generate(spec: GraphSpec) -> Graph:
    rng = random.Random(spec.seed)
    n = spec.users
    ids = list(range(1, n + 1))
    rng.shuffle(ids)  # popularity rank -> user id, so popular users are not simply the low ids
    popularity = ids
    cum = list(itertools.accumulate(1.0 / (rank + 1) ** spec.zipf_exponent for rank in range(n)))
    celebs = set(popularity[: spec.celebrities])
    following: dict[int, set[int]] = {}
    indegree = [0] * (n + 1)
    ordinary_cap = int(spec.pull_threshold * 0.8)
    cap = min(spec.follow_cap, n - 1)
    mu, sigma = math.log(min(spec.median_following, cap)), 0.8
    for user in range(1, n + 1):
        want = max(1, min(cap, int(rng.lognormvariate(mu, sigma))))
        chosen: set[int] = set()
        for _ in range(4):  # draws with replacement, deduplicated; a few rounds reach `want`
            for rank in rng.choices(range(n), cum_weights=cum, k=int(want * 1.3) + 4):
                followee = popularity[rank]
                if followee != user and followee not in celebs and followee not in chosen \
                        and indegree[followee] < ordinary_cap:
                    chosen.add(followee)
                    indegree[followee] += 1
                if len(chosen) >= want:
                    break
            if len(chosen) >= want:
                break
        following[user] = chosen
    # Celebrities: each followed by a large share of everyone, above the pull threshold.
    for celeb in sorted(celebs):
        share = rng.uniform(0.55, 0.9)
        wanted = max(spec.pull_threshold, int(share * (n - 1)))
        for user in rng.sample([u for u in range(1, n + 1) if u != celeb], min(n - 1, wanted)):
            following[user].add(celeb)
    followers: dict[int, list[int]] = {}
    for user, followees in following.items():
        for f in followees:
            followers.setdefault(f, []).append(user)
    return Graph(spec, {a: sorted(fs) for a, fs in followers.items()})


def load(graph: Graph, cassandra_address: str, redis_addresses: list[str],
         progress: Callable[[str], None] | None = None) -> None:
    """Bulk-load the follow edges (both directions) into the store, and preheat every timeline.

    A real platform's users arrive with warm timelines; without the preheat the first read of
    every user would take the store fan-in path and the campaign would measure a cold start.
    """
    from targets.feed.cache import preheat
    from targets.feed.store import Store

    store = Store(cassandra_address)
    try:
        started = last = time.monotonic()

        def report(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if progress and now - last >= 10:
                last = now
                rate = done / (now - started)
                progress(f"{done / total:.0%} of the follow edges written, about {(total - done) / rate:.0f} s left")

        store.bulk_follow(graph.iter_edges(), progress=report)
    finally:
        store.close()
    preheat(redis_addresses, list(graph.user_ids))
