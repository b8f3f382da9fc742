"""The social graph a campaign runs on: power-law, reproducible from a seed, kept as compressed
sparse rows (graph.edges) that every process maps; harness/seeding.py gets it into the stack.

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

import bisect
import hashlib
import itertools
import json
import math
import mmap
import os
import random
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from records import GRAPH, GRAPH_EDGES, write_json


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


class Graph:
    """Followers of each author in compressed sparse rows: the followers of author `a` are
    `flat[offsets[a]:offsets[a + 1]]`, ascending. Ids run 1..users; offsets[0] is unused.

    The large graph has 44 M edges: as Python lists they take gigabytes, and as JSON 330 MB that
    every load process would parse. As two arrays of 32-bit ids they are 180 MB, written once
    (graph.edges) and mapped read-only by each process that needs them, sharing the page cache.
    """

    def __init__(self, spec: GraphSpec, offsets: Sequence[int], flat: Sequence[int], *,
                 mapped: mmap.mmap | None = None) -> None:
        if len(offsets) != spec.users + 2:
            raise ValueError(f"expected {spec.users + 2} offsets for {spec.users} users, got {len(offsets)}")
        self.spec = spec
        self.offsets = offsets
        self.flat = flat
        self._mapped = mapped   # the file the arrays view, when read from one
        self._digest: str | None = None

    @classmethod
    def from_followers(cls, spec: GraphSpec, followers: Mapping[int, Iterable[int]]) -> Graph:
        outside = [a for a, fs in followers.items() for u in (a, *fs) if not 1 <= u <= spec.users]
        if outside:
            raise ValueError(f"user ids must be within 1..{spec.users}: authors {sorted(set(outside))[:5]} have "
                             "an id outside")
        offsets, flat = array("I", [0, 0]), array("I")
        for author in range(1, spec.users + 1):
            flat.extend(sorted(followers.get(author, ())))
            offsets.append(len(flat))
        return cls(spec, offsets, flat)

    @property
    def user_ids(self) -> range:
        return range(1, self.spec.users + 1)

    def followers_of(self, author: int) -> Sequence[int]:
        if not 1 <= author <= self.spec.users:
            return ()
        return self.flat[self.offsets[author]:self.offsets[author + 1]]

    def follower_count(self, author: int) -> int:
        if not 1 <= author <= self.spec.users:
            return 0
        return self.offsets[author + 1] - self.offsets[author]

    def follows(self, follower: int, followee: int) -> bool:
        """Whether the seeded graph has this edge."""
        fs = self.followers_of(followee)
        i = bisect.bisect_left(fs, follower)
        return i < len(fs) and fs[i] == follower

    @property
    def authors(self) -> list[int]:
        """Accounts with at least one follower."""
        o = self.offsets
        return [a for a in self.user_ids if o[a + 1] > o[a]]

    @property
    def edge_count(self) -> int:
        return self.offsets[self.spec.users + 1]

    def is_push_tier(self, author: int) -> bool:
        return self.follower_count(author) < self.spec.pull_threshold

    @property
    def celebrities(self) -> list[int]:
        return [a for a in self.user_ids if self.follower_count(a) >= self.spec.pull_threshold]

    def digest(self) -> str:
        """A hash of the edges (180 MB for the large graph: computed once)."""
        if self._digest is None:
            h = hashlib.sha256(f"{self.spec.users};".encode())
            h.update(_bytes(self.offsets))
            h.update(_bytes(self.flat))
            self._digest = h.hexdigest()[:16]
        return self._digest

    @property
    def rising(self) -> int:
        """The account the celebrity workload makes cross the pull threshold mid-run: the
        ordinary account with the most followers (the lowest id among equals)."""
        below = [(n, -a) for a in self.user_ids if 0 < (n := self.follower_count(a)) < self.spec.pull_threshold]
        return -max(below)[1] if below else 1

    def to_json(self) -> dict[str, object]:
        """graph.json: the graph's shape; its edges are in graph.edges."""
        return {"seed": self.spec.seed, "users": self.spec.users, "hash": self.digest(),
                "celebrity_count": self.spec.celebrities,
                "push_threshold": self.spec.push_threshold, "pull_threshold": self.spec.pull_threshold,
                "celebrities": self.celebrities, "rising": self.rising, "edge_count": self.edge_count,
                "edges": GRAPH_EDGES}

    def write(self, directory: Path) -> None:
        """graph.json and graph.edges into `directory`, each whole or not at all.

        graph.edges: the 8 bytes of `MAGIC`, then little-endian uint32s: the format version (1),
        the number of users N, the N + 2 offsets, then the followers of each author in turn.
        """
        tmp = directory / f"{GRAPH_EDGES}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(MAGIC)
            fh.write(bytes(array("I", [1, self.spec.users])))
            fh.write(_bytes(self.offsets))
            fh.write(_bytes(self.flat))
        tmp.replace(directory / GRAPH_EDGES)
        write_json(directory / GRAPH, self.to_json())

    @classmethod
    def read(cls, directory: Path) -> Graph:
        """The graph in `directory`: graph.json, with graph.edges mapped read-only (or, in run
        directories from before graph.edges, the followers listed in graph.json itself)."""
        data = json.loads((directory / GRAPH).read_text())
        spec = GraphSpec(users=int(data["users"]), celebrities=int(data.get("celebrity_count", 0)),
                         push_threshold=int(data.get("push_threshold", 0)),
                         pull_threshold=int(data["pull_threshold"]), seed=int(data.get("seed", 0)))
        if "followers" in data:
            return cls.from_followers(spec, {int(a): [int(f) for f in fs] for a, fs in data["followers"].items()})
        path = directory / str(data.get("edges", GRAPH_EDGES))
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if mapped[:len(MAGIC)] != MAGIC or len(mapped) < len(MAGIC) + 8:
            raise ValueError(f"{path}: not a feedlab graph.edges file")
        ints = memoryview(mapped)[len(MAGIC):].cast("I")
        version, users = ints[0], ints[1]
        if version != 1 or users != spec.users:
            raise ValueError(f"{path}: format {version} for {users} users; expected format 1 for {spec.users}")
        offsets = ints[2:users + 4]
        if len(ints) != users + 4 + offsets[users + 1]:
            raise ValueError(f"{path}: truncated ({len(mapped)} bytes)")
        return cls(spec, offsets, ints[users + 4:], mapped=mapped)


MAGIC = b"FLGRAPH\n"
if array("I").itemsize != 4 or sys.byteorder != "little":
    raise ImportError("graph.edges holds little-endian uint32s; this platform's array('I') is not that")


def _bytes(ints: Sequence[int]) -> memoryview | bytes:
    return ints.cast("B") if isinstance(ints, memoryview) else bytes(ints)  # type: ignore[arg-type]


def generate(spec: GraphSpec, progress: Callable[[str], None] | None = None) -> Graph:
    """The graph of `spec`; the same spec always gives the same graph."""
    rng = random.Random(spec.seed)
    n = spec.users
    ids = list(range(1, n + 1))
    rng.shuffle(ids)  # popularity rank -> user id, so popular users are not simply the low ids
    popularity = ids
    cum = list(itertools.accumulate(1.0 / (rank + 1) ** spec.zipf_exponent for rank in range(n)))
    celebs = set(popularity[: spec.celebrities])
    following: list[array[int]] = [array("I")]   # user -> whom they follow (celebrities aside)
    indegree = [0] * (n + 2)
    ordinary_cap = int(spec.pull_threshold * 0.8)
    cap = min(spec.follow_cap, n - 1)
    mu, sigma = math.log(min(spec.median_following, cap)), 0.8
    started = last = time.monotonic()
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
        following.append(array("I", chosen))
        if progress and time.monotonic() - last >= 10:
            last = time.monotonic()
            progress(f"generating: {user / n:.0%} of the users, {last - started:.0f} s")
    # Celebrities: each followed by a large share of everyone, above the pull threshold.
    celeb_followers: dict[int, list[int]] = {}
    for celeb in sorted(celebs):
        share = rng.uniform(0.55, 0.9)
        wanted = max(spec.pull_threshold, int(share * (n - 1)))
        celeb_followers[celeb] = sorted(rng.sample([u for u in range(1, n + 1) if u != celeb], min(n - 1, wanted)))
        indegree[celeb] = len(celeb_followers[celeb])
    offsets = array("I", itertools.accumulate(indegree[:n + 1], initial=0))
    flat = array("I", bytes(4 * offsets[-1]))
    free = list(offsets)
    for user in range(1, n + 1):   # ascending users: each author's followers come out sorted
        for followee in following[user]:
            flat[free[followee]] = user
            free[followee] += 1
    for celeb, fs in celeb_followers.items():
        flat[offsets[celeb]:offsets[celeb + 1]] = array("I", fs)
    return Graph(spec, offsets, flat)
