"""Write-path guards in Redis (design §05b, §10): idempotency keys, the per-user rate limit,
and one follow change at a time per user.

Idempotency: `SET idem:{user}:<key digest> pending NX EX 60s` claims a key. Just before the
tweet is written to the store the claim records it ("stored", kept 24 h), and once the event
is queued, the 201 body ("done"). A retry with the same key then gets the original 201 back
("done"), or stores (if it is not there yet) and re-queues the very same tweet when the first
attempt died anywhere between its claim's record and Kafka ("stored"): never a second tweet,
never a lost one. A retry while the first is still validating gets 409 (retry later); a first
attempt that failed before storing anything releases its claim, and one whose process died
then leaves a claim that expires after PENDING_TTL_S, so the retry starts over either way.
Redis is the fast path, not the record: every key is also *held* in Cassandra
(`feed.idempotency_keys`, kept 24 h) for the id of the tweet it makes, by a lightweight
transaction (INSERT IF NOT EXISTS) that each attempt about to make a tweet runs: the first
holds the key, and any other finishes that tweet instead of making its own. Two attempts of one
key in flight at once thus agree whatever Redis said, which a claim cannot promise when its
shard loses it (a failover to a replica that lacked it, a shard wiped and restarted empty) or
cannot answer. Until 2026-12-05 only posts that found Redis away ran the transaction, the
others read the hold and wrote theirs plainly; the `shard-lost` experiment made a retried post
twice that way (a retry claiming anew on the restarted shard, beside its first attempt stuck on
the dead one), and so did 12 of 12 racing pairs in tests/stack/test_write_path.py. The
transaction costs Cassandra about what the read and plain write did (`python -m
bench.idempotency_hold`, 2026-12-05: 2.2 against 2.0 ms of its CPU per post at 8 in flight,
2.0 against 2.0 at 32, medians of 6 interleaved rounds); an earlier note here said 7 ms.

Rate limit: a sliding-window log per user (`rl:{user}`, a sorted set of request times), trimmed
and counted atomically in one Lua script: at most N tweets in any rolling window, and the 429
says exactly when the oldest counted tweet leaves the window.

Follow changes: a user's follows and unfollows take `followlock:{user}` (redis-py's Lock: SET
NX with a token, released only by its holder, FOLLOW_LOCK_TTL_S at most), so that a follow's
cap check, write and recount run alone: a retry waits for its original instead of answering
200 for a follow the original then takes back at the cap. One that cannot get the lock within
FOLLOW_LOCK_WAIT_S gets 409 (retry later).

The Redis guards fail open, on an outage only (outage.py): with the user's shard unreachable a
post or follow is still accepted (the store is the record of truth, and holds the keys) and
the skipped guard is counted in `feed_write_guard_skipped_total`; any other error propagates.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from prometheus_client import Counter
from redis.asyncio.cluster import RedisCluster

from targets.feed.errors import ApiError
from targets.feed.outage import MAYBE_DOWN, outage_only

SKIPPED = Counter("feed_write_guard_skipped_total", "Write guards skipped because Redis was unreachable", ["guard"])
REPLAYED = Counter("feed_idempotent_replays_total", "Retries answered with the original 201")
LIMITED = Counter("feed_rate_limited_total", "Posts refused by the rate limit")

# A follow change takes well under a second (two store writes, two counts, the cached sets);
# a lock outliving a dead process frees itself after this.
FOLLOW_LOCK_TTL_S = 5.0
FOLLOW_LOCK_WAIT_S = 2.0

PENDING = b"pending"
# A claim not yet recorded as "stored" covers only the rate limit and the reference checks
# (bounded by their timeouts, about 10 s): if its process dies there, the key frees itself.
PENDING_TTL_S = 60

_SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1])
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return -1
"""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _idem_key(user: int, key: str) -> str:
    return f"idem:{{{user}}}:{key_digest(key)}"


class KeyStore(Protocol):
    """Where keys are held for good (the tweet store)."""

    async def hold_key(self, user: int, digest: str, tweet_id: int, ttl_s: int) -> int: ...


def _rl_key(user: int) -> str:
    return f"rl:{{{user}}}"


@dataclass(frozen=True, slots=True)
class Claim:
    """What an idempotency key says about a post: go ahead, replay, or resume a stored tweet."""

    replay: dict[str, Any] | None = None   # the original 201 body: answer with it
    stored: dict[str, Any] | None = None   # the tweet was stored but not yet queued: queue it again


class Idempotency:
    def __init__(self, rc: RedisCluster, ttl_s: int, *, keys: KeyStore, ignore: bool = False) -> None:
        self.rc, self.ttl_s, self.keys, self.ignore = rc, ttl_s, keys, ignore

    async def tweet_for(self, user: int, key: str | None, tweet_id: int) -> int:
        """The id of the tweet `key` makes: `tweet_id`, unless another attempt holds the key in
        the store already (see the module docstring)."""
        if key is None or self.ignore:
            return tweet_id
        return await self.keys.hold_key(user, key_digest(key), tweet_id, self.ttl_s)

    async def claim(self, user: int, key: str | None) -> Claim:
        if key is None or self.ignore:
            return Claim()
        rkey = _idem_key(user, key)
        try:
            if await self.rc.set(rkey, PENDING, nx=True, ex=PENDING_TTL_S):
                return Claim()
            stored = await self.rc.get(rkey)
        except MAYBE_DOWN as exc:  # fail open, counted: the store still arbitrates (tweet_for)
            outage_only(exc)
            SKIPPED.labels("idempotency").inc()
            return Claim()
        if stored is None:  # expired between the two calls: claim again
            return await self.claim(user, key)
        if stored in (PENDING, PENDING.decode()):
            raise ApiError(409, "in_progress", "a request with this idempotency key is still in progress",
                           {"Retry-After": "1"})
        record = orjson.loads(stored)
        if record.get("state") == "stored":
            return Claim(stored=record["tweet"])
        REPLAYED.inc()
        return Claim(replay=record["body"])

    async def _put(self, user: int, key: str | None, record: dict[str, Any]) -> bool:
        if key is None or self.ignore:
            return False
        try:
            await self.rc.set(_idem_key(user, key), orjson.dumps(record), ex=self.ttl_s)
        except MAYBE_DOWN as exc:
            outage_only(exc)
            SKIPPED.labels("idempotency").inc()
            return False
        return True

    async def mark_stored(self, user: int, key: str | None, tweet: dict[str, Any]) -> bool:
        """The tweet is about to be stored: from now on a retry must reuse it, never write another.
        Whether that is recorded, so that a retry with `key` can finish what this attempt leaves
        (no key, keys ignored, or Redis unreachable: it cannot)."""
        return await self._put(user, key, {"state": "stored", "tweet": tweet})

    async def complete(self, user: int, key: str | None, body: dict[str, Any]) -> None:
        await self._put(user, key, {"state": "done", "body": body})

    async def release(self, user: int, key: str | None) -> None:
        """Nothing was stored: let a retry start over."""
        if key is None or self.ignore:
            return
        try:
            await self.rc.delete(_idem_key(user, key))
        except MAYBE_DOWN as exc:  # the claim then expires with its TTL
            outage_only(exc)
            SKIPPED.labels("idempotency").inc()


class RateLimit:
    def __init__(self, rc: RedisCluster, limit: int, window_s: int) -> None:
        self.rc, self.limit, self.window_ms = rc, limit, window_s * 1000
        self._script = rc.register_script(_SLIDING_WINDOW)

    async def take(self, user: int, token: str) -> None:
        """Count one post for `user` (token identifies it), or raise 429 with Retry-After."""
        now_ms = int(time.time() * 1000)
        try:
            wait_ms = int(await self._script(keys=[_rl_key(user)], args=[now_ms, self.window_ms, self.limit, token]))
        except MAYBE_DOWN as exc:  # fail open, counted
            outage_only(exc)
            SKIPPED.labels("rate_limit").inc()
            return
        if wait_ms >= 0:
            LIMITED.inc()
            retry_after = max(1, -(-wait_ms // 1000))
            raise ApiError(429, "rate_limited",
                           f"at most {self.limit} tweets per {self.window_ms // 1000} s; retry in {retry_after} s",
                           {"Retry-After": str(retry_after)})

    async def give_back(self, user: int, token: str) -> None:
        """A post that failed after counting does not use up the user's budget."""
        try:
            await self.rc.zrem(_rl_key(user), token)
        except MAYBE_DOWN as exc:
            outage_only(exc)
            SKIPPED.labels("rate_limit").inc()


def follow_lock_key(user: int) -> str:
    return f"followlock:{{{user}}}"


class FollowLock:
    def __init__(self, rc: RedisCluster) -> None:
        self.rc = rc

    @asynccontextmanager
    async def held(self, user: int) -> AsyncIterator[None]:
        """Run the body as the user's only follow change (409 if another holds it too long)."""
        lock = self.rc.lock(follow_lock_key(user), timeout=FOLLOW_LOCK_TTL_S, sleep=0.02,
                            blocking_timeout=FOLLOW_LOCK_WAIT_S, thread_local=False, raise_on_release_error=False)
        try:
            acquired = await lock.acquire()
        except MAYBE_DOWN as exc:  # fail open, counted; the recount at the cap still holds
            outage_only(exc)
            SKIPPED.labels("follow_lock").inc()
            yield
            return
        if not acquired:
            raise ApiError(409, "in_progress", "another follow change of this user is in progress; retry shortly",
                           {"Retry-After": "1"})
        try:
            yield
        finally:
            try:
                await lock.release()
            except MAYBE_DOWN as exc:  # it expires with its TTL
                outage_only(exc)
                SKIPPED.labels("follow_lock").inc()
