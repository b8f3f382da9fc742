"""The tweet store and user graph in Cassandra (the record of truth).

The driver is thread-based; `_aexecute` bridges its futures into asyncio for the API, while the
fan-out worker calls the same statements synchronously.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent
from cassandra.policies import FallthroughRetryPolicy, RoundRobinPolicy
from cassandra.query import (
    BatchStatement,
    BatchType,
    _clean_column_name,  # the driver's own cleaning of column names
)

from targets.feed.engagement import COLUMNS, CounterKey
from targets.feed.snowflake import timestamp_ms

BULK_BATCH = 200   # rows per bulk-follow batch (one partition each)

SCHEMA = Path(__file__).parent / "schema.cql"
# Authors per fan-in query: one round trip for a median user (~150 followees), and a bounded
# result (authors x per-author limit) for the heaviest (5,000).
FAN_IN_CHUNK = 200
# The driver gives up on a request after this (its own default; a profile keyed by the string
# "default" had been a separate, unused profile, so 10 s was in force, not the 5 s meant).
REQUEST_TIMEOUT_S = 10.0
# Rows one read may gather over the driver's pages (5,000 each): a fan-in reads up to a page's
# worth of tweets from each of up to 5,000 followees, bounded by their rows.
MAX_ROWS = 200_000


@functools.lru_cache(maxsize=512)
def _row_class(colnames: tuple[str, ...]) -> Any:
    return collections.namedtuple("Row", [_clean_column_name(c) for c in colnames])  # type: ignore[misc]


def rows_as_named_tuples(colnames: list[str], rows: list[Any]) -> list[Any]:
    """The driver's default rows (named tuples), with each row class made once per column list:
    the default factory (`cassandra.query.named_tuple_factory`) builds a new namedtuple class
    for every result, which profiled as the API's largest CPU cost on the store path (a Redis
    shard down sends a third of the page hydrations there, one query per tweet)."""
    row = _row_class(tuple(colnames))
    return [row(*r) for r in rows]


def connect(address: str, *, timeout: float = 5.0, request_timeout: float = REQUEST_TIMEOUT_S
            ) -> tuple[Cluster, Session]:
    """A session on one node; `timeout` bounds connecting, `request_timeout` each request."""
    host, port = address.rsplit(":", 1)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=request_timeout,
                               consistency_level=ConsistencyLevel.ONE, row_factory=rows_as_named_tuples)
    cluster = Cluster([host], port=int(port), protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=timeout, control_connection_timeout=timeout)
    return cluster, cluster.connect()


def apply_schema(address: str) -> None:
    cluster, session = connect(address, timeout=30, request_timeout=30)
    try:
        for statement in SCHEMA.read_text().split("\n\n"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            if body:
                session.execute(body, timeout=60)
    finally:
        cluster.shutdown()


def iso_ms(t: datetime) -> str:
    """A UTC time as the API writes it: ISO 8601 to the millisecond, with a Z."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class Profile:
    user_id: int
    handle: str            # as registered, without the "@"
    display_name: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        # The driver gives timestamps without a zone; they are UTC.
        created = self.created_at.replace(tzinfo=UTC) if self.created_at.tzinfo is None else self.created_at
        return {"user_id": str(self.user_id), "handle": f"@{self.handle}", "display_name": self.display_name,
                "created_at": iso_ms(created)}


UNKNOWN_MEDIA_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Media:
    """A registered media object a tweet references (design §05b: uploaded out of band)."""
    media_id: str
    content_type: str

    def to_json(self) -> dict[str, str]:
        return {"media_id": self.media_id, "content_type": self.content_type}


@dataclass(frozen=True, slots=True)
class Tweet:
    """A tweet, or a retweet: a row of the retweeter's own (its id orders it in timelines and
    fan-out carries it like any tweet) that points at the original (`retweet_of`), whose text
    and media it is served with."""

    tweet_id: int
    user_id: int
    text: str
    media: list[Media]
    reply_to: int | None
    deleted: bool = False
    retweet_of: int | None = None

    @property
    def media_ids(self) -> list[str]:
        return [m.media_id for m in self.media]

    @property
    def created_at(self) -> str:
        ms = timestamp_ms(self.tweet_id)
        return iso_ms(datetime.fromtimestamp(ms / 1000, UTC))

    def to_json(self) -> dict[str, Any]:
        return {"tweet_id": str(self.tweet_id), "author_id": str(self.user_id), "text": self.text,
                "media": [m.to_json() for m in self.media],
                "reply_to": None if self.reply_to is None else str(self.reply_to),
                "created_at": self.created_at, "deleted": self.deleted,
                "retweet_of": None if self.retweet_of is None else str(self.retweet_of)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tweet:
        return cls(int(d["tweet_id"]), int(d["author_id"]), d["text"],
                   [Media(m["media_id"], m["content_type"]) for m in d.get("media") or ()],
                   None if d.get("reply_to") is None else int(d["reply_to"]), bool(d.get("deleted", False)),
                   None if d.get("retweet_of") is None else int(d["retweet_of"]))

    @classmethod
    def from_row(cls, row: Any) -> Tweet:
        # media_types runs beside media_ids (the design's column, kept as it is); a type missing
        # there (a row written without it) is served as unknown rather than failing the read.
        types = list(row.media_types or ())
        media = [Media(m, types[i] if i < len(types) else UNKNOWN_MEDIA_TYPE)
                 for i, m in enumerate(row.media_ids or ())]
        return cls(row.tweet_id, row.user_id, row.text or "", media, row.reply_to, bool(row.deleted),
                   row.retweet_of)


class TweetRef(NamedTuple):
    """What a fan-in needs of a tweet row: which it is, whose, and whether it was deleted (the
    text and media come with hydration, from the cache first)."""
    tweet_id: int
    user_id: int
    deleted: bool


def _ref(row: Any) -> TweetRef:
    return TweetRef(row.tweet_id, row.user_id, bool(row.deleted))


class Store:
    def __init__(self, address: str) -> None:
        self.cluster, self.session = connect(address)
        p = self.session.prepare
        cols = "tweet_id, user_id, text, media_ids, media_types, reply_to, deleted, retweet_of"
        self._insert_tweet = p("INSERT INTO feed.tweets (user_id, tweet_id, text, media_ids, media_types, reply_to,"
                               " created_at, deleted, retweet_of) VALUES (?, ?, ?, ?, ?, ?, ?, false, ?)")
        self._insert_by_id = p("INSERT INTO feed.tweets_by_id (tweet_id, user_id, text, media_ids, media_types,"
                               " reply_to, created_at, deleted, retweet_of) VALUES (?, ?, ?, ?, ?, ?, ?, false, ?)")
        self._by_id = p(f"SELECT {cols} FROM feed.tweets_by_id WHERE tweet_id = ?")
        self._by_author = p(f"SELECT {cols} FROM feed.tweets WHERE user_id = ? AND tweet_id < ? LIMIT ?")
        # The fan-in reads only ids: decoding whole rows of ~150 partitions per read cost the
        # API twice the CPU and Cassandra a third more (measured on the small graph).
        refs = "tweet_id, user_id, deleted"
        # No ORDER BY: Cassandra refuses it with IN while paging, so each author's *newest*
        # tweets after `since` come back (see oldest_since_by_authors).
        self._since_authors = p(f"SELECT {refs} FROM feed.tweets WHERE user_id IN ? AND tweet_id > ?"
                                " PER PARTITION LIMIT ?")
        self._since_author = p(f"SELECT {refs} FROM feed.tweets WHERE user_id = ? AND tweet_id > ?"
                               " ORDER BY tweet_id ASC LIMIT ?")
        self._by_authors = p(f"SELECT {refs} FROM feed.tweets WHERE user_id IN ? AND tweet_id < ?"
                             " PER PARTITION LIMIT ?")
        self._followers = p("SELECT follower_id FROM feed.followers WHERE followee_id = ?")
        self._followees = p("SELECT followee_id FROM feed.follows WHERE follower_id = ?")
        self._follow = p("INSERT INTO feed.follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)")
        self._follow_rev = p("INSERT INTO feed.followers (followee_id, follower_id, created_at) VALUES (?, ?, ?)")
        self._insert_media = p("INSERT INTO feed.media (media_id, owner_id, content_type, size_bytes, created_at)"
                               " VALUES (?, ?, ?, ?, ?)")
        self._media = p("SELECT media_id, owner_id, content_type FROM feed.media WHERE media_id = ?")
        self._delete = p("UPDATE feed.tweets SET deleted = true WHERE user_id = ? AND tweet_id = ?")
        self._delete_by_id = p("UPDATE feed.tweets_by_id SET deleted = true WHERE tweet_id = ?")
        self._follows_one = p("SELECT followee_id FROM feed.follows WHERE follower_id = ? AND followee_id = ?")
        self._followers_among = p("SELECT follower_id FROM feed.followers WHERE followee_id = ? AND follower_id IN ?")
        self._count_followers = p("SELECT COUNT(*) FROM feed.followers WHERE followee_id = ?")
        self._count_following = p("SELECT COUNT(*) FROM feed.follows WHERE follower_id = ?")
        self._profile = p("SELECT user_id, handle, display_name, created_at FROM feed.users WHERE user_id = ?")
        self._handles = p("SELECT user_id, handle FROM feed.users WHERE user_id IN ?")
        self._claim_handle = p("INSERT INTO feed.handles (handle_key, user_id) VALUES (?, ?) IF NOT EXISTS")
        self._set_profile = p("UPDATE feed.users SET handle = ?, display_name = ?, created_at = ? WHERE user_id = ?"
                              " IF handle = null")
        self._release_handle = p("DELETE FROM feed.handles WHERE handle_key = ? IF user_id = ?")
        self._set_display_name = p("UPDATE feed.users SET display_name = ? WHERE user_id = ?")
        self._user_tier = p("SELECT fanout_tier FROM feed.users WHERE user_id = ?")
        self._set_user_tier = p("UPDATE feed.users SET fanout_tier = ? WHERE user_id = ?")
        self._config = p("SELECT name, value FROM feed.runtime_config")
        self._pull_tier = p("SELECT author_id FROM feed.pull_tier WHERE bucket = 0")
        self._add_pull = p("INSERT INTO feed.pull_tier (bucket, author_id) VALUES (0, ?)")
        self._remove_pull = p("DELETE FROM feed.pull_tier WHERE bucket = 0 AND author_id = ?")
        self._set_config = p("INSERT INTO feed.runtime_config (name, value) VALUES (?, ?)")
        self._like = p("INSERT INTO feed.likes (tweet_id, user_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS")
        self._counts = p(f"SELECT {', '.join(COLUMNS.values())} FROM feed.tweet_counters WHERE tweet_id = ?")
        self._likers = p("SELECT user_id FROM feed.likes WHERE tweet_id = ?")
        self._add_count = {c: p(f"UPDATE feed.tweet_counters SET {col} = {col} + ? WHERE tweet_id = ?")
                           for c, col in COLUMNS.items()}
        for stmt in self._add_count.values():
            # Counter updates are not idempotent: the driver must not send one again on its own (its
            # default policy does, to the next host, after a connection is lost mid-request).
            stmt.retry_policy = FallthroughRetryPolicy()
        self._retweet = p("INSERT INTO feed.retweets (tweet_id, user_id, retweet_id, created_at) VALUES (?, ?, ?, ?)"
                          " IF NOT EXISTS")
        self._retweet_by = p("SELECT retweet_id FROM feed.retweets WHERE tweet_id = ? AND user_id = ?")
        self._retweet_ids = p("SELECT retweet_id FROM feed.retweets WHERE tweet_id = ?")
        self._unretweet = p("DELETE FROM feed.retweets WHERE tweet_id = ? AND user_id = ? IF retweet_id = ?")
        self._record_undone = p("INSERT INTO feed.retweets_undone (tweet_id, retweet_id) VALUES (?, ?)")
        self._undone_ids = p("SELECT retweet_id FROM feed.retweets_undone WHERE tweet_id = ?")
        self._record_reply = p("INSERT INTO feed.replies (tweet_id, reply_id, deleted) VALUES (?, ?, false)")
        self._record_reply_deleted = p("UPDATE feed.replies SET deleted = true WHERE tweet_id = ? AND reply_id = ?")
        self._forget_reply = p("DELETE FROM feed.replies WHERE tweet_id = ? AND reply_id = ?")
        self._replies = p("SELECT reply_id, deleted FROM feed.replies WHERE tweet_id = ?")
        self._hold_key = p("INSERT INTO feed.idempotency_keys (user_id, key_digest, tweet_id) VALUES (?, ?, ?)"
                           " IF NOT EXISTS USING TTL ?")
        self._unfollow = p("DELETE FROM feed.follows WHERE follower_id = ? AND followee_id = ?")
        self._unfollow_rev = p("DELETE FROM feed.followers WHERE followee_id = ? AND follower_id = ?")

    def close(self) -> None:
        self.cluster.shutdown()

    async def _aexecute(self, stmt: Any, params: Any = None) -> list[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        rf = self.session.execute_async(stmt, params)

        def settle(result: list[Any] | None, exc: BaseException | None) -> None:  # on the event loop
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result or [])

        got: list[Any] = []

        def ok(rows: Any) -> None:  # on a driver thread, once per page
            got.extend(rows or [])
            if not rf.has_more_pages:
                loop.call_soon_threadsafe(settle, got, None)
            elif len(got) >= MAX_ROWS:
                loop.call_soon_threadsafe(settle, None, RuntimeError(f"a read returned more than {MAX_ROWS} rows"))
            else:   # a fan-in over many prolific authors: more rows than the driver's page size
                rf.start_fetching_next_page()

        def err(exc: BaseException) -> None:
            loop.call_soon_threadsafe(settle, None, exc)

        rf.add_callbacks(ok, err)
        return await fut

    # --- writes
    async def insert_tweet(self, t: Tweet) -> None:
        """Both tables (and a reply's record under its parent) in one logged batch: a tweet is
        in all or (eventually) none."""
        created = datetime.fromtimestamp(timestamp_ms(t.tweet_id) / 1000, UTC)
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        types = [m.content_type for m in t.media]
        batch.add(self._insert_tweet, (t.user_id, t.tweet_id, t.text, t.media_ids, types, t.reply_to, created,
                                       t.retweet_of))
        batch.add(self._insert_by_id, (t.tweet_id, t.user_id, t.text, t.media_ids, types, t.reply_to, created,
                                       t.retweet_of))
        if t.reply_to is not None:
            batch.add(self._record_reply, (t.reply_to, t.tweet_id))
        await self._aexecute(batch)

    async def follow(self, follower: int, followee: int) -> None:
        now = datetime.now(UTC)
        await asyncio.gather(self._aexecute(self._follow, (follower, followee, now)),
                             self._aexecute(self._follow_rev, (followee, follower, now)))

    async def unfollow(self, follower: int, followee: int) -> None:
        await asyncio.gather(self._aexecute(self._unfollow, (follower, followee)),
                             self._aexecute(self._unfollow_rev, (followee, follower)))

    async def soft_delete(self, t: Tweet, *, queued: bool = True) -> None:
        """Mark the tweet deleted; a reply is flagged deleted under its parent, or forgotten
        there if it was never `queued` (no event of it counted it, so none will uncount it)."""
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._delete, (t.user_id, t.tweet_id))
        batch.add(self._delete_by_id, (t.tweet_id,))
        if t.reply_to is not None:
            batch.add(self._record_reply_deleted if queued else self._forget_reply, (t.reply_to, t.tweet_id))
        await self._aexecute(batch)

    async def like(self, tweet_id: int, user_id: int) -> bool:
        """Record a like; False when this user had liked the tweet already (a lightweight
        transaction, so two racing requests cannot both count)."""
        rows = await self._aexecute(self._like, (tweet_id, user_id, datetime.now(UTC)))
        return bool(rows[0][0]) if rows else False

    @staticmethod
    def _row_counts(row: Any) -> dict[str, int]:
        return {c: int(getattr(row, col) or 0) for c, col in COLUMNS.items()}

    async def counts(self, tweet_ids: list[int]) -> dict[int, dict[str, int]]:
        """The checkpointed engagement counters of each tweet that has any (engagement.COUNTERS)."""
        rows = await asyncio.gather(*(self._aexecute(self._counts, (t,)) for t in tweet_ids))
        return {t: self._row_counts(r[0]) for t, r in zip(tweet_ids, rows, strict=True) if r}

    def counts_sync(self, tweet_ids: list[int]) -> dict[int, dict[str, int]]:
        results = execute_concurrent(self.session, [(self._counts, (t,)) for t in tweet_ids],
                                     concurrency=32, raise_on_first_error=True)
        found = {t: rows.one() for t, (_ok, rows) in zip(tweet_ids, results, strict=True)}
        return {t: self._row_counts(row) for t, row in found.items() if row is not None}

    def likers_sync(self, tweet_id: int) -> list[int]:
        """Every user whose like of `tweet_id` is recorded (the record each like writes first)."""
        return [r.user_id for r in self.session.execute(self._likers, (tweet_id,), timeout=10)]

    def retweet_ids_sync(self, tweet_id: int) -> list[int]:
        """The ids of the retweets of `tweet_id` that stand (an undone one is no longer recorded)."""
        return [r.retweet_id for r in self.session.execute(self._retweet_ids, (tweet_id,), timeout=10)]

    def undone_retweet_ids_sync(self, tweet_id: int) -> list[int]:
        """The ids of the retweets of `tweet_id` that were undone."""
        return [r.retweet_id for r in self.session.execute(self._undone_ids, (tweet_id,), timeout=10)]

    def retweet_ids_ever_sync(self, tweet_id: int) -> list[int]:
        """Every retweet id of `tweet_id` recorded, standing or undone. The standing ones are read
        first: an undo records its id as undone before it drops it from the standing ones, so an
        undo in between is seen in one of the two reads at least."""
        standing = self.retweet_ids_sync(tweet_id)
        return sorted(set(standing) | set(self.undone_retweet_ids_sync(tweet_id)))

    def reply_ids_sync(self, tweet_id: int) -> list[int]:
        """The ids of every reply to `tweet_id` ever stored, deleted ones included."""
        return [r.reply_id for r in self.session.execute(self._replies, (tweet_id,), timeout=10)]

    def deleted_reply_ids_sync(self, tweet_id: int) -> list[int]:
        """The ids of the replies to `tweet_id` that were deleted."""
        return [r.reply_id for r in self.session.execute(self._replies, (tweet_id,), timeout=10) if r.deleted]

    def like_count_sync(self, tweet_id: int) -> int:
        return self.counts_sync([tweet_id]).get(tweet_id, {}).get("likes", 0)

    def add_counts_sync(self, deltas: dict[CounterKey, int]) -> set[CounterKey]:
        """Add `deltas` to the counter table (counters cannot be set, only moved); the counters
        whose update failed, which may have been applied all the same (a timeout)."""
        moved = [(k, d) for k, d in deltas.items() if d]
        results = execute_concurrent(self.session, [(self._add_count[c], (d, t)) for (t, c), d in moved],
                                     concurrency=32, raise_on_first_error=False)
        return {k for (k, _), (ok, _result) in zip(moved, results, strict=True) if not ok}

    async def retweet(self, tweet_id: int, user_id: int, retweet_id: int) -> tuple[int, bool]:
        """Record `user_id`'s retweet of `tweet_id` as `retweet_id` unless they have one already
        (a lightweight transaction: one per user, however many requests race): the retweet's id
        and whether it was recorded now."""
        rows = await self._aexecute(self._retweet, (tweet_id, user_id, retweet_id, datetime.now(UTC)))
        if rows and rows[0][0]:
            return retweet_id, True
        return int(rows[0].retweet_id), False

    async def hold_key(self, user: int, digest: str, tweet_id: int, ttl_s: int) -> int:
        """Hold an idempotency key for `tweet_id` unless it is held already (a lightweight
        transaction): the tweet id it is held for."""
        rows = await self._aexecute(self._hold_key, (user, digest, tweet_id, ttl_s))
        return tweet_id if rows and rows[0][0] else int(rows[0].tweet_id)

    async def retweet_by(self, tweet_id: int, user_id: int) -> int | None:
        """The id of `user_id`'s retweet of `tweet_id`, if they have one."""
        rows = await self._aexecute(self._retweet_by, (tweet_id, user_id))
        return int(rows[0].retweet_id) if rows else None

    async def unretweet(self, tweet_id: int, user_id: int, retweet_id: int) -> None:
        """Forget `user_id`'s retweet `retweet_id` of `tweet_id` (not a newer one), recording it as
        undone first (see retweet_ids_ever_sync)."""
        await self._aexecute(self._record_undone, (tweet_id, retweet_id))
        await self._aexecute(self._unretweet, (tweet_id, user_id, retweet_id))

    async def claim_handle(self, handle: str, user_id: int) -> int:
        """Claim `handle` (any case) for `user_id` with a lightweight transaction, so two users
        racing for one handle cannot both have it; the user holding it afterwards."""
        rows = await self._aexecute(self._claim_handle, (handle.lower(), user_id))
        return user_id if rows[0][0] else int(rows[0].user_id)

    async def set_profile(self, user_id: int, handle: str, display_name: str, created_at: datetime) -> bool:
        """Write a profile unless the user has a handle already (a lightweight transaction):
        whether it was written."""
        rows = await self._aexecute(self._set_profile, (handle, display_name, created_at, user_id))
        return bool(rows[0][0])

    async def release_handle(self, handle: str, user_id: int) -> None:
        """Give back a claim on `handle`, if `user_id` holds it."""
        await self._aexecute(self._release_handle, (handle.lower(), user_id))

    async def set_display_name(self, user_id: int, display_name: str) -> None:
        await self._aexecute(self._set_display_name, (display_name, user_id))

    async def register_media(self, media_id: str, owner: int, content_type: str, size_bytes: int) -> None:
        await self._aexecute(self._insert_media, (media_id, owner, content_type, size_bytes, datetime.now(UTC)))

    # --- reads
    async def media_records(self, media_ids: list[str]) -> dict[str, tuple[int, str]]:
        """Registered media among `media_ids`: id -> (owner, content type)."""
        rows = await asyncio.gather(*(self._aexecute(self._media, (m,)) for m in media_ids))
        return {r[0].media_id: (r[0].owner_id, r[0].content_type) for r in rows if r}

    async def profile(self, user_id: int) -> Profile | None:
        """A registered user's profile (a users row without a handle is only a tier override)."""
        rows = await self._aexecute(self._profile, (user_id,))
        if not rows or rows[0].handle is None:
            return None
        r = rows[0]
        return Profile(r.user_id, r.handle, r.display_name or r.handle, r.created_at)

    async def handles(self, user_ids: list[int]) -> dict[int, str]:
        """The handles of the registered users among `user_ids`."""
        rows = await self._aexecute(self._handles, (user_ids,))
        return {r.user_id: r.handle for r in rows if r.handle is not None}

    async def tweets_by_ids(self, ids: Iterable[int]) -> dict[int, Tweet]:
        rows = await asyncio.gather(*(self._aexecute(self._by_id, (i,)) for i in ids))
        return {r[0].tweet_id: Tweet.from_row(r[0]) for r in rows if r}

    async def tweets_by_author(self, user_id: int, before: int, limit: int) -> list[Tweet]:
        return [Tweet.from_row(r) for r in await self._aexecute(self._by_author, (user_id, before, limit))]

    async def newest_by_authors(self, authors: list[int], before: int, per_author: int) -> list[TweetRef]:
        """The newest tweets of many authors in a few multi-partition queries (the fan-in path)."""
        chunks = [authors[i:i + FAN_IN_CHUNK] for i in range(0, len(authors), FAN_IN_CHUNK)]
        rows = await asyncio.gather(*(self._aexecute(self._by_authors, (c, before, per_author)) for c in chunks))
        return [_ref(r) for chunk in rows for r in chunk]

    async def followers_among(self, user: int, candidates: list[int]) -> set[int]:
        """Which of `candidates` follow `user` (one single-partition query)."""
        if not candidates:
            return set()
        return {r.follower_id for r in await self._aexecute(self._followers_among, (user, candidates))}

    async def runtime_config(self) -> dict[str, str]:
        return {r.name: r.value for r in await self._aexecute(self._config)}

    async def is_following(self, follower: int, followee: int) -> bool:
        return bool(await self._aexecute(self._follows_one, (follower, followee)))

    async def follower_count(self, user_id: int) -> int:
        return int((await self._aexecute(self._count_followers, (user_id,)))[0][0])

    async def following_count(self, user_id: int) -> int:
        return int((await self._aexecute(self._count_following, (user_id,)))[0][0])

    def is_following_sync(self, follower: int, followee: int) -> bool:
        return bool(list(self.session.execute(self._follows_one, (follower, followee))))

    def is_deleted_sync(self, tweet_id: int) -> bool:
        """Whether the tweet was deleted (False for one the store does not have)."""
        row = self.session.execute(self._by_id, (tweet_id,), timeout=10).one()
        return bool(row is not None and row.deleted)

    def newest_by_author_sync(self, user_id: int, limit: int) -> list[Tweet]:
        rows = self.session.execute(self._by_author, (user_id, 2**63 - 1, limit), timeout=10)
        return [Tweet.from_row(r) for r in rows]

    async def tier_override(self, user_id: int) -> str | None:
        rows = await self._aexecute(self._user_tier, (user_id,))
        return rows[0].fanout_tier if rows else None

    def tier_override_sync(self, user_id: int) -> str | None:
        rows = list(self.session.execute(self._user_tier, (user_id,), timeout=10))
        return rows[0].fanout_tier if rows else None

    def set_tier_override_sync(self, user_id: int, tier: str | None) -> None:
        self.session.execute(self._set_user_tier, (tier, user_id), timeout=10)

    async def pull_tier(self) -> set[int]:
        return {r.author_id for r in await self._aexecute(self._pull_tier)}

    def pull_tier_sync(self) -> set[int]:
        return {r.author_id for r in self.session.execute(self._pull_tier, timeout=10)}

    def set_pull_tier_sync(self, author: int, pulled: bool) -> None:
        self.session.execute(self._add_pull if pulled else self._remove_pull, (author,), timeout=10)

    def runtime_config_sync(self) -> dict[str, str]:
        return {r.name: r.value for r in self.session.execute(self._config, timeout=10)}

    def set_runtime_config_sync(self, name: str, value: str) -> None:
        self.session.execute(self._set_config, (name, value), timeout=10)

    async def oldest_since_by_authors(self, authors: list[int], since: int, per_author: int) -> list[TweetRef]:
        """The first `per_author` tweets after `since` of each author (the delta fan-in path).

        One multi-partition query answers for every author with at most `per_author` tweets
        after `since` (it returns them all). It can only return each author's newest ones, so an
        author with more (a burst) is asked again on its own, oldest first: else a delta would
        skip the oldest of the burst for good.
        """
        chunks = [authors[i:i + FAN_IN_CHUNK] for i in range(0, len(authors), FAN_IN_CHUNK)]
        rows = await asyncio.gather(*(self._aexecute(self._since_authors, (c, since, per_author + 1))
                                      for c in chunks))
        by_author: dict[int, list[TweetRef]] = {}
        for chunk in rows:
            for r in chunk:
                by_author.setdefault(r.user_id, []).append(_ref(r))
        bursts = [a for a, tweets in by_author.items() if len(tweets) > per_author]
        oldest = await asyncio.gather(*(self._aexecute(self._since_author, (a, since, per_author)) for a in bursts))
        for a, burst in zip(bursts, oldest, strict=True):
            by_author[a] = [_ref(r) for r in burst]
        return [t for tweets in by_author.values() for t in tweets]

    async def followees(self, user_id: int) -> list[int]:
        return [r.followee_id for r in await self._aexecute(self._followees, (user_id,))]

    def followers_sync(self, user_id: int) -> list[int]:
        return [r.follower_id for r in self.session.execute(self._followers, (user_id,), timeout=10)]

    # --- bulk load (graph seeding)
    def bulk_follow(self, edges: list[tuple[int, int]], concurrency: int = 64) -> None:
        """Insert (follower, followee) edges in both directions, grouped per partition (test
        set-ups; a campaign's graph is imported as SSTables, see harness/seeding.py)."""
        now = datetime.now(UTC)
        fwd: dict[int, list[int]] = {}
        rev: dict[int, list[int]] = {}
        for a, b in edges:
            fwd.setdefault(a, []).append(b)
            rev.setdefault(b, []).append(a)
        batches: list[tuple[BatchStatement, None]] = []
        for stmt, groups in ((self._follow, fwd), (self._follow_rev, rev)):
            for key, others in groups.items():
                for start in range(0, len(others), BULK_BATCH):
                    # A batch within one partition is applied as a single mutation: cheap.
                    b = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for other in others[start:start + BULK_BATCH]:
                        b.add(stmt, (key, other, now))
                    batches.append((b, None))
        results = execute_concurrent(self.session, batches, concurrency=concurrency, raise_on_first_error=True)
        for ok, res in results:
            if not ok:
                raise RuntimeError(f"bulk follow failed: {res}")
