"""The timeline cache and the hydration cache, both in the Redis Cluster (design §08).

Keys are the design's: `timeline:{user_id}` (a sorted set of tweet ids, newest 800 kept) and
`tweet:{tweet_id}` (the tweet object as JSON, 24 h TTL). The braces are Redis Cluster hash
tags, so a key lives on the shard of its id.

Scores are the tweet's creation millisecond, not the id: a sorted-set score is a double with a
53-bit mantissa, too small for a 63-bit Snowflake id, so ids as scores would misorder tweets
made within the same few milliseconds. Within one millisecond the members (19-digit ids, all
the same length) order themselves lexically, which is numeric order.

A timeline that exists but holds no tweet yet (a new user, or one whose followees never
posted) keeps one sentinel member "0" with score 0, so "empty" is a cache hit and not a
rebuild from the store on every read. Being the lowest entry it is the first one trimmed.

Fan-out only appends to timelines that exist (`APPEND_SCRIPT`, atomic per timeline). A timeline that
is missing (never built, expired, or lost with a shard that restarted empty) is rebuilt from the
store on its next read; were fan-out to recreate it, it would hold only the newest tweets and
readers would silently miss the older ones. The rebuild (`FeedCache.rebuild`) first creates the
key holding only the member BUILDING: fan-out appends to it from then on, and readers take it
for missing. Then it reads the store once, and adds what it read in the same script that drops
BUILDING. A tweet fanned out before the key existed was stored before that read began.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import orjson
import redis
from prometheus_client import Counter
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster

from targets.feed.engagement import COUNTERS, MEMBERS_RECORDED, CounterKey, Engagement, counted_key, counter_key
from targets.feed.redis_nodes import NodeGuardedCluster
from targets.feed.snowflake import timestamp_ms

log = logging.getLogger("feed.cache")


TWEET_TTL_S = 24 * 3600
SENTINEL = "0"
# A timeline being rebuilt, which fan-out fills and readers do not read. Scored +inf, so that
# trimming (lowest first) never takes it: a fan-out append trims the timeline to its cap.
BUILDING = "building"
REBUILD_LOCK_S = 30     # one rebuild of a timeline at a time, across processes; a dead one's lock lapses
TIMELINE_TTL_S = 7 * 24 * 3600
RANKING_TTL_S = 600   # how long a ranked feed's later pages follow its first page's order
# How long a read waits for one Redis node before going to the store without it. A healthy
# node answers in milliseconds (tens under load); a dead one would hold the request for the
# client's socket timeout and retries, and every reader with it.
NODE_READ_S = 0.3
TIMELINE_READ_S = 0.6

# A primary that cannot be reached (killed and not yet failed over, or every client link to it
# down) still has a replica that can: the shard's reads go there (READONLY; both read scripts
# declare no-writes) before the store. A replica is as fresh as its primary was when it was cut
# off, and costs a Redis read where the store fan-in costs a query over ~150 partitions: with
# the fan-in only, a 15 s partition of one primary saturated this 2-core machine (62.8 % of the
# window's feed reads served). A primary that timed out is tried there too: the replica's
# NODE_READ_S comes on top of TIMELINE_READ_S, well inside the request's deadline.
REPLICA_READS = Counter("feed_cache_replica_reads_total",
                        "Cache reads sent to a replica because the primary could not be reached", ["op", "outcome"])
REPLICAS_EVERY_S = 5.0
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.ClusterDownError, redis.exceptions.TimeoutError,
                TimeoutError)


# One fan-out write: append to an existing timeline and keep its newest `cap` members (the
# sentinel, scored 0, is the first one trimmed: a full timeline holds `cap` ids).
APPEND_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# The counter aggregator's one step, atomic and idempotent: an engagement event delivered twice
# (Kafka is at-least-once) finds its member already in the counter's counted set and adds
# nothing. KEYS: counted set, counter (same slot). ARGV: member, TTL, base ('' until read), then
# for a counter whose members the store records (engagement.MEMBERS_RECORDED), '1' and those members.
# A counter that is missing (expired, or lost with its shard) must not restart at 1, and a
# counted set that is missing must not count again a member it held (a user liking again, which
# the API queues as it queues every like): with no base given the script counts nothing and
# returns -2, and the caller calls again with the base (the store's checkpoint plus what it
# counted since; for likes and retweets, the members the store records) and the members to put back. It then
# returns -1 if the member was counted before, -3 if the base already counts it (put back now),
# else the new count.
_COUNT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
local lost = ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 0
if lost or redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[3] == '' then return -2 end
  local n = redis.call('GET', KEYS[2])
  if not n or tonumber(n) < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  for i = 5, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return -3
  end
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return n
"""

# Raise an existing counter to ARGV[1] if it is lower (its TTL kept); a missing one stays
# missing. KEYS: counter.
_RAISE_COUNT = """
local n = redis.call('GET', KEYS[1])
if n and tonumber(n) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
"""

NOBODY = "0"   # a member no counted set can mean: user ids are positive

# Cache a tweet object with its engagement counters (same slot): each counter is created from
# the store's count if missing, and lives at least as long as the object, so an object in the
# cache without its counters beside it means counts to read from the store. A deleted object
# stays: a reader that read the tweet from the store just before its deletion must not cache it
# live again. A new tweet (nobody has liked or retweeted it yet) also gets the counted sets of
# its counters whose members the store records (engagement.MEMBERS_RECORDED), holding only
# NOBODY: the aggregator takes a missing set for one lost with its shard, and rebuilds it from
# the store (two reads) before counting the first like or retweet. KEYS: object, then the
# counters in engagement.COUNTERS order[, those counted sets, for a new tweet]. ARGV: object
# JSON, TTL, then each counter's count.
_PUT_TWEET = """
local old = redis.call('GET', KEYS[1])
if not (old and cjson.decode(old)['deleted'] == true) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
for i = 2, #ARGV - 1 do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'NX')
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
for i = #ARGV, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SADD', KEYS[i], '""" + NOBODY + """')
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
"""

# The optimistic count an engagement's own request answers with: a counter, less a counter
# subtracted from it (retweets undone), counting the request's own member of either even while
# its event is on its way (plus one for a retweet not counted yet, minus one for an undo not
# counted yet); false when the counter is missing. KEYS: counter, its counted set[, the counter
# subtracted, its counted set]. ARGV: the member added, the member subtracted ('' for none).
_OPTIMISTIC = """#!lua flags=no-writes
local n = redis.call('GET', KEYS[1])
if not n then return false end
local v = tonumber(n)
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then v = v + 1 end
if KEYS[3] then
  v = v - tonumber(redis.call('GET', KEYS[3]) or '0')
  if ARGV[2] ~= '' and redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 0 then v = v - 1 end
end
return v
"""


# A reader's first question in one round trip: a page of the timeline, and the members of a set in
# the same slot (the reader's follow set, for the unfollow filter and the celebrity merge).
# Two commands cost the API 70 µs more CPU per page than this script. The set's members come only
# when the caller's copy is not current: a reader following 200 accounts moved 200 strings
# through Redis, the proxy and the parser on every page, to learn nothing new.
#
# A page continues from a cursor id. Every id of one millisecond has the same score, so the
# cursor's millisecond is read whole and its ids past the cursor taken first (ids are decimal
# strings: shorter is smaller, then lexical order), then the milliseconds beyond it (an
# exclusive score bound). Reading from the cursor's score with a fixed margin instead ended a
# page early when more ids than the margin shared that millisecond.
#
# KEYS: timeline, set, the set's generation. ARGV: 'newest' (newest first, older than the
# cursor) or 'since' (oldest first, newer than the cursor); the cursor id ('' for the newest
# page); its millisecond; count; the generation of the caller's copy ('' for none). Replies:
# the page; whether the timeline exists (an empty page may mean either; one being rebuilt does
# not); the set's generation;
# its members, or false when the set exists and its generation is the caller's.
_PAGE_AND_SET = """#!lua flags=no-writes
local newest, cursor, ms, n = ARGV[1] == 'newest', ARGV[2], ARGV[3], tonumber(ARGV[4])
local function less(a, b) return #a < #b or (#a == #b and a < b) end
local page = {}
local building = redis.call('ZSCORE', KEYS[1], '""" + BUILDING + """')
if building then
elseif cursor == '' then
  page = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '-inf', 'LIMIT', 0, n)
else
  local same = newest and redis.call('ZREVRANGEBYSCORE', KEYS[1], ms, ms)
                      or redis.call('ZRANGEBYSCORE', KEYS[1], ms, ms)
  for _, id in ipairs(same) do
    if #page < n and ((newest and less(id, cursor)) or (not newest and less(cursor, id))) then
      page[#page + 1] = id
    end
  end
  if #page < n then
    local rest = newest and redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ms, '-inf', 'LIMIT', 0, n - #page)
                        or redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ms, '+inf', 'LIMIT', 0, n - #page)
    for _, id in ipairs(rest) do page[#page + 1] = id end
  end
end
local exists = 1
if building then exists = 0 elseif #page == 0 then exists = redis.call('EXISTS', KEYS[1]) end
local generation = redis.call('GET', KEYS[3]) or ''
if ARGV[5] ~= '' and generation == ARGV[5] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {page, exists, generation, false}
end
return {page, exists, generation, redis.call('SMEMBERS', KEYS[2])}
"""


# A rebuild's first step. KEYS: timeline, its rebuild lock. ARGV: the lock's seconds, the
# rebuild's token. Returns 0 when there is nothing to do (the timeline is whole, or another
# rebuild holds the lock), else 1 with the lock taken and the timeline existing (BUILDING
# alone, if it was missing).
_START_REBUILD = """
if redis.call('EXISTS', KEYS[1]) == 1 and not redis.call('ZSCORE', KEYS[1], '""" + BUILDING + """') then
  return 0
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[1]) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZADD', KEYS[1], '+inf', '""" + BUILDING + """')
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 1
"""

# A rebuild's last step: what the store read found joins what fan-out added meanwhile, with the
# sentinel, and BUILDING goes, at once. KEYS: timeline, lock. ARGV: cap, TTL, the rebuild's
# token, then score and id of each tweet. Returns 0, changing nothing, if the lock is no longer
# this rebuild's (it lapsed; the timeline may have vanished since and be another rebuild's now,
# missing tweets fanned out while it was gone), or if the timeline vanished: the next read
# starts over.
_FINISH_REBUILD = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], 0, '""" + SENTINEL + """')
for i = 4, #ARGV, 400 do
  redis.call('ZADD', KEYS[1], unpack(ARGV, i, math.min(i + 399, #ARGV)))
end
redis.call('ZREM', KEYS[1], '""" + BUILDING + """')
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 2))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# A rebuild that failed gives its lock back, if the lock is still its own. KEYS: lock. ARGV: token.
_DROP_REBUILD_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


# Hydration reads a page's tweet objects and engagement counters: as many slots as the page has
# tweets. redis-py's mget_nonatomic sends one MGET per slot; this script reads all the keys one
# node serves in one command instead (Redis 7's allow-cross-slot-keys), which cut the API's CPU
# per 21-tweet page from 436 to 300 µs. It takes the tweet ids (ARGV: a cluster node refuses
# declared KEYS of several slots before any flag is looked at) and answers two values per
# tweet: its object, and its counts as "likes,retweets,replies" (false unless all five
# counters exist). A tweet of a slot the node does not serve (a failover moved it) fails the
# whole call, and the reader falls back to the store.
_READ_TWEETS = """#!lua flags=no-writes,allow-cross-slot-keys
local out = {}
for _, id in ipairs(ARGV) do
  local tag = '{' .. id .. '}'
  out[#out + 1] = redis.call('GET', 'tweet:' .. tag)
  local l, r, u = redis.call('GET', 'likes:' .. tag), redis.call('GET', 'retweets:' .. tag),
                  redis.call('GET', 'unretweets:' .. tag)
  local p, q = redis.call('GET', 'replies:' .. tag), redis.call('GET', 'unreplies:' .. tag)
  if l and r and u and p and q then
    out[#out + 1] = l .. ',' .. (tonumber(r) - tonumber(u)) .. ',' .. (tonumber(p) - tonumber(q))
  else
    out[#out + 1] = false
  end
end
return out
"""
_READ_TWEETS_SHA = hashlib.sha1(_READ_TWEETS.encode()).hexdigest()


def notify_channel(user_id: int) -> str:
    """Sharded pub/sub channel of a user's new-tweet signals: same slot as their timeline."""
    return f"notify:{{{user_id}}}"


def timeline_key(user_id: int) -> str:
    return f"timeline:{{{user_id}}}"


def rebuild_lock_key(user_id: int) -> str:
    return f"timeline-rebuild:{{{user_id}}}"


def deleted_marker(tweet_id: int) -> bytes:
    """What the hydration cache holds for a deleted tweet: hydration drops it, and neither a
    fan-out (SET NX) nor a reader's store read (`_PUT_TWEET`) can replace it with a live copy."""
    return orjson.dumps({"tweet_id": str(tweet_id), "deleted": True})


Command = tuple[str, tuple[Any, ...]]   # (the key that routes it, the command)
PARKED_FOR_S = 5.0       # a shard that missed a deadline: its commands parked at once this long
PARKED_LATELY_S = 60.0   # ...and probed with PROBE_S instead of the full deadline this long
PROBE_S = 1.0
WRITE_DEADLINE_S = 30.0


def ranking_key(user_id: int, anchor: int) -> str:
    return f"ranked:{{{user_id}}}:{anchor}"


def tweet_key(tweet_id: int) -> str:
    return f"tweet:{{{tweet_id}}}"


def online_replicas(replication: Mapping[str, Any]) -> int:
    """Replicas in sync with this primary (INFO replication `slaveN: state=online`). One still
    in its sync handshake is connected but cannot acknowledge a WAIT, so it does not count."""
    return sum(1 for k, v in replication.items()
               if k.startswith("slave") and k[5:].isdigit() and isinstance(v, dict) and v.get("state") == "online")


def _nodes(addresses: list[str]) -> list[tuple[str, int]]:
    """Where to reach each node: `host:port`, or `host:port@announced` (below)."""
    out = []
    for a in addresses:
        host, port = a.split("@", 1)[0].rsplit(":", 1)
        out.append((host, int(port)))
    return out


def _remap(addresses: list[str]) -> Callable[[tuple[str, int]], tuple[str, int]] | None:
    """`host:port@announced`: the node that announces itself (CLUSTER SLOTS, MOVED) as
    host:announced is reached at host:port instead. The nodes announce the shared Toxiproxy
    link; the API and the workers each have links of their own (harness/topology.py), so that
    a network fault can reach one and not the other."""
    table: dict[tuple[str, int], tuple[str, int]] = {}
    for a in addresses:
        if "@" in a:
            where, announced = a.split("@", 1)
            host, port = where.rsplit(":", 1)
            table[(host, int(announced))] = (host, int(port))
    return (lambda address: table.get(address, address)) if table else None


@dataclasses.dataclass(frozen=True)
class Hydrated:
    """What the hydration cache answered for a page's tweets: objects, counts (where every
    counter exists), and the tweets of shards that did not answer, with the error each gave."""

    objects: dict[int, dict[str, Any]]
    counts: dict[int, Engagement]
    failed: list[tuple[list[int], Exception]]


@dataclasses.dataclass(frozen=True)
class BesideSet:
    """A set to read beside a timeline (in its slot), and the generation of the copy the reader
    already holds ('' for none)."""
    key: str
    generation_key: str
    known: str = ""


@dataclasses.dataclass(frozen=True)
class SetRead:
    """What the read of a BesideSet gave: the set's generation ('' when it has none), and its
    members (empty: not cached; None: the set exists at the generation the reader holds)."""
    generation: str
    members: list[str] | None


class FeedCache:
    """The API's (asyncio) view of both caches."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        # Requests' client: a node that fails is not asked again for a moment (redis_nodes.py).
        self.rc: AsyncRedisCluster = NodeGuardedCluster(**self._client_options())
        # Reads of a shard whose primary cannot be reached: every connection READONLY (the
        # load-balancing option is what makes redis-py send it); the node is always named.
        self.replicas: AsyncRedisCluster = NodeGuardedCluster(
            **self._client_options(), load_balancing_strategy=LoadBalancingStrategy.RANDOM_REPLICA)
        self._replica_failure_logged = 0.0
        self._replicas_of: dict[str, list[AsyncClusterNode]] = {}   # primary -> its replicas, as last known
        self._page_and_set_script = self.rc.register_script(_PAGE_AND_SET)
        self._put_tweet_script = self.rc.register_script(_PUT_TWEET)
        self._optimistic_script = self.rc.register_script(_OPTIMISTIC)
        self._start_rebuild = self.rc.register_script(_START_REBUILD)
        self._finish_rebuild = self.rc.register_script(_FINISH_REBUILD)
        self._drop_rebuild_lock = self.rc.register_script(_DROP_REBUILD_LOCK)

    def _client_options(self) -> dict[str, Any]:
        return dict(
            startup_nodes=[AsyncClusterNode(h, p) for h, p in _nodes(self.addresses)],
            address_remap=_remap(self.addresses),
            decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5,
            require_full_coverage=False,
            # one retry on a cluster error (what cluster_error_retry_attempts=1 gave, now deprecated)
            retry=AsyncRetry(ExponentialWithJitterBackoff(base=0.01, cap=1), retries=1),
        )

    def background_client(self) -> AsyncRedisCluster:
        """A client of its own for background work that pipelines (the preheater): redis-py
        closes a whole cluster client, every request's connections with it, when a pipeline
        meets a dead node."""
        return AsyncRedisCluster(**self._client_options())

    async def close(self) -> None:
        await self.rc.aclose()
        await self.replicas.aclose()

    async def on_replica(self, op: str, key: str, cause: BaseException, *command: Any) -> Any:
        """`command` on a replica of the shard serving `key`, for a primary that could not be
        reached (`cause`, raised again when no replica answers: the caller's store path judges
        it; why the replicas did not answer is logged and counted)."""
        try:
            await asyncio.wait_for(self.replicas.initialize(), NODE_READ_S)   # a no-op once the map is known
        except Exception as exc:  # noqa: BLE001 - logged; the primary's failure stands
            REPLICA_READS.labels(op, "no_map").inc()
            self._replica_failed(f"{op} read on a replica: the replicas' slot map is not read yet", exc)
            raise cause from exc
        nodes = self.replicas.nodes_manager.slots_cache.get(self.replicas.keyslot(key)) or []
        replicas = [n for n in nodes[1:] if n.server_type == "replica"]
        if nodes and not replicas:
            # A replica whose link to its primary is down (the primary killed or cut off: the
            # replication goes through the same link) is left out of CLUSTER SLOTS, so a map
            # read during the failure knows none: the last map that had them says who they are.
            replicas = self._replicas_of.get(nodes[0].name, [])
        if not replicas:
            REPLICA_READS.labels(op, "no_replica").inc()
            self._replica_failed(f"{op} read on a replica", LookupError(f"no replica known for the slot of {key}"))
            raise cause
        failure: BaseException | None = None
        for node in replicas:
            try:
                reply = await asyncio.wait_for(self.replicas.execute_command(*command, target_nodes=node), NODE_READ_S)
            except Exception as exc:  # noqa: BLE001 - the next replica, else the caller's store path
                failure = exc
                continue
            REPLICA_READS.labels(op, "served").inc()
            return reply
        REPLICA_READS.labels(op, "failed").inc()
        self._replica_failed(f"{op} read on {[n.name for n in replicas]}", failure)
        raise cause from failure

    def _replica_failed(self, what: str, exc: BaseException | None) -> None:
        if time.monotonic() - self._replica_failure_logged > 1.0:
            self._replica_failure_logged = time.monotonic()
            log.warning("%s failed, using the store (logged once a second; feed_cache_replica_reads_total counts "
                        "all): %s: %s", what, type(exc).__name__, exc)

    async def warm(self) -> None:
        """Read both clients' slot maps at start-up, before a failure needs the replicas'; then,
        every REPLICAS_EVERY_S, note each primary's replicas (reading the map again while a
        primary has none known)."""
        for client in (self.rc, self.replicas):
            try:
                await client.initialize()
            except Exception:  # noqa: BLE001 - read again on first use
                log.warning("Redis slot map not read at start-up; reading it on first use", exc_info=True)
        while True:
            primaries: set[str] = set()
            for nodes in self.replicas.nodes_manager.slots_cache.values():
                replicas = [n for n in nodes[1:] if n.server_type == "replica"]
                primaries.update(n.name for n in nodes[:1])
                if nodes and replicas:
                    self._replicas_of[nodes[0].name] = replicas
            if primaries - self._replicas_of.keys():
                # a replica still syncing is left out of CLUSTER SLOTS too (at start-up): read
                # the map again until every primary's replicas are known
                self.replicas._initialize = True   # redis-py's own flag for "read the map again"
                await self.replicas.initialize()
            await asyncio.sleep(REPLICAS_EVERY_S)

    async def timeline_page(self, user_id: int, before_id: int | None, limit: int,
                            beside: BesideSet) -> tuple[list[int] | None, SetRead]:
        """Up to `limit` ids older than `before_id`, newest first (None when the timeline is
        absent); and the set `beside`, a key in the user's slot."""
        return await self._page_and_set(user_id, beside, "newest", before_id, limit)

    async def timeline_since(self, user_id: int, since_id: int, limit: int,
                             beside: BesideSet) -> tuple[list[int] | None, SetRead]:
        """Up to `limit` ids newer than `since_id`, oldest first (a delta poll resumes from its
        last item; None when the timeline is absent); and the set `beside`."""
        return await self._page_and_set(user_id, beside, "since", since_id, limit)

    async def _page_and_set(self, user_id: int, beside: BesideSet, direction: str, cursor: int | None,
                            count: int) -> tuple[list[int] | None, SetRead]:
        # Bounded: a shard that died takes the client a socket timeout, a retry and a new slot
        # map to give up on; its readers go to its replica after TIMELINE_READ_S instead (then
        # the store).
        keys = [timeline_key(user_id), beside.key, beside.generation_key]
        args: list[str | int] = [direction, "" if cursor is None else str(cursor),
                                 0 if cursor is None else timestamp_ms(cursor), count, beside.known]
        try:
            reply = await asyncio.wait_for(self._page_and_set_script(keys=keys, args=args), TIMELINE_READ_S)
        except _UNREACHABLE as exc:
            reply = await self.on_replica("timeline", keys[0], exc, "EVAL_RO", _PAGE_AND_SET, len(keys), *keys, *args)
            # Not the follow set, though: a follow change the primary could not take is not on
            # its replica, and the unfollow filter must not serve a stale set (read as "not
            # cached", the reader's set comes from the store).
            reply = [reply[0], reply[1], "", []]
        raw, exists, generation, members = reply
        got = SetRead(generation=generation, members=members)
        return ([int(m) for m in raw if m != SENTINEL] if exists else None), got

    async def rebuild(self, user_id: int, read: Callable[[], Awaitable[list[int]]], cap: int) -> bool:
        """Rebuild a missing timeline from `read` (the store fan-in, newest first) unless it is
        whole or another rebuild has it; whether this one completed it (module docstring).

        One store read is enough: the timeline exists (as BUILDING) before the read begins, so
        fan-out adds what is stored later. Creating the timeline from a first read and reading
        again for what fan-out skipped meanwhile doubled the store work of every rebuild, and
        after `shard-lost` that work is a third of all timelines."""
        keys = [timeline_key(user_id), rebuild_lock_key(user_id)]
        token = uuid.uuid4().hex
        if not await self._start_rebuild(keys=keys, args=[REBUILD_LOCK_S, token]):
            return False
        try:
            ids = await read()
        except BaseException:
            with contextlib.suppress(Exception):   # else the lock lapses in REBUILD_LOCK_S
                await self._drop_rebuild_lock(keys=keys[1:], args=[token])
            raise
        scored = [x for i in ids[:cap] for x in (timestamp_ms(i), str(i))]
        return bool(await self._finish_rebuild(keys=keys, args=[cap, TIMELINE_TTL_S, token, *scored]))

    async def save_ranking(self, user_id: int, anchor: int, ids: list[int]) -> None:
        await self.rc.set(ranking_key(user_id, anchor), ",".join(map(str, ids)), ex=RANKING_TTL_S)

    async def ranking(self, user_id: int, anchor: int) -> list[int] | None:
        """The order a ranked feed's first page was served from, or None (expired, never saved)."""
        raw = await self.rc.get(ranking_key(user_id, anchor))
        return None if raw is None else [int(i) for i in str(raw).split(",") if i]

    async def optimistic(self, tweet_id: int, counter: str, member: int | None,
                         minus: str | None = None, minus_member: int | None = None) -> int | None:
        """`counter` of the tweet (less `minus`), counting `member` (and `minus_member`) even if
        its event is still on its way; None when the counter is missing from the cache."""
        keys = [counter_key(counter, tweet_id), counted_key(counter, tweet_id)]
        if minus is not None:
            keys += [counter_key(minus, tweet_id), counted_key(minus, tweet_id)]
        n = await self._optimistic_script(keys=keys, args=["" if member is None else member,
                                                           "" if minus_member is None else minus_member])
        return None if n is None else max(0, int(n))

    async def get_tweets(self, ids: list[int]) -> Hydrated:
        """Tweet objects, and their counts where every counter exists; one command per shard,
        the shards in parallel, each given NODE_READ_S. A shard that does not answer in time
        leaves its tweets unread (`failed`, with why), the others' stand: one dead node costs
        the reader its share of the page, read from the store, not the whole page."""
        if not ids:
            return Hydrated({}, {}, [])
        await asyncio.wait_for(self.rc.initialize(), NODE_READ_S)   # a no-op once the slot map is known
        by_node: dict[str, tuple[AsyncClusterNode, list[int]]] = {}
        unserved: list[int] = []
        for i in ids:
            node = self.rc.get_node_from_key(tweet_key(i))   # its counters are in the same slot
            if node is None:
                unserved.append(i)
            else:
                by_node.setdefault(node.name, (node, []))[1].append(i)
        replies = await asyncio.gather(*(asyncio.wait_for(self._read_tweets(node, part), NODE_READ_S)
                                         for node, part in by_node.values()), return_exceptions=True)
        cut_off = {n: r for n, r in enumerate(replies) if isinstance(r, _UNREACHABLE)}
        if cut_off:   # their replicas, before the store
            parts = list(by_node.values())
            again = await asyncio.gather(*(self.on_replica("hydrate", tweet_key(parts[n][1][0]), cause,
                                                           "EVAL_RO", _READ_TWEETS, 0, *parts[n][1])
                                           for n, cause in cut_off.items()), return_exceptions=True)
            for n, r in zip(cut_off, again, strict=True):
                replies[n] = r   # an answer, or the primary's failure as it was
        out = Hydrated({}, {}, [])
        if unserved:
            out.failed.append((unserved, redis.exceptions.ClusterDownError("no node serves these tweets' slots")))
        objects, counts = out.objects, out.counts
        for (_, part), values in zip(by_node.values(), replies, strict=True):
            if isinstance(values, BaseException):
                if not isinstance(values, Exception):
                    raise values   # a cancellation is not a node's failure
                out.failed.append((part, values))
                continue
            for n, i in enumerate(part):
                obj, packed = values[2 * n], values[2 * n + 1]
                if obj:
                    objects[i] = orjson.loads(obj)
                if packed:
                    likes, retweets, replies_ = (int(v) for v in packed.split(","))
                    counts[i] = Engagement(likes, max(0, retweets), max(0, replies_))
        return out

    async def _read_tweets(self, node: AsyncClusterNode, ids: list[int]) -> list[str | None]:
        try:
            return cast(list[str | None], await self.rc.execute_command(
                "EVALSHA", _READ_TWEETS_SHA, 0, *ids, target_nodes=node))
        except redis.exceptions.NoScriptError:   # a node that restarted, or never ran it
            return cast(list[str | None], await self.rc.execute_command(
                "EVAL", _READ_TWEETS, 0, *ids, target_nodes=node))

    async def put_tweets(self, tweets: list[dict[str, Any]], counts: Mapping[int, Mapping[str, int]], *,
                         new: bool = False) -> None:
        """Cache tweet objects read from the store, each with its counters (`counts`: the
        store's, by counter name, used where a counter does not exist yet; 0 where absent).
        `new`: tweets just made, which nobody has liked or retweeted yet (`_PUT_TWEET`)."""
        calls = []
        for t in tweets:
            tid = int(t["tweet_id"])
            stored = counts.get(tid, {})
            keys = [tweet_key(tid), *(counter_key(c, tid) for c in COUNTERS)]
            calls.append(self._put_tweet_script(
                keys=[*keys, *(counted_key(c, tid) for c in MEMBERS_RECORDED)] if new else keys,
                args=[orjson.dumps(t), TWEET_TTL_S, *(stored.get(c, 0) for c in COUNTERS)]))
        await asyncio.gather(*calls)


class Counted(enum.Enum):
    """What counting a member did: counted it now, found it counted before, or found it in the
    base the counter was rebuilt from (the count includes it; nothing was added for it)."""

    NOW = "now"
    BEFORE = "before"
    IN_BASE = "in base"


@dataclasses.dataclass(frozen=True, slots=True)
class Base:
    """What a counter missing from the cache is rebuilt from: its count, and the members counted
    (None: the store does not record them, as for every counter but likes and retweets)."""

    count: int
    members: list[int] | None = None


class EngagementCounter:
    """The aggregator's writer: count each member of each counter once, whatever the number of
    deliveries. A counter is addressed by (tweet id, counter name)."""

    def __init__(self, addresses: list[str]) -> None:
        self.rc = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in _nodes(addresses)],
                               address_remap=_remap(addresses),
                               decode_responses=True, socket_timeout=2, require_full_coverage=False)
        self._script = self.rc.register_script(_COUNT)
        self._raise = self.rc.register_script(_RAISE_COUNT)

    def count(self, key: CounterKey, member: int, base: Callable[[], Base]) -> Counted:
        """Count `member` once. Retries until Redis takes it. `base`: the counter's count, and
        for likes the members the store records, when the counter or its counted set is
        missing from the cache (asked only then)."""
        tweet_id, counter = key
        delay = 0.05
        args: list[str | int] = [member, TWEET_TTL_S, "", "1" if counter in MEMBERS_RECORDED else "0"]
        while True:
            try:
                n = int(self._script(keys=[counted_key(counter, tweet_id), counter_key(counter, tweet_id)], args=args))
                if n != -2:
                    return Counted.BEFORE if n == -1 else Counted.IN_BASE if n == -3 else Counted.NOW
                got = base()
                args = [member, TWEET_TTL_S, got.count, "0" if got.members is None else "1", *(got.members or ())]
            except Exception:  # noqa: BLE001 - Redis, or the store asked for the base: retried until both answer
                log.warning("counting %s of %s failed; retrying", counter, tweet_id, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def raise_to(self, counts: Mapping[CounterKey, int]) -> None:
        """Raise cached counters that are lower than `counts` (the checkpoint found the store
        ahead: a counter re-cached from the store before it had every event)."""
        for (tweet_id, counter), n in counts.items():
            self._raise(keys=[counter_key(counter, tweet_id)], args=[n])

    def counts(self, keys: list[CounterKey]) -> dict[CounterKey, int]:
        """The cached counts of `keys` (those whose counter exists)."""
        values = self.rc.mget_nonatomic([counter_key(c, t) for t, c in keys])
        return {k: int(v) for k, v in zip(keys, values, strict=True) if v is not None}


def seeding_client(addresses: list[str]) -> RedisCluster:
    """A plain cluster client for writing a campaign's caches before its load starts."""
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in _nodes(addresses)],
                        address_remap=_remap(addresses), decode_responses=True)


def preheat(addresses: list[str], user_ids: list[int]) -> None:
    """Make every user's timeline exist (empty) so first reads are cache hits, not rebuilds."""
    rc = seeding_client(addresses)
    try:
        for start in range(0, len(user_ids), 1000):
            pipe = rc.pipeline()
            for u in user_ids[start:start + 1000]:
                pipe.zadd(timeline_key(u), {SENTINEL: 0.0})
                pipe.expire(timeline_key(u), TIMELINE_TTL_S)
            pipe.execute()
    finally:
        rc.close()


class TimelineWriter:
    """The fan-out worker's writer: pipelined per shard, each batch confirmed by a replica.

    Redis replication is asynchronous, so a primary that dies just after acknowledging a write
    can take it with it when its replica is promoted. Each per-shard pipeline therefore ends
    with `WAIT 1`; the worker commits its Kafka offset only after every shard's batch was
    acknowledged by a replica (or the shard has no replica connected at all, in which case
    there is nothing more to wait for). A shard's share that fails is re-routed and sent again:
    ZADD of the same member and score is idempotent, so at-least-once is safe.

    A shard that stays down (primary and replica) must not stop the fan-out to every other
    shard: with `park_after_s`, what a shard has not confirmed by then is returned to the
    caller (to be parked in Kafka and applied later), and the shard is parked: its commands are
    returned at once for PARKED_FOR_S, and for PARKED_LATELY_S after any park, whatever fails
    gets a short deadline (PROBE_S) rather than stalling each batch for `park_after_s` again.
    Without `park_after_s`, a write not confirmed within WRITE_DEADLINE_S raises, so that the
    caller's retry loop can notice the worker stopping.
    """

    def __init__(self, addresses: list[str], cap: int, backoff: tuple[float, float] = (0.05, 1.0)) -> None:
        self.cap = cap
        self.backoff = backoff   # a shard's share sent again after (first, at most: doubling)
        self.rc = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in _nodes(addresses)], address_remap=_remap(addresses),
            decode_responses=True,
            socket_timeout=2, socket_connect_timeout=1, require_full_coverage=False,
        )
        self.retries = 0
        self.last_failure = ""   # why the last round left commands unconfirmed (for the logs)
        self._parked_at: dict[str, float] = {}   # shard (node name, or "slot:N" if none) -> when parked
        self._last_park = -PARKED_LATELY_S

    def write(self, entries: list[tuple[int, int]], tweets: list[dict[str, Any]], *,
              removals: list[tuple[int, int]] | None = None, dropped: list[int] | None = None,
              notify: list[tuple[int, bytes]] | None = None, park_after_s: float | None = None) -> list[Command]:
        """Apply one batch and return once it is durable (or, with `park_after_s`, return what
        a shard that did not answer has left: see the class):
        insert (user_id, tweet_id) `entries`, cache `tweets`, remove (user_id, tweet_id)
        `removals` (deletion fan-out), drop the cached objects of `dropped` tweet ids, and
        signal (user, payload) `notify` pairs to connected clients (SPUBLISH, best effort: a
        signal may repeat when a batch is re-sent, and is lost when nobody listens)."""
        pending: list[Command] = []
        for t in tweets:
            # NX: a tweet object only changes by being deleted, and a DELETE that overtook this
            # fan-out has already cached the deleted version, which must not be overwritten.
            pending.append((tweet_key(int(t["tweet_id"])), ("SET", tweet_key(int(t["tweet_id"])),
                                                              orjson.dumps(t), "EX", TWEET_TTL_S, "NX")))
        # Removals first: an append to a full timeline trims its oldest entry, which a removal
        # in the same batch leaves room for. So a tweet deleted in its own batch is not appended.
        removed = set(removals or ())
        for user_id, tweet_id in removed:
            pending.append((timeline_key(user_id), ("ZREM", timeline_key(user_id), str(tweet_id))))
        for user_id, tweet_id in entries:
            if (user_id, tweet_id) in removed:
                continue
            key = timeline_key(user_id)
            pending.append((key, ("EVAL", APPEND_SCRIPT, 1, key, timestamp_ms(tweet_id), str(tweet_id), self.cap,
                                  TIMELINE_TTL_S)))
        for tweet_id in dropped or ():   # a deleted marker, not a DEL: nothing may cache it live again
            pending.append((tweet_key(tweet_id), ("SET", tweet_key(tweet_id), deleted_marker(tweet_id), "EX",
                                                  TWEET_TTL_S)))
        for user_id, payload in notify or ():
            pending.append((notify_channel(user_id), ("SPUBLISH", notify_channel(user_id), payload)))
        if park_after_s is None:
            left = self.send(pending, deadline_s=WRITE_DEADLINE_S)
            if left:
                raise redis.ConnectionError(f"{len(left)} timeline commands not confirmed in {WRITE_DEADLINE_S} s")
            return []
        now = time.monotonic()
        if now - self._last_park < PARKED_FOR_S:   # looked up only while a shard may be parked
            skip = [now - self._parked_at.get(self._shard(key), -PARKED_FOR_S) < PARKED_FOR_S for key, _ in pending]
        else:
            skip = [False] * len(pending)
        # Which node a slot maps to moves while the cluster client refreshes its view of a shard
        # that does not answer, so "parked lately" is any shard's: the next batches then give
        # whatever fails only PROBE_S (a healthy shard's share goes through in the first round).
        lately = now - self._last_park < PARKED_LATELY_S
        parked = [c for c, s in zip(pending, skip, strict=True) if s]
        left = self.send([c for c, s in zip(pending, skip, strict=True) if not s],
                         deadline_s=PROBE_S if lately else park_after_s)
        for key, _ in left:
            self._parked_at[self._shard(key)] = self._last_park = time.monotonic()
        return [c for c in parked + left if c[1][0] != "SPUBLISH"]   # a late signal is no signal

    def _shard(self, key: str) -> str:
        slot = self.rc.keyslot(key)
        try:
            return str(self.rc.nodes_manager.get_node_from_slot(slot).name)
        except (redis.RedisError, redis.exceptions.RedisClusterException):   # no node serves it
            return f"slot:{slot}"

    def send(self, pending: list[Command], deadline_s: float | None = None) -> list[Command]:
        """Send `pending` until every shard confirmed its share, or `deadline_s` passed: what
        is left then."""
        started, (delay, most) = time.monotonic(), self.backoff
        while pending:
            pending = self._send(pending)
            if not pending or (deadline_s is not None and time.monotonic() - started >= deadline_s):
                break
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, most)
            try:
                self.rc.nodes_manager.initialize()
            except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
                pass
        return pending

    def _send(self, pending: list[Command]) -> list[Command]:
        """One round: each shard's share in one pipeline; the commands not confirmed."""
        by_node: dict[str, list[Command]] = defaultdict(list)
        nodes = {}
        failed: list[Command] = []
        for key, cmd in pending:
            try:
                node = self.rc.nodes_manager.get_node_from_slot(self.rc.keyslot(key))
            except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:   # no node for the slot
                failed.append((key, cmd))
                self.last_failure = f"slot of {key}: {type(exc).__name__}: {exc}"
                continue
            by_node[node.name].append((key, cmd))
            nodes[node.name] = node
        for name, items in by_node.items():
            conn = self.rc.get_redis_connection(nodes[name])
            pipe = conn.pipeline(transaction=False)
            for _, cmd in items:
                pipe.execute_command(*cmd)
            pipe.execute_command("WAIT", 1, 500)
            try:
                results = pipe.execute(raise_on_error=True)
            except (redis.RedisError, OSError) as exc:
                failed.extend(items)
                self.last_failure = f"{name}: {type(exc).__name__}: {exc}"
                continue
            if int(results[-1]) < 1 and self._has_replica(conn):
                failed.extend(items)   # not yet on a replica: send again
                self.last_failure = f"{name}: not confirmed by its replica (WAIT 1 gave 0)"
        return failed

    @staticmethod
    def _has_replica(conn: redis.Redis) -> bool:
        try:
            return online_replicas(conn.info("replication")) > 0
        except (redis.RedisError, OSError):
            return True
