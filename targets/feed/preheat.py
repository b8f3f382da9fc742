"""Timelines of active users are preheated in the background (design §06, §08).

A reader whose timeline is missing (its shard restarted empty, it expired, it was never built)
pays the store fan-in on the first read. The design keeps that path rare: the users who read
recently are remembered, and any of their timelines found missing is rebuilt before they ask.

- Every API instance notes the users it served and adds them, every FLUSH_S, to sharded
  sorted sets `active:{n}` (score: last seen), so no single shard takes every write.
- Every SCAN_S, one instance (whoever takes the `preheat:lock` key for that period) lists the
  users seen in the last ACTIVE_WINDOW_S, asks which timelines are missing, and rebuilds at most
  MAX_REBUILDS of them, REBUILD_CONCURRENCY at a time. Older entries are trimmed as it goes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from prometheus_client import Counter, Gauge
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from targets.feed.cache import timeline_key
from targets.feed.outage import MAYBE_DOWN, is_outage

log = logging.getLogger("feed.preheat")

ACTIVE_WINDOW_S = 900
BUCKETS = 16
FLUSH_S = 2.0
SCAN_S = 5.0
MAX_REBUILDS = 500
REBUILD_CONCURRENCY = 8
LOCK_KEY = "preheat:lock"

PREHEATED = Counter("feed_preheat_rebuilds_total", "Missing timelines of active users rebuilt in the background")
ACTIVE = Gauge("feed_active_users", "Users seen in the active window (last scan)")


def active_key(bucket: int) -> str:
    return f"active:{{b{bucket}}}"


class Preheater:
    def __init__(self, rc: AsyncRedisCluster, rebuild: Callable[[int], Awaitable[bool]],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.rc = rc
        self.rebuild = rebuild
        self.clock = clock
        self.instance = uuid.uuid4().hex
        self._seen: set[int] = set()

    def saw(self, user_id: int) -> None:
        self._seen.add(user_id)

    async def run(self) -> None:
        """Flush and scan forever (cancelled at shutdown); a failed round is logged and retried."""
        last_scan = 0.0
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await self.flush()
                if time.monotonic() - last_scan >= SCAN_S:
                    last_scan = time.monotonic()
                    await self.scan()
            except MAYBE_DOWN as exc:   # a background loop: it must go on, a bug included (logged as one)
                if is_outage(exc):
                    log.info("preheat round failed; trying again", exc_info=True)
                else:
                    log.exception("preheat round failed on something other than an outage; trying again")

    async def flush(self) -> None:
        seen, self._seen = self._seen, set()
        if not seen:
            return
        now = self.clock()
        by_bucket: dict[int, dict[str, float]] = {}
        for u in seen:
            by_bucket.setdefault(u % BUCKETS, {})[str(u)] = now
        await asyncio.gather(*(self.rc.zadd(active_key(b), members) for b, members in by_bucket.items()))

    async def scan(self) -> int:
        """One round, if this instance holds the lock for it; returns the timelines rebuilt."""
        if not await self.rc.set(LOCK_KEY, self.instance, nx=True, ex=int(SCAN_S)):
            return 0
        horizon = self.clock() - ACTIVE_WINDOW_S
        users: list[int] = []
        for b in range(BUCKETS):
            await self.rc.zremrangebyscore(active_key(b), "-inf", horizon)
            members = cast(list[str], await self.rc.zrange(active_key(b), 0, -1))
            users.extend(int(u) for u in members)
        ACTIVE.set(len(users))
        missing: list[int] = []
        for start in range(0, len(users), 1000):
            chunk = users[start:start + 1000]
            pipe = self.rc.pipeline()
            for u in chunk:
                pipe.exists(timeline_key(u))
            found: list[int] = await pipe.execute()
            missing.extend(u for u, e in zip(chunk, found, strict=True) if not e)
        missing = missing[:MAX_REBUILDS]
        gate = asyncio.Semaphore(REBUILD_CONCURRENCY)

        async def one(user_id: int) -> None:
            async with gate:
                if await self.rebuild(user_id):
                    PREHEATED.inc()

        await asyncio.gather(*(one(u) for u in missing))
        if missing:
            log.info("preheated %d missing timelines of %d active users", len(missing), len(users))
        return len(missing)
