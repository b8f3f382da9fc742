"""The lines of a run's JSON-lines files: one frozen dataclass per kind of record. Times are
UNIX epoch seconds (float) on this machine's wall clock."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    source: str = "load"   # "load", "probe" or "settle" (a marker: harness/settle.py)


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
class ContainerSample:
    """CPU and memory of one container of the docker runtime, sampled once a second."""

    t: float
    container: str         # the component's name (redis-1, api-2, ...)
    cpu_percent: float     # of one core
    memory_bytes: int      # as `docker stats` counts it: usage less the inactive file cache


@dataclass(frozen=True, slots=True)
class GeneratorEvent:
    """What the Locust master saw of one generator process of a distributed run (`--generators`):
    "joined" (set up and ready; detail: its host, pid and clock offset), "start" (every generator
    ready: the load starts at `load_start_t`), "done" (it sent its last records), "lost" (it
    stopped answering, quit or failed before it was done: its share of the load was not offered),
    "refused" (it would not send load to the target: detail says why), "late" (it came when the
    run had its generators, and was sent away), "turned-away" (it did not give the run's join
    key, and was sent away), "left" (it went after its setup but before it was ready, and
    another may take its place), "clock" (its clock's offset from the master's, measured over one
    round trip, and the error of that measure: half the round trip)."""

    t: float
    generator: str
    event: str
    detail: str = ""
    load_start_t: float | None = None
    clock_offset_s: float | None = None
    clock_error_s: float | None = None


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
    """A follow or unfollow the workload made, acknowledged at `t`: every one, so a follow of an
    account already followed too (the checks keep the flips: harness.rundata.follow_flips)."""

    t: float
    follower: int
    followee: int
    following: bool
