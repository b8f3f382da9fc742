"""Follow sets cached in Redis (design §08: "hot follower lists cached in Redis").

Two sets per user, each in the slot of its owner (so beside `timeline:{id}`):
- `following:{u}`, the accounts u follows: the reader's set, for the read-time unfollow
  filter and the celebrity merge (two store queries per feed page before);
- `followers:{a}`, the accounts following a: the fan-out worker's list.

A set holds the sentinel "0" besides its members, so "follows nobody" is a hit. It expires
FOLLOW_TTL_S after it was filled, whether read or not: only the lists of users active lately
stay, and whatever the cache got wrong lives at most that long.

Cassandra stays the record of truth. The rules that keep the cache from serving a follow set
older than a change the API has acknowledged:
1. A follow or unfollow writes the store first, then runs `_CHANGE` on both sets: give the
   set a new generation (a random token, not a counter: a counter starts again at 1 on a shard
   that restarted empty, and a fill that read 1 before would pass), apply the change if the
   set is cached. The API answers only after that write is confirmed by a replica (`WAIT 1`),
   or after CHANGE_DEADLINE_S of retries. A retry drops the set (`forget`) instead of applying
   the change again: another request may have changed the same follow since, and a second
   `add` landing after its `remove` would undo it in the cache for as long as the set lives;
   a dropped set is filled from the store by the next read, whatever the order. Past the
   deadline
   (the set's shard is failing over, or down) the change is counted as unconfirmed and the set
   is dropped instead, through the cluster client (which follows a failover by itself): at
   once if it can, else in the background until the shard takes writes; until then this
   process reads that user's follows from the store. Another API process could read the stale
   copy between the promotion of the replica and the drop.
2. A fill reads the generation, then the store, and `_FILL` writes only if the generation did
   not move: a fill that read the store before a change cannot overwrite it. It gives the set
   a new generation, so no two sets ever written hold the same one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence

import redis
import redis.asyncio
import redis.exceptions
from cachetools import LRUCache
from prometheus_client import Counter
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster

from targets.feed.cache import SENTINEL, BesideSet, SetRead, online_replicas, seeding_client
from targets.feed.outage import MAYBE_DOWN, is_outage

log = logging.getLogger("feed.follow_sets")

FOLLOW_TTL_S = 900
GENERATION_TTL_S = 24 * 3600
CHANGE_DEADLINE_S = 2.0   # within nginx's 3 s read timeout, after the store writes
# WAIT blocks this long when no replica acknowledges (none in sync, or it just died). It must stay
# under the node client's read timeout, else the read times out first and the answer is lost.
WAIT_MS = 250
NODE_TIMEOUT_S = 1.0
COPIED_MEMBERS = 500_000   # follow-set members an API process keeps copies of (a few tens of MB)

LOOKUPS = Counter("feed_follow_cache_requests_total", "Follow-set cache lookups", ["set", "result"])
UNCONFIRMED = Counter("feed_follow_cache_unconfirmed_total",
                      "Follow changes the cache could not confirm within the deadline")

# KEYS: set, generation. ARGV: generation seen before the store read, ttl, a new generation, its
# ttl, members... The set gets a generation of its own: readers keep copies per generation, and
# one left in place would also vouch for a copy of the set this fill replaces (say one that kept
# a change lost in a failover, or had no generation at all).
_FILL = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('DEL', KEYS[1])
redis.call('SADD', KEYS[1], '0')
for i = 5, #ARGV, 4000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: set, generation. ARGV: 'add' | 'remove' | 'forget' (drop the set), member, generation ttl,
# the new generation (a token no fill can have seen).
_CHANGE = """
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
if ARGV[1] == 'forget' then
  redis.call('DEL', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[1] == 'add' then redis.call('SADD', KEYS[1], ARGV[2]) else redis.call('SREM', KEYS[1], ARGV[2]) end
end
return 1
"""


def following_key(user_id: int) -> str:
    return f"following:{{{user_id}}}"


def followers_key(user_id: int) -> str:
    return f"followers:{{{user_id}}}"


def new_generation() -> str:
    return uuid.uuid4().hex


def generation_key(set_key: str) -> str:
    return f"gen:{set_key}"


def members(raw: Iterable[str]) -> list[int]:
    return sorted(int(m) for m in raw if m != SENTINEL)


def fill_args(generation: str, followees: Iterable[int]) -> list[str | int]:
    """_FILL's ARGV: the generation read before the store, then the store's members."""
    return [generation, FOLLOW_TTL_S, new_generation(), GENERATION_TTL_S, *followees]


class FollowSets:
    """The API's side: the reader's follow set (read, filled on a miss) and follow changes."""

    def __init__(self, rc: AsyncRedisCluster) -> None:
        self.rc = rc
        # A change must be confirmed by WAIT on the connection that made it, which the
        # cluster client's pooled commands cannot promise; one plain client per node can.
        self._nodes: dict[str, redis.asyncio.Redis] = {}
        self._background: set[asyncio.Task[bool]] = set()
        self._unconfirmed: set[str] = set()   # sets whose drop is pending: read from the store
        # user -> (generation, members) of the follow sets read lately; bounded by members held
        self._copies: LRUCache[int, tuple[str, frozenset[int]]] = LRUCache(
            maxsize=COPIED_MEMBERS, getsizeof=lambda copy: 1 + len(copy[1]))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for client in self._nodes.values():
            await client.aclose()

    def beside(self, user_id: int) -> BesideSet:
        """The follow set, to be read beside the user's timeline: its members come only if
        this process holds no current copy of it."""
        key = following_key(user_id)
        copy = self._copies.get(user_id)
        return BesideSet(key, generation_key(key), copy[0] if copy else "")

    def read(self, user_id: int, got: SetRead) -> frozenset[int] | None:
        """The follow set as read (beside the timeline, say), or this process's copy of it when
        that is current; None when it was not cached, or may be stale.

        A copy is kept per generation. Every change and every fill gives the set a new
        generation in the script that writes it (rules 1 and 2), so members read at a
        generation stay the members for as long as the set holds that generation."""
        if following_key(user_id) in self._unconfirmed:
            LOOKUPS.labels("following", "unconfirmed").inc()
            return None
        if got.members is None:
            copy = self._copies.get(user_id)
            if copy is not None and copy[0] == got.generation:
                LOOKUPS.labels("following", "copy").inc()
                return copy[1]
            LOOKUPS.labels("following", "miss").inc()   # the copy went meanwhile (evicted by another read)
            return None
        if not got.members:   # Redis has no empty sets: a cached set holds at least the sentinel
            LOOKUPS.labels("following", "miss").inc()
            return None
        LOOKUPS.labels("following", "hit").inc()
        found = frozenset(int(m) for m in got.members if m != SENTINEL)
        if got.generation and len(found) < COPIED_MEMBERS:   # (the LRU refuses an entry above its size)
            self._copies[user_id] = (got.generation, found)
        return found

    async def generation(self, user_id: int) -> str:
        return str(await self.rc.get(generation_key(following_key(user_id))) or "")

    async def fill(self, user_id: int, generation: str, followees: list[int]) -> None:
        key = following_key(user_id)
        if key in self._unconfirmed:
            return
        await self.rc.eval(_FILL, 2, key, generation_key(key), *fill_args(generation, followees))

    async def changed(self, follower: int, followee: int, *, following: bool) -> None:
        """Apply an acknowledged follow/unfollow to both cached sets, durably (rule 1)."""
        op = "add" if following else "remove"
        await asyncio.gather(self._change(following_key(follower), op, followee),
                             self._change(followers_key(followee), op, follower))

    async def _change(self, key: str, op: str, member: int) -> None:
        if await self._retry_change(key, op, member, CHANGE_DEADLINE_S):
            return
        UNCONFIRMED.inc()
        log.warning("follow change on %s unconfirmed after %.0f s; dropping the set", key, CHANGE_DEADLINE_S)
        self._unconfirmed.add(key)
        # Later changes may land first, so the late one drops the set rather than apply itself
        # out of order; the next read fills it from the store. The drop goes through the
        # cluster client, which follows a failover by itself; first at once, then until it lands.
        if await self._drop(key, member, within_s=0.5):
            self._unconfirmed.discard(key)
            return
        task = asyncio.create_task(self._drop_later(key, member))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drop(self, key: str, member: int, *, within_s: float) -> bool:
        try:
            async with asyncio.timeout(within_s):
                await self.rc.eval(_CHANGE, 2, key, generation_key(key), "forget", member, GENERATION_TTL_S,
                                   new_generation())
            return True
        except MAYBE_DOWN as exc:   # TimeoutError included
            if not is_outage(exc):
                raise
            return False

    async def _drop_later(self, key: str, member: int) -> bool:
        try:
            deadline = time.monotonic() + FOLLOW_TTL_S
            while time.monotonic() < deadline:
                if await self._drop(key, member, within_s=1.0):
                    return True
                await asyncio.sleep(0.5)
            return False
        finally:
            self._unconfirmed.discard(key)

    async def _retry_change(self, key: str, op: str, member: int, within_s: float) -> bool:
        """Try until `within_s` has passed; each attempt (and topology refresh) is cut at the
        deadline, since one against a dead node can hang for its socket timeout."""
        deadline = time.monotonic() + within_s
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline - time.monotonic()):
                    if await self._change_once(key, op, member):
                        return True
            except MAYBE_DOWN as exc:   # TimeoutError included
                if not is_outage(exc):
                    raise
                log.info("follow change on %s not applied yet: %r", key, exc)
            op = "forget"   # rule 1: a retry drops the set, as a later change may have overtaken this one
            if time.monotonic() + delay > deadline:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.rc.nodes_manager.initialize()
            except MAYBE_DOWN as exc:   # (TimeoutError included) the next attempt reports what is wrong
                if not is_outage(exc):
                    raise

    async def _change_once(self, key: str, op: str, member: int) -> bool:
        await self.rc.initialize()   # a no-op once the client knows the slots
        node = self.rc.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.ClusterDownError(f"no node serves {key}")
        client = self._nodes.get(node.name)
        if client is None:
            # No retries of its own: redis-py's default (10, on timeouts too) would hide a slow
            # node behind the deadline; _retry_change retries, with a fresh view of the slots.
            client = redis.asyncio.Redis(host=node.host, port=int(node.port), socket_timeout=NODE_TIMEOUT_S,
                                         socket_connect_timeout=0.5, decode_responses=True,
                                         retry=Retry(NoBackoff(), 0))
            self._nodes[node.name] = client
        pipe = client.pipeline(transaction=False)
        pipe.eval(_CHANGE, 2, key, generation_key(key), op, member, GENERATION_TTL_S, new_generation())
        pipe.execute_command("WAIT", 1, WAIT_MS)
        pipe.info("replication")
        try:
            _, replicas, info = await pipe.execute(raise_on_error=True)
        except BaseException:
            # A node that died or lost its role: forget this client, the next attempt makes a
            # fresh one for whichever node then serves the key.
            self._nodes.pop(node.name, None)
            await client.aclose()
            raise
        # A write a replica has not got can vanish in a failover; with no replica in sync (it is
        # the one that died, or it is still resyncing) there is nobody to wait for.
        return int(replicas) >= 1 or online_replicas(info) == 0


class FollowerLists:
    """The fan-out worker's side (sync): the followers of many authors in one round trip per
    shard, the store read and the cache filled for those not cached."""

    def __init__(self, rc: RedisCluster, read_store: Callable[[int], list[int]]) -> None:
        self.rc = rc
        self.read_store = read_store
        self._fill = rc.register_script(_FILL)

    def of(self, authors: Iterable[int]) -> dict[int, list[int]]:
        wanted = sorted(set(authors))
        if not wanted:
            return {}
        try:
            pipe = self.rc.pipeline()
            for a in wanted:
                pipe.smembers(followers_key(a))
                pipe.get(generation_key(followers_key(a)))
            raw = pipe.execute()
        except MAYBE_DOWN as exc:
            if not is_outage(exc):
                raise
            log.info("follower lists unreachable, reading the store: %r", exc)
            return {a: self.read_store(a) for a in wanted}
        out: dict[int, list[int]] = {}
        for i, a in enumerate(wanted):
            cached, generation = raw[2 * i], raw[2 * i + 1]
            LOOKUPS.labels("followers", "hit" if cached else "miss").inc()
            if cached:
                out[a] = members(cached)
                continue
            out[a] = self.read_store(a)
            key = followers_key(a)
            try:
                self._fill(keys=[key, generation_key(key)], args=fill_args(generation or "", out[a]))
            except MAYBE_DOWN as exc:
                if not is_outage(exc):
                    raise
                log.info("could not cache the followers of %s: %r", a, exc)
        return out


def preheat(addresses: list[str], followers: Mapping[int, Sequence[int]], *, users: Iterable[int]) -> None:
    """Cache both follow sets of every user in `users` (`followers`: each account's followers),
    as their first reads and fan-outs would, so that a campaign starts with them warm (seeding,
    before any load: nothing can change a set meanwhile, so each is written whole under a new
    generation, without `_FILL`'s check)."""
    following: dict[int, list[int]] = {}
    for author, fans in followers.items():
        for fan in fans:
            following.setdefault(fan, []).append(author)
    rc = seeding_client(addresses)
    try:
        batch: list[tuple[str, list[int]]] = []
        for user in users:
            batch += [(following_key(user), following.get(user, [])),
                      (followers_key(user), list(followers.get(user, ())))]
            if len(batch) >= 1000:
                _write_sets(rc, batch)
                batch = []
        _write_sets(rc, batch)
    finally:
        rc.close()


def _write_sets(rc: RedisCluster, sets: list[tuple[str, list[int]]]) -> None:
    pipe = rc.pipeline()
    for key, ids in sets:
        pipe.set(generation_key(key), new_generation(), ex=GENERATION_TTL_S)
        pipe.delete(key)
        for i in range(0, max(len(ids), 1), 4000):
            pipe.sadd(key, *([SENTINEL] if i == 0 else []), *ids[i:i + 4000])
        pipe.expire(key, FOLLOW_TTL_S)
    pipe.execute()
