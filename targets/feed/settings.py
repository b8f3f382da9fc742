"""The feed service's configuration, read once from the environment at start.

Every knob a campaign may turn lives here, including the defect switches: a defect is set at
start and breaks exactly one behaviour, so a test can prove the matching checker catches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# The middle band's cap: timeline writes per second, all fan-out workers together (the
# aggregate the two default workers had when the cap was per worker).
THROTTLE_WRITES_PER_S = 10000


class ConfigError(ValueError):
    pass


def _probe_ms(env: dict[str, str]) -> int:
    """FEED_PEER_PROBE_MS: 0 (no peer watch) or 50 ms to a minute (shorter is a busy loop)."""
    value = _int(env, "FEED_PEER_PROBE_MS", 200, 0, 60000)
    if 0 < value < 50:
        raise ConfigError(f"FEED_PEER_PROBE_MS={value}: 0 turns the peer watch off, else it must be >= 50")
    return value


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value}: must be within [{lo}, {hi}]")
    return value


def _float(env: dict[str, str], name: str, hi: float, what: str) -> float:
    raw = env.get(name, "0")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not a number") from None
    if not 0.0 <= value <= hi:
        raise ConfigError(f"{name}={value}: {what} must be within [0, {hi:g}]")
    return value


def _share(env: dict[str, str], name: str) -> float:
    return _float(env, name, 1.0, "a share")


def _seconds(env: dict[str, str], name: str) -> float:
    return _float(env, name, 3600.0, "seconds")


def _flag(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "0").strip().lower()
    if raw not in ("0", "1", "true", "false", ""):
        raise ConfigError(f"{name}={raw!r}: must be 0/1/true/false")
    return raw in ("1", "true")


@dataclass(frozen=True, kw_only=True)
class Defects:
    """Switches that break one behaviour each (all off by default)."""

    drop_fanout_share: float = 0.0   # skip this share of (tweet, follower) timeline writes
    ignore_idempotency: bool = False # treat every retry as a new tweet
    skip_unfollow_filter: bool = False   # serve tweets of authors the reader no longer follows
    skip_delete_fanout: bool = False     # soft-delete in the store only; caches keep serving the tweet
    never_backfill: bool = False         # a new follower never gets the followee's recent tweets
    break_celebrity_merge: bool = False  # feeds leave out the followed pull-tier authors' tweets
    lose_counter_share: float = 0.0      # the counter aggregator drops this share of engagement events
    disable_breaker_fallback: bool = False  # a ranker failure is a 503, not a chronological feed
    duplicate_retweets: bool = False     # a repeated retweet by the same user makes another retweet
    keep_deleted_retweets: bool = False  # retweets of a deleted tweet keep being served
    skip_retweet_fanout: bool = False    # retweets reach the retweeter's own timeline only
    skip_retweet_undo: bool = False      # undoing a retweet answers 200 and changes nothing
    skip_reply_counts: bool = False      # the counter aggregator never counts replies
    slow_retry_s: float = 0.0            # every fan-out retry (a failed batch, an unconfirmed write) waits this long
    drop_signals_share: float = 0.0      # skip this share of (tweet, follower) new-tweet signals (SSE)
    slow_failover: bool = False          # no peer watch: a dead worker's partitions wait for Kafka's session


@dataclass(frozen=True, kw_only=True)
class Settings:
    cassandra: str                   # host:port (the Toxiproxy listener)
    redis_nodes: list[str]           # host:port of each node (startup nodes), or host:port@announced_port
    kafka: str                       # bootstrap host:port (the proxy)
    token_secret: str
    datacenter_id: int = 0
    machine_id: int = 0
    push_threshold: int = 200        # below: push fan-out
    pull_threshold: int = 1000       # at or above: pull at read time (celebrity)
    timeline_cap: int = 800
    kafka_session_timeout_ms: int = 10000
    kafka_heartbeat_ms: int = 1000
    peer_probe_ms: int = 200         # how often a worker tries its peers' endpoints (peers.py); 0: never
    rate_limit_tweets: int = 300     # per user, in any rolling window of rate_limit_window_s
    rate_limit_window_s: int = 3 * 3600
    idempotency_ttl_s: int = 24 * 3600
    throttle_writes_per_s: int = THROTTLE_WRITES_PER_S
    follow_cap: int = 5000
    backfill_tweets: int = 50
    defects: Defects = Defects()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("FEED_CASSANDRA", "FEED_REDIS", "FEED_KAFKA", "FEED_TOKEN_SECRET") if not env.get(k)]
        if missing:
            raise ConfigError(f"missing environment: {', '.join(missing)}")
        push = _int(env, "FEED_PUSH_THRESHOLD", 200, 1, 10**9)
        pull = _int(env, "FEED_PULL_THRESHOLD", 1000, 1, 10**9)
        if pull < push:
            raise ConfigError(f"FEED_PULL_THRESHOLD={pull} is below FEED_PUSH_THRESHOLD={push}")
        return cls(
            cassandra=env["FEED_CASSANDRA"],
            redis_nodes=[n.strip() for n in env["FEED_REDIS"].split(",") if n.strip()],
            kafka=env["FEED_KAFKA"],
            token_secret=env["FEED_TOKEN_SECRET"],
            datacenter_id=_int(env, "FEED_DATACENTER_ID", 0, 0, 31),
            machine_id=_int(env, "FEED_MACHINE_ID", 0, 0, 31),
            push_threshold=push,
            pull_threshold=pull,
            timeline_cap=_int(env, "FEED_TIMELINE_CAP", 800, 1, 100000),
            kafka_session_timeout_ms=_int(env, "FEED_KAFKA_SESSION_TIMEOUT_MS", 10000, 1000, 600000),
            kafka_heartbeat_ms=_int(env, "FEED_KAFKA_HEARTBEAT_MS", 1000, 100, 60000),
            peer_probe_ms=_probe_ms(env),
            rate_limit_tweets=_int(env, "FEED_RATE_LIMIT_TWEETS", 300, 1, 10**9),
            rate_limit_window_s=_int(env, "FEED_RATE_LIMIT_WINDOW_S", 3 * 3600, 1, 7 * 86400),
            idempotency_ttl_s=_int(env, "FEED_IDEMPOTENCY_TTL_S", 24 * 3600, 1, 7 * 86400),
            follow_cap=_int(env, "FEED_FOLLOW_CAP", 5000, 1, 10**6),
            throttle_writes_per_s=_int(env, "FEED_THROTTLE_WRITES_PER_S", THROTTLE_WRITES_PER_S, 1, 10**7),
            backfill_tweets=_int(env, "FEED_BACKFILL_TWEETS", 50, 0, 800),
            defects=Defects(drop_fanout_share=_share(env, "FEED_DEFECT_DROP_FANOUT"),
                            ignore_idempotency=_flag(env, "FEED_DEFECT_IGNORE_IDEMPOTENCY"),
                            skip_unfollow_filter=_flag(env, "FEED_DEFECT_SKIP_UNFOLLOW_FILTER"),
                            skip_delete_fanout=_flag(env, "FEED_DEFECT_SKIP_DELETE_FANOUT"),
                            never_backfill=_flag(env, "FEED_DEFECT_NEVER_BACKFILL"),
                            break_celebrity_merge=_flag(env, "FEED_DEFECT_BREAK_CELEBRITY_MERGE"),
                            lose_counter_share=_share(env, "FEED_DEFECT_LOSE_COUNTER_EVENTS"),
                            disable_breaker_fallback=_flag(env, "FEED_DEFECT_DISABLE_BREAKER_FALLBACK"),
                            duplicate_retweets=_flag(env, "FEED_DEFECT_DUPLICATE_RETWEETS"),
                            keep_deleted_retweets=_flag(env, "FEED_DEFECT_KEEP_DELETED_RETWEETS"),
                            skip_retweet_fanout=_flag(env, "FEED_DEFECT_SKIP_RETWEET_FANOUT"),
                            skip_retweet_undo=_flag(env, "FEED_DEFECT_SKIP_RETWEET_UNDO"),
                            skip_reply_counts=_flag(env, "FEED_DEFECT_SKIP_REPLY_COUNTS"),
                            slow_retry_s=_seconds(env, "FEED_DEFECT_SLOW_RETRY_S"),
                            drop_signals_share=_share(env, "FEED_DEFECT_DROP_SIGNALS"),
                            slow_failover=_flag(env, "FEED_DEFECT_SLOW_FAILOVER")),
        )
