"""`algorithm=ranked` (design §06, §09) behind a circuit breaker (design §10, ranker degradation).

The ranker scores the newest CANDIDATES tweets of a feed on the design's four signals:
recency (half-life HALF_LIFE_H), engagement (likes, log-scaled), relationship strength (the
author follows the reader back) and content type (video over images over text, the design's
engagement curves: MEDIA_WEIGHT). It stands in for
a separate ranking service, so it can fail: `ranker.fail_share` in runtime_config makes that
share of calls fail (chaos turns the ranker "down" without a restart). Calls go through a
circuit breaker: after BREAKER_FAILURES failures in a row it opens for BREAKER_RECOVERY_S and
every ranked request is served chronologically without calling the ranker; a failed call is
served chronologically too. Unless the defect switch disables that fallback, in which case a
ranker failure is a 503.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any

from circuitbreaker import CircuitBreaker, CircuitBreakerError
from prometheus_client import Counter, Gauge, Histogram

from targets.feed.errors import ApiError
from targets.feed.snowflake import timestamp_ms

CANDIDATES = 200
HALF_LIFE_H = 6.0
RANK_TIMEOUT_S = 0.05
BREAKER_FAILURES = 5
BREAKER_RECOVERY_S = 10
# Content-type signal by the richest media a tweet carries (design §09: video > images > text).
MEDIA_WEIGHT = {"video": 1.0, "image": 0.6}

BREAKER_STATE = Gauge("feed_ranker_breaker_state", "Ranker circuit breaker: 0 closed, 1 half-open, 2 open")
FALLBACKS = Counter("feed_ranker_fallbacks_total", "Ranked requests served chronologically", ["reason"])
RANK_SECONDS = Histogram("feed_ranking_seconds", "Scoring one ranked page",
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05))
_STATES = {"closed": 0, "half_open": 1, "open": 2}


class RankerError(RuntimeError):
    pass


def score(tweet: dict[str, Any], *, now_s: float, mutual: bool) -> float:
    age_h = max(0.0, now_s - timestamp_ms(int(tweet["tweet_id"])) / 1000) / 3600
    recency = 0.5 ** (age_h / HALF_LIFE_H)
    likes = int(tweet.get("engagement", {}).get("likes", 0))
    engagement = min(1.0, math.log1p(likes) / math.log1p(1000))
    relationship = 1.0 if mutual else 0.5
    media = max((MEDIA_WEIGHT.get(m["content_type"].split("/")[0], 0.0) for m in tweet.get("media") or ()),
                default=0.0)
    return 0.55 * recency + 0.2 * engagement + 0.15 * relationship + 0.1 * media


class Ranker:
    """The scoring model. `fail_share` comes from runtime config (chaos)."""

    def __init__(self, fail_share: Callable[[], float]) -> None:
        self.fail_share = fail_share

    async def rank(self, tweets: list[dict[str, Any]], mutual_authors: set[int]) -> list[dict[str, Any]]:
        if random.random() < self.fail_share():
            raise RankerError("ranker unavailable (injected)")
        now_s = time.time()
        with RANK_SECONDS.time():
            return sorted(tweets, key=lambda t: (
                score(t, now_s=now_s, mutual=int(t["author"]["user_id"]) in mutual_authors), int(t["tweet_id"])),
                reverse=True)


class RankingGateway:
    def __init__(self, ranker: Ranker, *, fallback: bool) -> None:
        self.ranker = ranker
        self.fallback = fallback
        self.breaker = CircuitBreaker(failure_threshold=BREAKER_FAILURES, recovery_timeout=BREAKER_RECOVERY_S,
                                      expected_exception=RankerError, name="ranker")
        # The decorated form: only it refuses calls while the breaker is open (call_async does not).
        self._guarded = self.breaker.decorate(self._call)

    async def _call(self, tweets: list[dict[str, Any]], mutual: set[int]) -> list[dict[str, Any]]:
        try:
            return await asyncio.wait_for(self.ranker.rank(tweets, mutual), RANK_TIMEOUT_S)
        except TimeoutError:
            raise RankerError(f"ranker slower than {RANK_TIMEOUT_S * 1000:.0f} ms") from None

    async def rank(self, tweets: list[dict[str, Any]], mutual: set[int]) -> list[dict[str, Any]]:
        """Ranked order, or chronological order when the ranker fails or its breaker is open."""
        try:
            ranked: list[dict[str, Any]] = await self._guarded(tweets, mutual)
            return ranked
        except (RankerError, CircuitBreakerError) as exc:
            reason = "breaker_open" if isinstance(exc, CircuitBreakerError) else "ranker_error"
            if not self.fallback:
                raise ApiError(503, "ranker_unavailable", f"ranked feed unavailable: {exc}",
                               {"Retry-After": "1"}) from exc
            FALLBACKS.labels(reason).inc()
            return sorted(tweets, key=lambda t: int(t["tweet_id"]), reverse=True)
        finally:
            BREAKER_STATE.set(_STATES.get(str(self.breaker.state), 0))
