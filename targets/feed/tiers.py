"""Tiered fan-out (design §05): push below the push threshold, throttled push in the middle
band, pull above the pull threshold (merged into readers' feeds at read time).

The thresholds and the throttle are runtime configuration (table `runtime_config`, re-read
every few seconds), and any user can be pinned to a tier by the `fanout_tier` flag on their
user-graph entry: no redeploy to move a celebrity or to retune the bands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

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


class Pacer:
    """The middle band's rate cap: at most `rate` timeline writes per second, paced across
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
