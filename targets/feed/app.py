"""The feed service's HTTP API (design §05b), as a Starlette ASGI app.

Write path: validate → Snowflake id → durable write to Cassandra → event to Kafka (awaited) →
201 with `fan_out_status: queued`. Read path: timeline ids from Redis → hydration from Redis,
store fallback for misses; when the timeline shard is unreachable (a Redis failover), the feed
is rebuilt from the store by fan-in over the user's followees: slower, still correct.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import yaml
from cachetools import TTLCache
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from targets.feed.auth import user_from_header
from targets.feed.cache import BesideSet, FeedCache, SetRead, notify_channel
from targets.feed.engagement import Engagement, display_count
from targets.feed.engagement import event as engagement_event
from targets.feed.errors import ApiError, json_response
from targets.feed.events import EventProducer
from targets.feed.follow_sets import FollowSets, following_key
from targets.feed.guards import FollowLock, Idempotency, RateLimit
from targets.feed.outage import MAYBE_DOWN, QueueUnavailable, fail_open, is_outage
from targets.feed.preheat import Preheater
from targets.feed.pulled import PulledTweets
from targets.feed.ranking import CANDIDATES, Ranker, RankingGateway
from targets.feed.settings import Settings
from targets.feed.snowflake import Snowflake
from targets.feed.store import Media, Store, Tweet
from targets.feed.tiers import Tier, TierPolicy
from targets.feed.users import Users
from targets.feed.validation import decimal, json_object, parse_new_tweet, parse_profile, positive_id

log = logging.getLogger("feed.api")

REQUEST_SECONDS = Histogram(
    "feed_http_request_duration_seconds", "Server-side request latency", ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5))
TIMELINE_CACHE = Counter("feed_timeline_cache_requests_total", "Timeline cache lookups", ["result"])
DEGRADED = Counter("feed_degraded_requests_total", "Feeds served from the store fan-in path", ["reason"])
HYDRATION_SECONDS = Histogram("feed_hydration_seconds", "Hydrating one feed page (cache, store fallback)",
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1))
HYDRATION_MISSES = Counter("feed_hydration_misses_total", "Tweets hydrated from the store")
STREAMS = Gauge("feed_sse_streams", "Connected Server-Sent Events streams")
REBUILDS = Counter("feed_timeline_rebuilds_total", "Missing timelines rebuilt from the store after a read missed")
CELEBRITY_MERGES = Counter("feed_celebrity_merges_total", "Feed pages that merged in pull-tier tweets")
INTERNAL_ERRORS = Counter("feed_internal_errors_total", "Requests that ended in an unhandled error (503 for an"
                          " outage, 500 for anything else)", ["kind", "error"])
DEADLINES = Counter("feed_request_deadlines_total", "Requests answered 503 at the request deadline", ["endpoint"])
CACHE_ERRORS = Counter("feed_cache_errors_total", "Cache calls that failed (served from the store)", ["op", "error"])


def cache_failed(op: str, exc: BaseException) -> None:
    """Called in an `except MAYBE_DOWN` block: the cache could not answer, so the caller goes
    on with the store (counted and logged); anything but an outage is re-raised (outage.py)."""
    if not is_outage(exc):
        raise exc
    CACHE_ERRORS.labels(op, type(exc).__name__).inc()
    # Once a second per call site: in an outage every request fails the same way, and a line
    # each (hundreds a second) costs the event loop more than the store path does.
    now = time.monotonic()
    if now - _last_logged.get(op, -math.inf) >= 1.0:
        _last_logged[op] = now
        log.warning("cache %s failed, using the store (logged once a second; feed_cache_errors_total counts "
                    "all): %s: %s", op, type(exc).__name__, exc)


_last_logged: dict[str, float] = {}

MAX_LIMIT = 100
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4")
MAX_MEDIA_BYTES = 512 * 1024 * 1024
REBUILD_PER_AUTHOR = 50
PULL_TIER_TTL_S = 2.0
PAGE_FILL_ROUNDS = 4
PAGE_FILL_IDS = 200
CONFIG_TTL_S = 5.0
OUTAGE_TWEETS = 20_000      # tweets read from the store for a failed cache node, kept per process ...
OUTAGE_TWEETS_TTL_S = 2.0   # ... this long (a deletion's 60 s bound, counts' 10 s, are far above)
ENGAGEMENT_TOPIC = "engagement"
KEEPALIVE_S = 15.0
# Every request is answered within this, whatever a store does: the balancer gives up on an
# instance after 3 s (proxy_read_timeout) and counts that against it, so an instance waiting on a
# hung store past 3 s was ejected, and with both ejected every request failed, reads included
# (`feedlab verify`: all requests 502 for the whole of an 8 s Kafka or Cassandra pause). Only
# an instance that is itself frozen now times out at the balancer.
REQUEST_DEADLINE_S = 2.5
STREAM_PATH = "/v1/stream"   # endless by design: no deadline


# Cursors are plain, so that the OpenAPI document can say exactly which are valid (a pattern):
# a chronological page's is the last tweet id it examined; a ranked page's is
# "<anchor>-<offset>", the first page's newest candidate and how many ranked items came before.
MAX_ID = 2**63 - 1
_RANKED_CURSOR = re.compile(r"([0-9]+)-([0-9]+)")


def encode_cursor(tweet_id: int) -> str:
    return str(tweet_id)


def decode_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    value = positive_id(raw)   # beyond 63 bits it would reach the store's bigint binding: a 500
    if value is None:
        raise ApiError(400, "bad_cursor", "cursor is not one this API issued (a tweet id)")
    return value


def public_tweet(tweet: dict[str, Any], handle: str | None, engagement: Engagement,
                 original: dict[str, Any] | None = None) -> dict[str, Any]:
    """A cached tweet object as the API serves it (design §05b): its author as an object with
    the handle, and its engagement counts. A retweet is served as its own item (its id, the
    retweeter as author, when it was retweeted) carrying the original (`retweet_of`, as served
    itself), whose text, media and counts it shows."""
    body = {"tweet_id": tweet["tweet_id"], "author": {"user_id": tweet["author_id"], "handle": handle},
            "text": tweet["text"], "media": tweet.get("media") or [], "reply_to": tweet.get("reply_to"),
            "created_at": tweet["created_at"], "deleted": bool(tweet.get("deleted")),
            "engagement": engagement.to_json(), "retweet_of": original}
    if original is not None:
        body.update(text=original["text"], media=original["media"], reply_to=None,
                    engagement=original["engagement"])
    return body


def author_of(tweet: dict[str, Any]) -> int:
    """The author id of a tweet as public_tweet serves it."""
    return int(tweet["author"]["user_id"])


def only_params(request: Request, allowed: set[str]) -> None:
    """Any other query parameter is refused (a typo such as `limt=5` would otherwise silently
    give the default page)."""
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameter(s): {', '.join(unknown)}")


def page_params(request: Request) -> tuple[int, int | None]:
    """limit and cursor of a chronologically paged GET."""
    only_params(request, {"limit", "cursor"})
    return parse_limit(request.query_params.get("limit")), decode_cursor(request.query_params.get("cursor"))


def encode_ranked_cursor(anchor: int, offset: int) -> str:
    return f"{anchor}-{offset}"


def decode_ranked_cursor(raw: str) -> tuple[int, int]:
    """(the first page's newest candidate, how many ranked items were served)."""
    m = _RANKED_CURSOR.fullmatch(raw)
    anchor, offset = (positive_id(m[1]), decimal(m[2])) if m else (None, None)
    if anchor is None or offset is None or not 0 < offset < CANDIDATES:
        raise ApiError(400, "bad_cursor", "cursor is not one this API issued for a ranked feed")
    return anchor, offset


async def json_body(request: Request) -> bytes:
    """The body of a request that must carry JSON: 415 unless its Content-Type says it does
    (`application/json`, parameters such as charset allowed; nothing else is read as JSON)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be JSON, sent as Content-Type: application/json")
    try:
        return await request.body()
    except ClientDisconnect:
        # The client hung up before sending its whole body: nothing was done, and nobody reads
        # the answer (nginx's 499, "client closed request"); not an internal error.
        raise ApiError(499, "client_closed_request", "the client closed the connection before its body arrived") \
            from None


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return 20
    value = decimal(raw)
    if value is None or not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be an integer within [1, {MAX_LIMIT}]")
    return value


def parse_id(raw: str, code: str, what: str) -> int:
    """A user or tweet id: a positive 63-bit integer, or a 400 with `code`."""
    value = positive_id(raw)
    if value is None:
        raise ApiError(400, code, f"{what} must be a positive integer")
    return value


def parse_user_id(raw: str) -> int:
    return parse_id(raw, "bad_user_id", "user id")


class Feed:
    """Everything the handlers share, created on start-up (no module-level state)."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.store = Store(settings.cassandra)
        self.users = Users(self.store)
        self.cache = FeedCache(settings.redis_nodes)
        self.follows = FollowSets(self.cache.rc)
        self.preheater = Preheater(self.cache.background_client(), self.rebuild)
        self.pulled = PulledTweets(self.store.newest_by_authors, self.store.oldest_since_by_authors)
        self.events = EventProducer(settings.kafka)
        self.ids = Snowflake(settings.datacenter_id, settings.machine_id)
        self.idempotency = Idempotency(self.cache.rc, settings.idempotency_ttl_s, keys=self.store,
                                       ignore=settings.defects.ignore_idempotency)
        self.rate_limit = RateLimit(self.cache.rc, settings.rate_limit_tweets, settings.rate_limit_window_s)
        self.follow_lock = FollowLock(self.cache.rc)
        self._background: set[asyncio.Task[None]] = set()
        self._rebuilding: set[int] = set()
        # Tweets (and counts) read from the store because their cache node failed, kept a
        # moment: while a shard is away a third of every page's tweets come from the store, one
        # query each, and they are mostly the same recent tweets for every reader.
        self._from_store: TTLCache[int, tuple[dict[str, Any], Engagement]] = TTLCache(
            maxsize=OUTAGE_TWEETS, ttl=OUTAGE_TWEETS_TTL_S)
        self._pull_tier: tuple[float, set[int]] = (-PULL_TIER_TTL_S, set())
        self._config: dict[str, str] = {}
        self._config_at = -CONFIG_TTL_S
        self.ranking = RankingGateway(Ranker(lambda: self.config_share("ranker.fail_share")),
                                      fallback=not settings.defects.disable_breaker_fallback)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        self.events.close()
        await self.follows.close()
        await self.preheater.rc.aclose()
        await self.cache.close()
        self.store.close()

    def authenticated(self, request: Request) -> int:
        uid = user_from_header(self.s.token_secret, request.headers.get("authorization"))
        if uid is None:
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        return uid

    async def user(self, request: Request) -> int:
        """The acting user: authenticated, and registered (403 otherwise)."""
        uid = self.authenticated(request)
        await self.users.require(uid)
        return uid

    async def existing_user(self, raw: str) -> int:
        """A user id from a path: 400 if malformed, 404 if nobody registered it."""
        uid = parse_user_id(raw)
        if not await self.users.exists(uid):
            raise ApiError(404, "unknown_user", f"user {uid} does not exist")
        return uid

    async def _timeline(self, user: int, read: Callable[[BesideSet], Awaitable[tuple[list[int] | None, SetRead]]],
                        what: str) -> tuple[list[int] | None, AbstractSet[int], bool]:
        """`read` of the user's timeline (with the follow set beside it), unless its shard does
        not answer: the ids (None: the caller reads the store), whom the user follows now, and
        whether the cache answered."""
        self.preheater.saw(user)
        try:
            ids, beside = await read(self.follows.beside(user))
        except MAYBE_DOWN as exc:
            cache_failed(what, exc)
            DEGRADED.labels("redis_error").inc()
            return None, set(await self.store.followees(user)), False
        if ids is None:
            DEGRADED.labels("cache_miss").inc()
        return ids, await self.following(user, beside), True

    async def candidates(self, user: int, before: int | None, n: int) -> tuple[list[int], AbstractSet[int]]:
        """The newest `n` tweet ids of the user's feed older than `before`: the pushed timeline
        (or the store fan-in when it is missing or its shard is down), with the followed pull-tier
        authors merged in; and the accounts the user follows now (read beside the timeline)."""
        ids, following, answered = await self._timeline(
            user, lambda beside: self.cache.timeline_page(user, before, n, beside=beside), "timeline")
        if answered:
            TIMELINE_CACHE.labels("hit" if ids is not None else "miss").inc()
            if ids is None:
                self.rebuild_later(user)
        if ids is None:   # every followee's lists, the pull-tier ones too, below one horizon: nothing to merge
            return await self.fan_in(user, before, n, following=following), following
        return await self.merge_celebrities(before, n, ids, following), following

    async def delta_ids(self, user: int, since: int, n: int) -> tuple[list[int], AbstractSet[int]]:
        """The first `n` ids after `since` in the user's feed, oldest first (timeline, or the
        store when it is missing or down, plus the followed pull-tier authors); and the
        accounts the user follows now."""
        ids, following, _ = await self._timeline(
            user, lambda beside: self.cache.timeline_since(user, since, n, beside=beside), "timeline_delta")
        if ids is None:   # every followee's lists, the pull-tier ones too, below one horizon
            return await self._delta_fan_in([user, *sorted(following)], since, n), following
        followed = await self.followed_pull_authors(following)
        if followed:   # lists read after the newest pushed id, as merge_celebrities says
            pulled = await self._delta_fan_in(sorted(followed), since, n, newer_than=max(ids, default=0))
            ids = sorted(set(ids) | set(pulled))
        return sorted(ids)[:n], following

    async def _delta_fan_in(self, authors: list[int], since: int, n: int, *, newer_than: int = 0) -> list[int]:
        ids = await self.pulled.oldest_since(authors, since, n, newer_than=newer_than)
        return sorted(ids)[:n]   # deleted ones too: counted for has_more, hydration drops them

    async def refresh_config(self) -> None:
        """runtime_config, re-read at most every CONFIG_TTL_S (the ranker's fault injection)."""
        if time.monotonic() - self._config_at > CONFIG_TTL_S:
            try:
                self._config = await self.store.runtime_config()
            except MAYBE_DOWN as exc:   # keep the last known configuration
                fail_open("runtime config (keeping the last one)", exc)
            self._config_at = time.monotonic()

    def config_share(self, name: str) -> float:
        try:
            return min(1.0, max(0.0, float(self._config.get(name, "0"))))
        except ValueError:
            return 0.0

    async def tier_of(self, author: int) -> Tier:
        """The author's fan-out tier as the workers decide it: follower count against the
        thresholds of runtime_config, unless the user's own override flag says otherwise."""
        await self.refresh_config()
        followers, override = await asyncio.gather(self.store.follower_count(author), self.store.tier_override(author))
        return TierPolicy.from_settings(self.s).with_config(self._config).tier(followers, override)

    async def pull_tier(self) -> set[int]:
        """The pull-tier registry (the store's, kept by the workers), re-read at most every
        PULL_TIER_TTL_S."""
        at, members = self._pull_tier
        if time.monotonic() - at > PULL_TIER_TTL_S:
            try:
                members = await self.store.pull_tier()
            except MAYBE_DOWN as exc:   # keep the last known set while the store is away
                fail_open("pull-tier registry (keeping the last one)", exc)
            self._pull_tier = (time.monotonic(), members)
        return members

    async def followed_pull_authors(self, following: AbstractSet[int]) -> set[int]:
        """The pull-tier authors among `following`: whose tweets are merged in at read time."""
        if self.s.defects.break_celebrity_merge:
            return set()
        return await self.pull_tier() & following

    async def following(self, user: int, cached: SetRead) -> AbstractSet[int]:
        """Whom `user` follows now: the cached follow set (`cached`: as read beside the
        timeline), else the store (and the set cached for the next read)."""
        found = self.follows.read(user, cached)
        if found is not None:
            return found
        try:
            generation = await self.follows.generation(user)
        except MAYBE_DOWN as exc:
            cache_failed("follow_set", exc)
            return set(await self.store.followees(user))
        followees = await self.store.followees(user)
        try:
            await self.follows.fill(user, generation, followees)
        except MAYBE_DOWN as exc:
            cache_failed("follow_set_fill", exc)
        return set(followees)

    async def cache_new(self, tweet: Tweet) -> None:
        """Cache a new tweet with its counters (0) before its fan-out is queued, so that an
        object cached without a counter always means a count to read from the store (best
        effort: a reader then caches the two); and the counted sets of its counters whose
        members the store records, so that counting its first like, retweet or reply reads
        nothing from the store."""
        try:
            await self.cache.put_tweets([tweet.to_json()], {}, new=True)
        except MAYBE_DOWN as exc:
            cache_failed("post_cache", exc)

    async def retract(self, tweet: Tweet) -> None:
        """Take back a stored tweet that was never queued: deleted in the store, and marked so in
        the hydration cache in case the queue took it after all (best effort: logged)."""
        try:
            await self.store.soft_delete(tweet, queued=False)
            await self.cache.put_tweets([{**tweet.to_json(), "deleted": True}], {})
        except Exception:  # noqa: BLE001 - the 503 stands; the tweet may stay on its author's profile
            log.warning("could not take back unqueued tweet %s", tweet.tweet_id, exc_info=True)

    async def current_following(self, user: int) -> AbstractSet[int]:
        """Whom `user` follows now, when no timeline read brought the cached set along."""
        try:
            members = [str(m) for m in await self.cache.rc.smembers(following_key(user))]
        except MAYBE_DOWN as exc:
            cache_failed("follow_set", exc)
            members = []
        return await self.following(user, SetRead(generation="", members=members))

    async def saved_ranking(self, user: int, anchor: int) -> list[int] | None:
        try:
            return await self.cache.ranking(user, anchor)
        except MAYBE_DOWN as exc:
            cache_failed("ranking", exc)
            return None

    async def save_ranking(self, user: int, anchor: int, ids: list[int]) -> None:
        try:
            await self.cache.save_ranking(user, anchor, ids)
        except MAYBE_DOWN as exc:   # later pages rank afresh
            cache_failed("ranking_save", exc)

    async def merge_celebrities(self, before: int | None, n: int, ids: list[int],
                                following: AbstractSet[int]) -> list[int]:
        """Design §05/§06 hybrid: pull-tier authors are never pushed; their newest tweets are
        read from the store (kept a second per process, `pulled`) and interleaved with the
        pushed timeline `ids`, newest first. The lists are read again if they are older than
        the newest pushed id: a page showing it beside a list lacking an older pulled tweet
        would give a cursor that steps over that tweet."""
        followed = await self.followed_pull_authors(following)
        if not followed:
            return ids
        CELEBRITY_MERGES.inc()
        upper = before if before is not None else 2**63 - 1
        pulled = await self.pulled.ids(sorted(followed), upper, n, newer_than=max(ids, default=0))
        return sorted(set(ids) | set(pulled), reverse=True)[:n]

    async def chronological_page(self, user: int, before: int | None,
                                 limit: int) -> tuple[list[dict[str, Any]], int | None, bool]:
        """Up to `limit` tweets of the feed older than `before`, newest first; the last id
        examined (the next page's cursor); whether more may follow. Deleted tweets and
        unfollowed authors are dropped after the ids are read, so when a page comes up short
        the ids below it are read too (twice as many each round, PAGE_FILL_ROUNDS rounds and
        PAGE_FILL_IDS ids at most, so a timeline full of an unfollowed account's tweets costs
        each page a bounded amount) rather than giving a short page while there is more."""
        tweets: list[dict[str, Any]] = []
        has_more = True
        budget = max(PAGE_FILL_IDS, limit)
        for round_ in range(PAGE_FILL_ROUNDS):
            want = limit - len(tweets)
            n = min(want * 2**round_, budget)
            if n == 0:
                break
            budget -= n
            ids, following = await self.candidates(user, before, n + 1)
            has_more = len(ids) > n
            ids = ids[:n]
            found = self.only_followed(user, await self.hydrate(ids), following)
            if len(found) > want:            # a later round read more than the page needs
                ids = [i for i in ids if i >= int(found[want - 1]["tweet_id"])]
                found, has_more = found[:want], True
            tweets += found
            before = ids[-1] if ids else before
            if not has_more or len(tweets) == limit:
                break
        return tweets, before, has_more

    def only_followed(self, user: int, tweets: list[dict[str, Any]],
                      following: AbstractSet[int]) -> list[dict[str, Any]]:
        """Design §10: the read-time unfollow filter. Timelines keep ids fanned out before an
        unfollow; each page is checked against the follow set as it is now."""
        if self.s.defects.skip_unfollow_filter:
            return tweets
        return [t for t in tweets if author_of(t) == user or author_of(t) in following]

    async def original_of(self, raw: str, code: str = "not_found") -> Tweet:
        """The tweet a path's id names, or the original of the retweet it names: 404 (`code`)
        if it does not exist or was deleted."""
        tweet_id = parse_id(raw, "bad_tweet_id", "tweet id") if code == "not_found" else int(raw)
        found = (await self.store.tweets_by_ids([tweet_id])).get(tweet_id)
        if found is not None and found.retweet_of is not None and not found.deleted:
            found = (await self.store.tweets_by_ids([found.retweet_of])).get(found.retweet_of)
        if found is None or found.deleted:
            raise ApiError(404, code, f"tweet {raw} does not exist")
        return found

    async def optimistic(self, tweet_id: int, counter: str, member: int | None, minus: str | None = None,
                         minus_member: int | None = None) -> int:
        """A count as an engagement's own reply shows it: the counter (less `minus`), counting
        `member` (and `minus_member`) even while its event is on its way; from the store's
        checkpoint when the cache has no counter or cannot answer."""
        try:
            n = await self.cache.optimistic(tweet_id, counter, member, minus, minus_member)
            if n is not None:
                return n
        except MAYBE_DOWN as exc:
            cache_failed("optimistic_count", exc)
        stored = (await self.store.counts([tweet_id])).get(tweet_id, {})
        n = stored.get(counter, 0) + (member is not None) - (stored.get(minus, 0) + (minus_member is not None)
                                                             if minus else 0)
        return max(0, n)

    async def count_soon(self, kind: str, tweet_id: int, member: int) -> None:
        """Send an engagement event now, best effort, so that the count moves at once: the
        fan-out lane sends it too, durably, from the tweet or deletion event it derives from."""
        try:
            await self.events.publish_to(ENGAGEMENT_TOPIC, tweet_id, engagement_event(kind, tweet_id, member))
        except QueueUnavailable as exc:
            log.info("engagement event %s of %s not sent now (the fan-out lane sends it): %s", kind, tweet_id, exc)

    async def check_references(self, author: int, media_ids: list[str],
                               reply_to: int | None) -> tuple[list[Media], int | None]:
        """Media must be registered by the author; a reply must answer a tweet that exists (a
        reply to a retweet answers its original). The tweet's media, with their content types
        (ranking weighs them), and the tweet it replies to."""
        media: list[Media] = []
        if media_ids:
            records = await self.store.media_records(media_ids)
            unknown = [m for m in media_ids if m not in records or records[m][0] != author]
            if unknown:   # a 404 (schema-valid, naming nothing of this user's), not a 400
                raise ApiError(404, "unknown_media", f"media not registered by this user: {', '.join(unknown)}")
            media = [Media(m, records[m][1]) for m in media_ids]
        if reply_to is not None:
            reply_to = (await self.original_of(str(reply_to), "unknown_reply_to")).tweet_id
        return media, reply_to

    async def hydrate(self, ids: list[int]) -> list[dict[str, Any]]:
        """Tweets for `ids` as served (deleted ones left out, and retweets of deleted ones),
        each with its engagement counts, a retweet with its original."""
        with HYDRATION_SECONDS.time():
            return await self._hydrate(ids)

    async def _hydrate(self, ids: list[int]) -> list[dict[str, Any]]:
        objects, counts = await self._objects(ids)
        # Retweets are served with their originals: those not on the page are read too.
        originals = {int(o["retweet_of"]) for o in objects.values() if o.get("retweet_of") and not o.get("deleted")}
        if originals - objects.keys():
            more, more_counts = await self._objects(sorted(originals - objects.keys()))
            objects.update(more)
            counts.update(more_counts)
        if self.s.defects.keep_deleted_retweets:   # the defect serves the deleted original as it was
            gone = [o for o in originals if objects.get(o, {}).get("deleted") and "text" not in objects[o]]
            objects.update({i: t.to_json() for i, t in (await self.store.tweets_by_ids(gone)).items()})

        def shown(i: int) -> bool:
            obj = objects.get(i)
            if obj is None or obj.get("deleted"):
                return False
            if obj.get("retweet_of") is None:
                return True
            original = objects.get(int(obj["retweet_of"]))   # a retweet goes with its original
            return original is not None and (not original.get("deleted") or self.s.defects.keep_deleted_retweets)

        live = [i for i in ids if shown(i)]
        wanted = {int(objects[i]["author_id"]) for i in live} | {
            int(objects[int(objects[i]["retweet_of"])]["author_id"]) for i in live if objects[i].get("retweet_of")}
        handles = await self.users.handles(wanted)

        def served(i: int) -> dict[str, Any]:
            obj = objects[i]
            original = None
            if obj.get("retweet_of"):
                o = int(obj["retweet_of"])
                original = public_tweet({**objects[o], "deleted": False}, handles.get(int(objects[o]["author_id"])),
                                        counts.get(o, Engagement()))
            return public_tweet(obj, handles.get(int(obj["author_id"])), counts.get(i, Engagement()), original)

        return [served(i) for i in live]

    async def _objects(self, ids: list[int]) -> tuple[dict[int, dict[str, Any]], dict[int, Engagement]]:
        """Tweet objects for `ids` (deleted ones too, marked) and their counts: objects from the
        hydration cache, else the store; counts from the counters, else the store's last
        checkpoint."""
        try:
            hydrated = await self.cache.get_tweets(ids)
            cached, counts = hydrated.objects, hydrated.counts
            unread = {i for part, exc in hydrated.failed for i in part}
            for _, exc in hydrated.failed:
                cache_failed("hydrate_node", exc)   # a node that did not answer: its share from the store
        except MAYBE_DOWN as exc:
            cache_failed("hydrate", exc)
            cached, counts, unread = {}, {}, set(ids)
        kept = {i: self._from_store[i] for i in unread if i in self._from_store}
        for i, (obj, count) in kept.items():
            cached[i], counts[i] = obj, count
        unkept = sorted(unread - kept.keys())
        if unkept:
            counts.update({t: Engagement.from_counts(c) for t, c in (await self.store.counts(unkept)).items()})
        missing = [i for i in ids if i not in cached]
        from_store: dict[int, dict[str, Any]] = {}
        if missing:
            HYDRATION_MISSES.inc(len(missing))
            from_store = {i: t.to_json() for i, t in (await self.store.tweets_by_ids(missing)).items()}
            cached.update(from_store)
            for i in unkept:
                if i in from_store:
                    self._from_store[i] = (from_store[i], counts.get(i, Engagement()))
        # Every tweet's counters are created when it is posted, so an object without them (read
        # from the store, or cached again by a late fan-out, after the counters expired or their
        # shard restarted empty) has counts this cache does not know: take the store's, and cache
        # the two together (not on a shard that just failed to answer).
        uncounted = [i for i in ids if i in cached and i not in counts and i not in unread
                     and not cached[i].get("deleted")]
        stored = await self.store.counts(uncounted) if uncounted else {}
        counts.update({t: Engagement.from_counts(c) for t, c in stored.items()})
        again = {**{i: t for i, t in from_store.items() if i not in unread}, **{i: cached[i] for i in uncounted}}
        if again:
            try:
                await self.cache.put_tweets(list(again.values()), stored)
            except MAYBE_DOWN as exc:
                cache_failed("hydrate_write", exc)
        return cached, counts

    async def rebuild(self, user_id: int) -> bool:
        """Repopulate a missing timeline from the store (best effort: the next miss tries again;
        FeedCache.rebuild says how no tweet falls between the store read and fan-out); whether
        this call did (not when the timeline was whole, or another process was rebuilding it)."""
        try:
            return await self.cache.rebuild(user_id, lambda: self.fan_in(
                user_id, None, self.s.timeline_cap, per_author=REBUILD_PER_AUTHOR, live_only=True),
                self.s.timeline_cap)
        except Exception:  # noqa: BLE001 - logged; a cache or store outage must not escape
            log.warning("timeline rebuild for %s failed", user_id, exc_info=True)
            return False

    def forget(self, tweet_id: int) -> None:
        """A deleted tweet is not served from this process's copies of the store's (the other
        instance's copy lapses within OUTAGE_TWEETS_TTL_S)."""
        self._from_store.pop(tweet_id, None)

    def rebuild_later(self, user_id: int) -> None:
        """Cache miss: repopulate the timeline in the background (design §06), once at a time
        per user: a user reading again before the rebuild lands does not start another."""
        if user_id in self._rebuilding:
            return
        self._rebuilding.add(user_id)

        async def rebuild_once() -> None:
            try:
                if await self.rebuild(user_id):
                    REBUILDS.inc()
            finally:
                self._rebuilding.discard(user_id)

        self.in_background(rebuild_once())

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def fan_in(self, user_id: int, before: int | None, limit: int, per_author: int | None = None,
                     following: AbstractSet[int] | None = None, *, live_only: bool = False) -> list[int]:
        """The store path: merge the newest tweets of every followee (and the user's own), at
        most `per_author` of each. An author who had that many may have more below the oldest
        one read, so the merge stops there: a shorter list rather than one with holes (a page,
        where `per_author` is the page's size, is never cut). Deleted tweets are kept unless
        `live_only`: hydration drops them, and a page that counted only live ones would say
        `has_more: false` above an author's older tweets."""
        followees = sorted(following) if following is not None else await self.store.followees(user_id)
        authors = [user_id, *followees]
        upper = before if before is not None else 2**63 - 1
        per = per_author or limit
        dead: set[int] = set()
        if live_only:   # a rebuild: straight from the store, the deleted ones known
            tweets = await self.store.newest_by_authors(authors, upper, per)
            read: dict[int, list[int]] = {}
            for t in tweets:
                read.setdefault(t.user_id, []).append(t.tweet_id)
            dead = {t.tweet_id for t in tweets if t.deleted}
        else:           # a reader: the authors' lists this process keeps a moment (pulled.py)
            read = await self.pulled.by_author(authors, upper, per)
        floor = max((min(ids) for ids in read.values() if len(ids) >= per), default=0)
        return sorted((i for ids in read.values() for i in ids if i >= floor and i not in dead), reverse=True)[:limit]


def _feed(request: Request) -> Feed:
    feed: Feed = request.app.state.feed
    return feed


async def post_tweet(request: Request) -> Response:
    """Validate → guards → store → queue → 201 (design §05b). See guards.py for retries."""
    feed = _feed(request)
    author = await feed.user(request)
    new = parse_new_tweet(await json_body(request))
    claim = await feed.idempotency.claim(author, new.idempotency_key)
    if claim.replay is not None:
        return json_response(claim.replay, status=201, headers={"Idempotent-Replay": "true"})
    resumed = claim.stored is not None
    if claim.stored is not None:
        resumable = True
        tweet = Tweet.from_json(claim.stored)
    else:
        rate_token = uuid.uuid4().hex
        try:
            await feed.rate_limit.take(author, rate_token)
            media, reply_to = await feed.check_references(author, new.media_ids, new.reply_to)
            tweet = Tweet(feed.ids.next_id(), author, new.text, media, reply_to)
            held = await feed.idempotency.tweet_for(author, new.idempotency_key, tweet.tweet_id)
            if held != tweet.tweet_id:   # another attempt holds the key (Redis could not say so): finish its tweet
                await feed.rate_limit.give_back(author, rate_token)
                tweet, resumed = Tweet(held, author, new.text, media, reply_to), True
            await feed.idempotency.mark_stored(author, new.idempotency_key, tweet.to_json())
            # The key is held in the store (whatever Redis recorded): a retry finishes this tweet.
            resumable = new.idempotency_key is not None and not feed.s.defects.ignore_idempotency
        except BaseException:
            await feed.rate_limit.give_back(author, rate_token)
            await feed.idempotency.release(author, new.idempotency_key)
            raise
    if resumed:
        found = (await feed.store.tweets_by_ids([tweet.tweet_id])).get(tweet.tweet_id)
        if found is None:
            await feed.store.insert_tweet(tweet)   # the first attempt died before its write landed
        elif found.deleted:   # its author deleted it since: queueing it again would bring it back
            return await created(feed, author, new.idempotency_key, tweet)
        else:
            tweet = found
    else:
        # Not released if this fails: a timed-out write may still land, and the retry then
        # stores (or finds) this very tweet instead of a second one.
        await feed.store.insert_tweet(tweet)
        await feed.cache_new(tweet)
    event: dict[str, Any] = {"type": "tweet", "tweet": tweet.to_json()}
    if resumed:
        event["requeued"] = True   # a retry's: not a new tweet to signal, nor a fan-out lag to measure
    try:
        await feed.events.publish(author, event)
    except QueueUnavailable as exc:
        if resumable:
            # Stored but not queued: a retry with the same key re-queues this very tweet.
            raise ApiError(503, "queue_unavailable", f"tweet stored but not queued for fan-out: {exc}",
                           {"Retry-After": "1"}) from exc
        # Nothing could ever queue it (a retry posts a second tweet: it had no key, or its key
        # could not be recorded): taken back, so that the 503 means what it says; and the key
        # released, so that a retry starts over (a claim left pending would answer 409 for a
        # minute, and a record that landed after all would replay the taken-back tweet).
        await feed.retract(tweet)
        await feed.idempotency.release(author, new.idempotency_key)
        raise ApiError(503, "queue_unavailable", f"tweet not posted: the fan-out queue is unavailable: {exc}",
                       {"Retry-After": "1"}) from exc
    if tweet.reply_to is not None:
        await feed.count_soon("reply", tweet.reply_to, tweet.tweet_id)
    return await created(feed, author, new.idempotency_key, tweet)


async def created(feed: Feed, author: int, idempotency_key: str | None, tweet: Tweet) -> Response:
    """The 201 of a post, recorded against its idempotency key for retries."""
    body = {"tweet_id": str(tweet.tweet_id), "created_at": tweet.created_at, "author_id": str(author),
            "fan_out_status": "queued"}
    await feed.idempotency.complete(author, idempotency_key, body)
    return json_response(body, status=201)


async def users_me(request: Request) -> Response:
    """PUT: register the caller's profile (design §07 users), 201 when created, 200 for a
    retry. GET: the caller's profile."""
    feed = _feed(request)
    if request.method == "GET":
        return await profile_of(feed, await feed.user(request))
    caller = feed.authenticated(request)
    profile, created_now = await feed.users.register(caller, parse_profile(await json_body(request)))
    return json_response(profile.to_json(), status=201 if created_now else 200)


async def get_user(request: Request) -> Response:
    feed = _feed(request)
    await feed.user(request)
    return await profile_of(feed, parse_user_id(request.path_params["user_id"]))


async def profile_of(feed: Feed, uid: int) -> Response:
    profile = await feed.store.profile(uid)
    if profile is None:
        raise ApiError(404, "unknown_user", f"user {uid} does not exist")
    return json_response(profile.to_json())


async def register_media(request: Request) -> Response:
    """Record metadata of media uploaded out of band (the object store is out of scope)."""
    feed = _feed(request)
    owner = await feed.user(request)
    data = json_object(await json_body(request))
    ctype, size = data.get("content_type"), data.get("size_bytes")
    if ctype not in MEDIA_TYPES:
        raise ApiError(400, "bad_content_type", f"content_type must be one of {', '.join(MEDIA_TYPES)}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_MEDIA_BYTES:
        raise ApiError(400, "bad_size", f"size_bytes must be an integer within [1, {MAX_MEDIA_BYTES}]")
    media_id = f"m_{feed.ids.next_id()}"
    await feed.store.register_media(media_id, owner, ctype, size)
    return json_response({"media_id": media_id, "content_type": ctype, "size_bytes": size}, status=201)


async def get_feed(request: Request) -> Response:
    feed = _feed(request)
    user = await feed.user(request)
    only_params(request, {"limit", "cursor", "algorithm"})
    algorithm = request.query_params.get("algorithm", "chronological")
    if algorithm not in ("chronological", "ranked"):
        raise ApiError(400, "bad_algorithm", "algorithm must be chronological or ranked")
    limit = parse_limit(request.query_params.get("limit"))
    # A cursor continues the feed it came from (`algorithm` chooses the first page's order).
    cursor = request.query_params.get("cursor")
    if cursor is not None and "-" in cursor:
        return await ranked_feed(feed, user, limit, decode_ranked_cursor(cursor))
    if cursor is None and algorithm == "ranked":
        return await ranked_feed(feed, user, limit, None)
    tweets, last, has_more = await feed.chronological_page(user, decode_cursor(cursor), limit)
    return json_response({"tweets": tweets, "next_cursor": encode_cursor(last) if has_more and last else None,
                          "has_more": has_more})


async def get_feed_delta(request: Request) -> Response:
    """GET /v1/feed/delta?since=ID: the tweets that reached the feed after ID, oldest first, so a
    polling client passes the last id it got as the next `since` (design §05b)."""
    feed = _feed(request)
    user = await feed.user(request)
    only_params(request, {"since", "limit"})
    since = parse_id(request.query_params.get("since", ""), "bad_since", "since (a tweet id)")
    limit = parse_limit(request.query_params.get("limit"))
    ids, following = await feed.delta_ids(user, since, limit + 1)
    has_more = len(ids) > limit
    tweets = feed.only_followed(user, await feed.hydrate(ids[:limit]), following)
    return json_response({"tweets": tweets, "has_more": has_more,
                          "next_since": str(ids[:limit][-1]) if ids else str(since)})


async def ranked_feed(feed: Feed, user: int, limit: int, cursor: tuple[int, int] | None) -> Response:
    """The newest CANDIDATES tweets (as of the first page: the cursor keeps its anchor), ranked;
    pages are slices of that ranking. The first page saves the order it ranked, and later
    pages slice that saved order (hydrated and filtered again: a tweet deleted or an account
    unfollowed since leaves a page short), so that neither a like, a deletion, the passing
    time nor the ranker falling back between pages can reorder what is left and make a page
    skip or repeat tweets. Without it (expired, or the cache down) they rank afresh."""
    anchor, offset = cursor if cursor is not None else (None, 0)
    if anchor is not None:
        saved = await feed.saved_ranking(user, anchor)
        if saved is not None:
            following = await feed.current_following(user)
            page = feed.only_followed(user, await feed.hydrate(saved[offset:offset + limit]), following)
            has_more = offset + limit < len(saved)
            next_page = encode_ranked_cursor(anchor, offset + limit) if has_more else None
            return json_response({"tweets": page, "next_cursor": next_page, "has_more": has_more})
    ids, following = await feed.candidates(user, None if anchor is None else min(anchor + 1, MAX_ID), CANDIDATES)
    tweets = feed.only_followed(user, await feed.hydrate(ids), following)
    await feed.refresh_config()
    mutual = await feed.store.followers_among(user, sorted({author_of(t) for t in tweets} - {user}))
    ranked = await feed.ranking.rank(tweets, mutual)
    page = ranked[offset:offset + limit]
    has_more = offset + limit < len(ranked)
    if anchor is None and has_more:
        await feed.save_ranking(user, ids[0], [int(t["tweet_id"]) for t in ranked])
    next_page = encode_ranked_cursor(anchor or ids[0], offset + limit) if has_more and ids else None
    return json_response({"tweets": page, "next_cursor": next_page, "has_more": has_more})


async def get_user_tweets(request: Request) -> Response:
    feed = _feed(request)
    await feed.user(request)
    author = await feed.existing_user(request.path_params["user_id"])
    limit, before = page_params(request)
    rows = await feed.store.tweets_by_author(author, before if before is not None else 2**63 - 1, limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    live = [t.tweet_id for t in rows if not t.deleted]
    return json_response({"tweets": await feed.hydrate(live),
                          "next_cursor": encode_cursor(rows[-1].tweet_id) if has_more and rows else None,
                          "has_more": has_more})


async def follow(request: Request) -> Response:
    """Follow (POST) or unfollow (DELETE) a user; both idempotent. Following a large account
    (throttled or pull tier, by follower count or by its override flag) queues a backfill of
    its newest tweets (design §10). A retry queues it again: the backfill is idempotent, and a
    follow stored before its backfill could be queued must still get one."""
    feed = _feed(request)
    me = await feed.user(request)
    other = await feed.existing_user(request.path_params["user_id"])
    if other == me:   # well formed, but not allowed to this user: 403 (as Twitter's API answers)
        raise ApiError(403, "self_follow", "a user cannot follow itself")
    async with feed.follow_lock.held(me):
        if request.method == "DELETE":
            await feed.store.unfollow(me, other)
            await feed.follows.changed(me, other, following=False)
            return json_response({"following": False, "user_id": str(other)})
        if not await feed.store.is_following(me, other):
            over_cap = ApiError(409, "follow_cap", f"a user may follow at most {feed.s.follow_cap} accounts")
            if await feed.store.following_count(me) >= feed.s.follow_cap:
                raise over_cap
            await feed.store.follow(me, other)
            # Only if the lock was skipped (Redis unreachable) can follows race past the check
            # above. Counted again after the write, a follow that finds the cap passed takes
            # itself back (racers may all do so; a retry passes), in the cached sets too: a
            # fill may have read the store in between.
            if await feed.store.following_count(me) > feed.s.follow_cap:
                await feed.store.unfollow(me, other)
                await feed.follows.changed(me, other, following=False)
                raise over_cap
        await feed.follows.changed(me, other, following=True)   # a retry also repairs the cache
    if await feed.tier_of(other) is not Tier.PUSH:
        await feed.events.publish(other, {"type": "backfill", "follower_id": str(me), "author_id": str(other)})
        return json_response({"following": True, "user_id": str(other), "backfill": "queued"})
    return json_response({"following": True, "user_id": str(other)})


async def delete_tweet(request: Request) -> Response:
    """Soft delete (author only): the store and the hydration cache at once, so readers stop
    seeing it; the ids left in followers' timelines go with an async deletion fan-out.
    Deleting a retweet undoes it."""
    feed = _feed(request)
    me = await feed.user(request)
    raw = request.path_params["tweet_id"]
    tweet_id = parse_id(raw, "bad_tweet_id", "tweet id")
    found = (await feed.store.tweets_by_ids([tweet_id])).get(tweet_id)
    if found is None:
        raise ApiError(404, "not_found", f"tweet {raw} does not exist")
    if found.user_id != me:
        raise ApiError(403, "forbidden", "only the author may delete a tweet")
    await take_down(feed, found)
    return json_response({"tweet_id": raw, "deleted": True, "fan_out_status": "queued"})


async def take_down(feed: Feed, found: Tweet) -> None:
    """Delete a tweet or retweet (idempotent): marked in the store and the hydration cache, its
    deletion fanned out; a retweet is also forgotten as its user's retweet of the original."""
    if not found.deleted:
        await feed.store.soft_delete(found)
    feed.forget(found.tweet_id)
    if found.retweet_of is not None:
        await feed.store.unretweet(found.retweet_of, found.user_id, found.tweet_id)
    # Queued again on a repeated DELETE too: a first attempt may have died before queueing,
    # and the deletion fan-out is idempotent.
    if not feed.s.defects.skip_delete_fanout:
        try:
            await feed.cache.put_tweets([{**found.to_json(), "deleted": True}], {})   # counts: moot
        except MAYBE_DOWN as exc:
            cache_failed("delete", exc)   # the deletion fan-out drops the cached object anyway
    event: dict[str, Any] = {"type": "delete", "tweet_id": str(found.tweet_id), "author_id": str(found.user_id)}
    if found.reply_to is not None:
        event["reply_to"] = str(found.reply_to)
    if found.retweet_of is not None:
        event["retweet_of"] = str(found.retweet_of)
    try:
        await feed.events.publish(found.user_id, event)
    except QueueUnavailable as exc:
        raise ApiError(503, "queue_unavailable", f"deleted, but the deletion fan-out is not queued: {exc}",
                       {"Retry-After": "1"}) from exc
    if found.reply_to is not None:
        await feed.count_soon("unreply", found.reply_to, found.tweet_id)
    if found.retweet_of is not None:
        await feed.count_soon("unretweet", found.retweet_of, found.tweet_id)


async def like_tweet(request: Request) -> Response:
    """Idempotent per user; the count in the reply is optimistic (it includes this like), the
    counted one converges through the engagement topic and the counter aggregator (design §02:
    within 10 s). Liking a retweet likes its original."""
    feed = _feed(request)
    me = await feed.user(request)
    original = await feed.original_of(request.path_params["tweet_id"])
    await feed.store.like(original.tweet_id, me)
    # Sent on a repeated like too (counted once per user whatever the deliveries): a first
    # attempt that recorded the like and then failed to queue it must not leave it uncounted.
    try:
        event = engagement_event("like", original.tweet_id, me)
        await feed.events.publish_to(ENGAGEMENT_TOPIC, original.tweet_id, event)
    except QueueUnavailable as exc:
        raise ApiError(503, "queue_unavailable", f"like recorded but not queued for counting: {exc}",
                       {"Retry-After": "1"}) from exc
    likes = await feed.optimistic(original.tweet_id, "likes", me)
    return json_response({"tweet_id": str(original.tweet_id), "liked": True, "likes": likes,
                          "likes_display": display_count(likes)})


async def retweet(request: Request) -> Response:
    """POST: retweet (idempotent per user: a repeated retweet answers the same retweet), fanned
    out to the retweeter's followers like a tweet of theirs, through the same tiers. DELETE:
    undo it (idempotent). Retweeting a retweet retweets its original. The count in the reply is
    optimistic; the counted one converges like likes."""
    feed = _feed(request)
    me = await feed.user(request)
    original = await feed.original_of(request.path_params["tweet_id"])
    oid = original.tweet_id
    if request.method == "DELETE":
        rid = await feed.store.retweet_by(oid, me)
        undone = rid is not None and not feed.s.defects.skip_retweet_undo
        if rid is not None and undone:
            own = (await feed.store.tweets_by_ids([rid])).get(rid)
            await take_down(feed, own or Tweet(rid, me, "", [], None, retweet_of=oid))
        retweets = await feed.optimistic(oid, "retweets", None, minus="unretweets",
                                         minus_member=rid if undone else None)
        return json_response({"tweet_id": str(oid), "retweeted": False, "retweets": retweets})
    rid, made = feed.ids.next_id(), True
    if not feed.s.defects.duplicate_retweets:
        rid, made = await feed.store.retweet(oid, me, rid)
    rt = Tweet(rid, me, "", [], None, retweet_of=oid)
    if made or rid not in await feed.store.tweets_by_ids([rid]):   # or an attempt died before its write
        await feed.store.insert_tweet(rt)
        await feed.cache_new(rt)
    # Queued on every request, like a retried post: a first attempt may have died before it,
    # and fan-out (ZADD) and counting (once per retweet id) are idempotent.
    event: dict[str, Any] = {"type": "tweet", "tweet": rt.to_json()}
    if not made:
        event["requeued"] = True
    try:
        await feed.events.publish(me, event)
    except QueueUnavailable as exc:
        raise ApiError(503, "queue_unavailable", f"retweet recorded but not queued for fan-out: {exc}",
                       {"Retry-After": "1"}) from exc
    await feed.count_soon("retweet", oid, rid)
    retweets = await feed.optimistic(oid, "retweets", rid, minus="unretweets")
    return json_response({"tweet_id": str(oid), "retweeted": True, "retweet_id": str(rid), "retweets": retweets})


async def stream(request: Request) -> Response:
    """GET /v1/stream: Server-Sent Events carrying new-tweet signals for the connected user
    (design §04 notification gateway). A comment every KEEPALIVE_S keeps proxies from closing
    an idle stream; if Redis goes away the stream ends and the client reconnects (`retry`)."""
    feed = _feed(request)
    user = await feed.user(request)
    pubsub = feed.cache.rc.pubsub()
    channel = notify_channel(user)
    try:
        # A pub/sub does not discover the cluster's slots by itself: on a process that has sent
        # no other command yet (just restarted) every stream was a 503 until something did.
        await feed.cache.rc.initialize()
        await pubsub.ssubscribe(channel)
    except MAYBE_DOWN as exc:   # the user's shard is down: a 503 the client retries, not a 500
        cache_failed("stream", exc)
        await close_quietly(pubsub, channel)
        raise ApiError(503, "stream_unavailable", "notifications are unavailable; retry shortly",
                       {"Retry-After": "2"}) from exc
    STREAMS.inc()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: connected\n\n"
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                msg = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg and msg.get("type") == "smessage":
                    data = msg["data"] if isinstance(msg["data"], str) else msg["data"].decode()
                    yield f"event: tweet\ndata: {data}\n\n".encode()
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > KEEPALIVE_S:
                    yield b": keep-alive\n\n"
                    quiet_since = time.monotonic()
        except MAYBE_DOWN as exc:
            cache_failed("stream", exc)

    async def closed() -> None:
        """After the response, however it ended: a disconnect cancels the generator, even
        before it started (then its own `finally` never runs), but not this."""
        STREAMS.dec()
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            await close_quietly(pubsub, channel)

    return StreamingResponse(events(), media_type="text/event-stream", background=BackgroundTask(closed),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def close_quietly(pubsub: Any, channel: str) -> None:
    """Best effort: a shard that went away cannot be unsubscribed from (anything else is logged)."""
    for step in (lambda: pubsub.sunsubscribe(channel), pubsub.aclose):
        try:
            await step()
        except MAYBE_DOWN as exc:
            if not is_outage(exc):
                log.exception("closing the stream of %s failed", channel)


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


OPENAPI = Path(__file__).parent / "openapi.yaml"


async def openapi(request: Request) -> Response:
    document: dict[str, Any] = request.app.state.openapi
    return json_response(document)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 (no such route, wrong method) as JSON errors too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return ApiError(exc.status_code, code, str(exc.detail), dict(exc.headers or {})).response()


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_ID = re.compile(r"/\d+")
_PARAM = re.compile(r"/\{[^}]+\}")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def endpoint_label(path: str) -> str:
    """A route's path with its ids as {id}; any other path is "unmatched". (The raw path was the
    label: every path a scanner tried, or a client mistyped, stayed in /metrics as a series of
    its own for the process's life.)"""
    endpoint = _ID.sub("/{id}", path)
    return endpoint if endpoint in _ENDPOINTS else "unmatched"


def method_label(method: str) -> str:
    return method if method in _METHODS else "other"


class ErrorsAndMetrics:
    """Pure ASGI middleware: every error is JSON with a code; every request is timed and answered
    within REQUEST_DEADLINE_S (a 503 `deadline` if the handler has not answered by then)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        sent = False

        async def tracking_send(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                sent = True
            await send(message)

        try:
            await self._within_deadline(scope, receive, tracking_send)
        except DeadlineExceeded:
            DEADLINES.labels(_ID.sub("/{id}", scope["path"])).inc()
            if not sent:
                status = 503
                await json_response({"error": {"code": "deadline", "message": f"no answer within "
                                               f"{REQUEST_DEADLINE_S:g} s: a store is slow or away; retry later"}},
                                    503)(scope, receive, send)
        except ApiError as exc:
            status = exc.status
            await exc.response()(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - the last line: log, count, answer JSON 503/500
            unavailable = is_outage(exc)
            INTERNAL_ERRORS.labels("outage" if unavailable else "bug", type(exc).__name__).inc()
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not sent:
                status = 503 if unavailable else 500
                await json_response({"error": {"code": "unavailable" if unavailable else "internal",
                                               "message": type(exc).__name__}}, status)(scope, receive, send)
        finally:
            REQUEST_SECONDS.labels(endpoint_label(scope["path"]), method_label(scope["method"]),
                                   str(status)).observe(time.perf_counter() - start)

    async def _within_deadline(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == STREAM_PATH:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(REQUEST_DEADLINE_S) as deadline:
                await self.app(scope, receive, send)
        except TimeoutError:
            if deadline.expired():   # ours, not a store's own timeout
                raise DeadlineExceeded from None
            raise


class DeadlineExceeded(Exception):
    """The request was not answered within REQUEST_DEADLINE_S."""


# Starlette tries them in order (the load balancer's Allow map follows the same order: nginx.py).
ROUTES = [
    Route("/v1/tweets", post_tweet, methods=["POST"]),
    Route("/v1/media", register_media, methods=["POST"]),
    Route("/v1/tweets/{tweet_id}", delete_tweet, methods=["DELETE"]),
    Route("/v1/tweets/{tweet_id}/like", like_tweet, methods=["POST"]),
    Route("/v1/tweets/{tweet_id}/retweet", retweet, methods=["POST", "DELETE"]),
    Route("/v1/stream", stream, methods=["GET"]),
    Route("/v1/feed", get_feed, methods=["GET"]),
    Route("/v1/feed/delta", get_feed_delta, methods=["GET"]),
    Route("/v1/users/me", users_me, methods=["PUT", "GET"]),
    Route("/v1/users/{user_id}", get_user, methods=["GET"]),
    Route("/v1/users/{user_id}/tweets", get_user_tweets, methods=["GET"]),
    Route("/v1/users/{user_id}/follow", follow, methods=["POST", "DELETE"]),
    Route("/healthz", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
_ENDPOINTS = frozenset(_PARAM.sub("/{id}", route.path) for route in ROUTES)   # the endpoint labels


def create_app(settings: Settings | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.openapi = yaml.safe_load(OPENAPI.read_text())
        app.state.feed = Feed(settings or Settings.from_env())
        app.state.feed.in_background(app.state.feed.preheater.run())
        app.state.feed.in_background(app.state.feed.cache.warm())
        yield
        await app.state.feed.close()

    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.add_middleware(ErrorsAndMetrics)
    return app
