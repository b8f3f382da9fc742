"""What a run records, and where.

A run directory is the whole truth of a campaign (Jepsen's "history"): the workload, the
probes and the chaos schedule append JSON lines while the run goes on; checkers and the report
are pure functions of these files, so `feedlab report RUN_DIR` recomputes everything with the
stack gone. Times are UNIX epoch seconds (float) taken on this machine's wall clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

# File names inside a run directory.
MANIFEST = "manifest.json"
HISTORY = "history.jsonl"          # one Request per client request (Locust)
LEDGER = "ledger.jsonl"            # one Ack per acknowledged POST /v1/tweets
PROBES = "probes.jsonl"            # one ProbeRecord per (canary, follower)
FAULTS = "faults.jsonl"            # one FaultWindow per chaos action
FINAL_READS = "final_reads.jsonl"  # one FinalRead per user read back after settle
GENERATOR = "generator.jsonl"      # one GeneratorSample per second per load process
MACHINE = "machine.jsonl"          # one MachineSample per second: the machine's CPU, steal included
ARRIVALS = "arrivals.jsonl"        # one ArrivalSample per second per load process
GRAPH_CHANGES = "graph_changes.jsonl"  # one FollowChange per follow/unfollow the workload made
OBSERVATIONS = "observations.jsonl"    # one Observation per read that answered: what it served
ACTIONS = "actions.jsonl"          # one Action per acknowledged change the checks hold the target to
STREAMS = "streams.jsonl"          # one StreamSpan per SSE connection a listener held (GET /v1/stream)
SIGNALS = "signals.jsonl"          # one Signal per new-tweet event a listener received on it
WORKLOAD = "workload.json"         # the arrival plan: the scenario's phases and rates
TARGET_METRICS = "target_metrics.json"  # the target's Prometheus series over the run
SWEEP = "sweep.json"               # the heal sweep after the last fault (chaos/sweep.py)
GRAPH = "graph.json"               # the seeded social graph's shape and thresholds (workloads/graph.py)
GRAPH_EDGES = "graph.edges"        # its follow edges, binary (workloads/graph.py explains the layout)
SUMMARY = "summary.json"
JUNIT = "junit.xml"
REPORT = "report.html"


@dataclass(frozen=True, slots=True)
class Request:
    """One client request, timed on the client."""

    t: float               # when it was due (its arrival in the open model), not when it left
    op: str                # "feed", "feed_page", "post", ...
    latency_ms: float      # from `t` to the response: includes any wait before sending
    status: int            # HTTP status; 0 when no response (connection error, timeout)
    error: str | None = None
    service_ms: float | None = None   # from the actual send to the response
    phase: str | None = None          # the workload phase it was due in
    user: int | None = None           # who acted (whose token it carried)
    target: str | None = None         # the tweet it acted on (a like's or retweet's: the tweet it counts for)
    # The client stopped waiting on purpose (a retried post's first attempt, its connection cut
    # or its client impatient): kept in the history, left out of every latency and error figure.
    abandoned: bool = False

    @property
    def ok(self) -> bool:
        return 0 < self.status < 500 and self.error is None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one read that answered 200 served, item by item in the order served: a feed page,
    a delta, a user's tweets, a ranked page, or a page of a walk through a feed.

    A retweet item has its own id and its retweeter as author; `originals` names the tweet it
    retweets (None for a tweet), and `likes` is the like count shown with each item."""

    sent_t: float          # when the request left (a change acknowledged before it counts)
    t: float               # when the answer came
    user: int              # the reader
    op: str                # "feed", "feed_page", "delta", "profile", "ranked", "walk", "backfill"
    ids: list[str]
    authors: list[int]
    originals: list[str | None]
    likes: list[int]
    walk: str | None = None    # the walk (or backfill wait) the page belongs to
    page: int = 0              # its page number in the walk
    of_user: int | None = None  # "profile": whose tweets
    has_more: bool | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """A change the target acknowledged, which checks hold it to (the tweets a workload posts
    are in the ledger; follows and unfollows in graph_changes).

    kinds: "delete" (tweet: the tweet deleted), "like" (tweet: the tweet the like counted for,
    its original for a retweet), "retweet" (tweet: the original; ids: the retweet's id),
    "unretweet" (tweet: the original; ids: the retweet undone), "reply" (tweet: the tweet
    replied to; ids: the reply), "post_retry" (ids: every tweet id the attempts with one
    idempotency key answered; key, text), "follow_large" (other: the account followed; ids:
    its newest tweets when it was followed)."""

    t: float               # acknowledgement
    kind: str
    user: int
    tweet: str | None = None
    ids: list[str] = field(default_factory=list)
    other: int | None = None
    key: str | None = None
    text: str | None = None
    sent_t: float | None = None   # when the first attempt left


@dataclass(frozen=True, slots=True)
class StreamSpan:
    """One SSE connection of a listener, written when it ends. `opened_t` is when the server's
    `connected` comment arrived (it is sent once the subscription is made): None when the
    stream never opened (`status` says why: a 503 while the user's shard is down, 0 for no
    answer). `closed_t` is when it ended, by the server, an error, or the end of the load."""

    user: int
    opened_t: float | None
    closed_t: float
    status: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """A new-tweet event (`event: tweet`) a listener received on its stream at `t`."""

    t: float
    user: int
    tweet_id: str
    author_id: int


@dataclass(frozen=True, slots=True)
class Ack:
    """A tweet the target acknowledged with 201: it must never be lost."""

    tweet_id: str
    author_id: int
    ack_t: float
    source: str = "load"   # "load" or "probe"


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """Freshness of one canary for one follower: ack → first seen in that follower's feed."""

    tweet_id: str
    author_id: int
    follower_id: int
    ack_t: float
    seen_t: float | None   # None: not seen before the probe gave up

    @property
    def freshness_s(self) -> float | None:
        return None if self.seen_t is None else self.seen_t - self.ack_t


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A chaos action, from invoke to the end of its heal."""

    name: str              # e.g. "kill-redis-primary"
    target: str            # component name, e.g. "redis-2"
    start_t: float
    end_t: float | None    # None: never healed (the run was cut)
    events: list[dict[str, Any]] = field(default_factory=list)  # [{"t":..., "what":...}]


@dataclass(frozen=True, slots=True)
class FinalRead:
    """What the public API returned for a user after the settle period.

    kind "timeline": the user's home feed (GET /v1/feed, paged); kind "author": the user's own
    tweets (GET /v1/users/{id}/tweets, paged). `complete` is False when paging stopped early
    (error or page budget), and then `error` says why.
    """

    kind: str
    user_id: int
    tweet_ids: list[str]
    complete: bool = True
    error: str | None = None
    # "author" reads: each own tweet's text and counts as served (retweets left out), by id
    texts: dict[str, str] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)   # id -> [likes, retweets, replies]
    originals: dict[str, str] = field(default_factory=dict)      # a retweet item's id -> its original


@dataclass(frozen=True, slots=True)
class GeneratorSample:
    """CPU of one load-generator process, sampled once a second."""

    t: float
    process: str
    cpu_percent: float     # of one core


@dataclass(frozen=True, slots=True)
class MachineSample:
    """The whole machine's CPU over the last second, in percent of all its cores: busy (not
    idle), and stolen (a hypervisor gave the time to another guest: /proc/stat "steal")."""

    t: float
    busy_percent: float
    steal_percent: float


@dataclass(frozen=True, slots=True)
class ArrivalSample:
    """One load process's arrivals over the last second: due, sent, dropped (too many in
    flight), late (the scheduler started them more than 50 ms after their time)."""

    t: float
    process: str
    due: int
    sent: int
    dropped: int
    late: int
    max_lag_ms: float
    in_flight: int


@dataclass(frozen=True, slots=True)
class FollowChange:
    """A follow or unfollow the workload made, acknowledged at `t`."""

    t: float
    follower: int
    followee: int
    following: bool


class JsonlWriter:
    """Append-only, thread-safe JSON-lines writer (one record per line).

    Unbuffered by default: each record reaches the file at once. `buffered=True` (the request
    history, one record per request) keeps up to 64 KiB in memory until `flush()` or `close()`:
    a write per request cost the load generator more CPU than its HTTP parsing. A reader may see
    a torn last line in between; every reader here waits for its newline.
    """

    def __init__(self, path: Path, *, buffered: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh: IO[bytes] = open(path, "ab", buffering=1 << 16 if buffered else 0)  # noqa: SIM115 - closed in close()

    def write(self, record: Any) -> None:
        # orjson serialises dataclasses itself, several times faster than dataclasses.asdict
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._fh.write(line)

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each record; a torn last line (the writer was killed mid-line) is skipped."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def write_json(path: Path, payload: Any) -> None:
    """Write whole-or-nothing: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
