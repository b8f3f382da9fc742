"""Tiered fan-out (design §05): push below the push threshold, throttled push in the middle
band, pull above the pull threshold (merged into readers' feeds at read time).

The thresholds and the throttle are runtime configuration (table `runtime_config`, re-read
every few seconds), and any user can be pinned to a tier by the `fanout_tier` flag on their
user-graph entry: no redeploy to move a celebrity or to retune the bands.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis
from prometheus_client import Counter

from targets.feed.settings import Settings
from targets.feed.validation import decimal


class Tier(StrEnum):
    PUSH = "push"
    THROTTLED = "throttled"
    PULL = "pull"


@dataclass(frozen=True, kw_only=True)
class TierPolicy:
    push_threshold: int
    pull_threshold: int
    throttle_writes_per_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TierPolicy:
        """The bands the process was started with (runtime_config moves them: `with_config`)."""
        return cls(push_threshold=settings.push_threshold, pull_threshold=settings.pull_threshold,
                   throttle_writes_per_s=settings.throttle_writes_per_s)

    def tier(self, follower_count: int, override: str | None = None) -> Tier:
        if override is not None and override in Tier._value2member_map_:   # unknown flags are ignored,
            return Tier(override)                                             # like bad runtime config
        if follower_count >= self.pull_threshold:
            return Tier.PULL
        if follower_count >= self.push_threshold:
            return Tier.THROTTLED
        return Tier.PUSH

    def with_config(self, config: dict[str, str]) -> TierPolicy:
        """This policy with the runtime_config rows applied (bad values are ignored, not fatal)."""
        def read(name: str, current: int) -> int:
            value = decimal(config.get(name))
            return value if value is not None and value > 0 else current

        push = read("fanout.push_threshold", self.push_threshold)
        pull = read("fanout.pull_threshold", self.pull_threshold)
        if pull < push:
            push, pull = self.push_threshold, self.pull_threshold
        return TierPolicy(push_threshold=push, pull_threshold=pull,
                          throttle_writes_per_s=read("fanout.throttle_writes_per_s", self.throttle_writes_per_s))


log = logging.getLogger("feed.tiers")
THROTTLE_WAIT = Counter("feed_fanout_throttle_wait_seconds_total",
                        "Time the middle band's lane waited for its write cap (shared: the schedule in Redis;"
                        " alone: this worker's own, while Redis was unreachable)", ["schedule"])
for _schedule in ("shared", "alone"):
    THROTTLE_WAIT.labels(_schedule)   # exposed at 0 before the first wait

THROTTLE_KEY = "fanout:throttle:free_at"
# After the shared schedule failed, pace alone this long before trying it again, doubling up
# to ALONE_AT_MOST_S while it keeps failing: an attempt on a shard that hangs rather than refuses
# waits out the cluster client's timeouts and retries (about 20 s).
ALONE_FOR_S = 5.0
ALONE_AT_MOST_S = 60.0

# Reserve the next ARGV[1] microseconds of the shared schedule: returns how long the caller
# waits before its slot begins. KEYS: the schedule (when it is next free, in µs of Redis's clock,
# so every worker reads one clock). Each lane holds at most one slot ahead (a tenth of a second
# of the cap), so a schedule more than a minute ahead means the clock stepped back: it restarts
# from now. '%.0f' because Lua's tostring keeps 14 digits of 16.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if start - now > 60000000 then start = now end
local after = start + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.floor((after - now) / 1000) + 1000)
return start - now
"""


class Pacer:
    """One process's rate cap: at most `rate` timeline writes per second, paced across
    tweets, so that a tweet with few followers costs its share of a second and not a whole
    slice. (Ten lines of our own rather than a rate-limiting library: it needs a blocking
    wait in the worker's thread and a rate that changes with runtime configuration.)"""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.clock, self.sleep = clock, sleep
        self._free_at = 0.0

    def take(self, writes: int, rate: float) -> None:
        """Wait until `writes` more writes fit within `rate` per second, then count them."""
        wait = self._free_at - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._free_at = max(self._free_at, self.clock()) + writes / rate


class SharedPacer:
    """The middle band's rate cap, shared by every fan-out worker: its schedule lives in Redis,
    so adding workers (the design scales them on Kafka lag) does not multiply the write rate the
    cap exists to bound. While the schedule's shard is unreachable, each worker paces itself
    alone at the whole rate, so the cap is then per worker; it tries the schedule again after
    ALONE_FOR_S (then longer), not at every slice. (Not the `limits` library: it
    answers whether a hit fits a window, where pacing needs how long to wait for a smooth rate.)"""

    def __init__(self, rc: redis.RedisCluster, sleep: Callable[[float], None] = time.sleep) -> None:
        self._reserve = rc.register_script(_RESERVE)
        self.sleep = sleep
        self.alone = Pacer(sleep=sleep)
        self._alone_until = 0.0
        self._alone_for = ALONE_FOR_S

    def take(self, writes: int, rate: float) -> None:
        """Wait until `writes` more writes fit within `rate` per second across all workers."""
        if time.monotonic() < self._alone_until:
            self._take_alone(writes, rate)
            return
        try:
            wait_us = int(self._reserve(keys=[THROTTLE_KEY], args=[math.ceil(writes * 1_000_000 / rate)]))
        except (redis.RedisError, redis.exceptions.RedisClusterException):   # the latter: no node for the slot
            log.warning("the shared throttle is unreachable; pacing this worker alone for %.0f s", self._alone_for,
                        exc_info=True)
            self._alone_until = time.monotonic() + self._alone_for
            self._alone_for = min(2 * self._alone_for, ALONE_AT_MOST_S)
            self._take_alone(writes, rate)
            return
        self._alone_for = ALONE_FOR_S
        if wait_us > 0:
            self.sleep(wait_us / 1_000_000)
            THROTTLE_WAIT.labels("shared").inc(wait_us / 1_000_000)

    def _take_alone(self, writes: int, rate: float) -> None:
        started = time.monotonic()
        self.alone.take(writes, rate)
        THROTTLE_WAIT.labels("alone").inc(time.monotonic() - started)
