"""The fan-out worker: one member of the `fanout` Kafka consumer group.

Events (keyed by author, so one author's events stay in order):
- tweet: look up the author's followers (cached in Redis, `follow_sets`), and unless the
  author is in the pull tier (followers >= pull threshold, served at read time), insert the
  tweet id into every follower's timeline and the author's own;
- delete: remove the id from the same timelines and drop the cached tweet object;
- backfill: put a followee's newest tweets into a new follower's timeline.
Two more lanes run beside it, each its own consumer group: the throttled middle band
(`tweets-throttled`) and the like-counter aggregator (`engagement`). Offsets are committed
only after the timeline writes of the whole batch are durable (TimelineWriter), so a worker
killed mid-batch loses nothing: its successor re-reads from the last commit (at-least-once,
idempotent writes).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from targets.feed import peers
from targets.feed.cache import APPEND_SCRIPT, Base, Command, Counted, EngagementCounter, TimelineWriter
from targets.feed.engagement import EVENTS as ENGAGEMENT_EVENTS
from targets.feed.engagement import CounterKey
from targets.feed.engagement import event as engagement_event
from targets.feed.follow_sets import FollowerLists
from targets.feed.freeze import FreezeWatch
from targets.feed.settings import Defects, Settings
from targets.feed.snowflake import timestamp_ms
from targets.feed.store import Store, Tweet
from targets.feed.tiers import SharedPacer, Tier, TierPolicy
from targets.feed.validation import positive_id

log = logging.getLogger("feed.worker")

FANOUT_LAG = Histogram("feed_fanout_lag_seconds", "Tweet age when its timeline writes became durable",
                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
TIMELINE_WRITES = Counter("feed_timeline_writes_total", "Timeline entries written")
EVENTS = Counter("feed_fanout_events_total", "Events consumed", ["type"])
TIERS = Counter("feed_fanout_tweets_total", "Tweets fanned out, by the author's tier", ["tier"])
DROPPED = Counter("feed_fanout_defect_dropped_total", "Timeline writes skipped by the drop-fanout defect")
COUNTED = Counter("feed_engagement_counted_total", "Engagement events counted by the aggregator (each once)",
                  ["counter"])
COUNTER_BASES = Counter("feed_counter_bases_total", "Counters (or likes' counted sets) rebuilt from the store "
                        "before counting: missing from the cache", ["counter"])
COUNTER_LAG = Histogram("feed_counter_lag_seconds", "Engagement accepted by the API -> counted in Redis",
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
CONSUMER_LAG = Gauge("feed_kafka_consumer_lag", "Messages of the group's topic not yet committed by the group",
                     ["group"])
RETRIED = Counter("feed_worker_batch_retries_total", "Batches retried after an error", ["lane"])
SKIPPED = Counter("feed_fanout_events_skipped_total", "Malformed fan-out events skipped")
PARKED = Counter("feed_timeline_writes_parked_total",
                 "Timeline commands parked in Kafka because their Redis shard did not confirm them in time")
REPLAYED = Counter("feed_timeline_writes_replayed_total", "Parked timeline commands the retry lane applied")
REDIS_RETRIES = Gauge("feed_fanout_redis_retries", "Batches re-sent to Redis since start")

OVERRIDE_TTL_S = 5.0
CONFIG_TTL_S = 5.0
TWEETS_TOPIC = "tweets"
THROTTLED_TOPIC = "tweets-throttled"
ENGAGEMENT_TOPIC = "engagement"
RETRY_TOPIC = "timeline-retry"
# Each lane's consumer group and the topic it reads
LANES = {"fanout": TWEETS_TOPIC, "fanout-throttled": THROTTLED_TOPIC, "counters": ENGAGEMENT_TOPIC,
         "fanout-retry": RETRY_TOPIC}
CHECKPOINT_S = 5.0
MAX_POLL_INTERVAL_MS = 300_000   # a lane that does not poll for this long leaves its groups
# How the counter lane reads the members the store records of a counter (engagement.MEMBERS_RECORDED).
MEMBERS_IN_STORE: dict[str, Callable[[Store, int], list[int]]] = {
    "likes": Store.likers_sync, "retweets": Store.retweet_ids_ever_sync, "unretweets": Store.undone_retweet_ids_sync,
    "replies": Store.reply_ids_sync, "unreplies": Store.deleted_reply_ids_sync}
# A shard's share of a batch not confirmed within this is parked in RETRY_TOPIC, so that the
# other shards' followers keep getting tweets: longer than a failover (about 5 s), shorter than
# a freshness goal.
PARK_AFTER_S = 10.0
RETRY_ROUND_S = 30.0   # the retry lane's attempt at a batch before it reads it again


def dropped_by_defect(share: float, tweet_id: int, follower: int) -> bool:
    """Deterministic: the same (tweet, follower) pairs are dropped on every retry."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{tweet_id}:{follower}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32 < share


@dataclass
class Batch:
    """The Redis work one batch of events amounts to."""

    entries: list[tuple[int, int]] = field(default_factory=list)    # (user, tweet) to insert
    removals: list[tuple[int, int]] = field(default_factory=list)   # (user, tweet) to remove
    tweets: list[dict[str, Any]] = field(default_factory=list)      # objects to cache
    dropped: list[int] = field(default_factory=list)                # cached objects to drop
    throttled: list[dict[str, Any]] = field(default_factory=list)   # tweet events for the throttled lane
    tiers: dict[int, Tier] = field(default_factory=dict)            # author -> tier seen (pull registry)
    notify: list[tuple[int, bytes]] = field(default_factory=list)   # (follower, signal) for SSE
    requeued: set[int] = field(default_factory=set)                 # tweets a retry queued again


def new_tweet_signal(tweet: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "tweet", "tweet_id": tweet["tweet_id"], "author_id": tweet["author_id"]})


def plan(events: list[dict[str, Any]], settings: Settings, *, followers_of: Callable[[int], list[int]],
         newest_of: Callable[[int, int], list[Tweet]], tier_of: Callable[[int, int], Tier],
         follows: Callable[[int, int], bool]) -> Batch:
    """What to write for `events`, in order. Pure but for the lookups passed in."""
    batch = Batch()
    defects = settings.defects
    for ev in events:
        kind = ev.get("type", "tweet")
        EVENTS.labels(kind).inc()
        if kind == "tweet":
            tweet = ev["tweet"]
            tweet_id, author = int(tweet["tweet_id"]), int(tweet["author_id"])
            batch.tweets.append(tweet)
            if ev.get("requeued"):
                batch.requeued.add(tweet_id)
            batch.entries.append((author, tweet_id))
            followers = followers_of(author)
            tier = tier_of(author, len(followers))
            batch.tiers[author] = tier
            TIERS.labels(tier.value).inc()
            if tier is Tier.PULL:        # merged into readers' feeds at read time
                continue
            if tier is Tier.THROTTLED:   # pushed by the rate-capped lane, not here
                batch.throttled.append(ev)
                continue
            if tweet.get("retweet_of") is not None and defects.skip_retweet_fanout:
                continue                 # the retweeter's own timeline only
            signal = None if ev.get("requeued") else new_tweet_signal(tweet)   # a retry's: signalled before
            for f in followers:
                if dropped_by_defect(defects.drop_fanout_share, tweet_id, f):
                    DROPPED.inc()
                    continue
                batch.entries.append((f, tweet_id))
                if signal is not None and not dropped_by_defect(defects.drop_signals_share, tweet_id, f):
                    batch.notify.append((f, signal))
        elif kind == "delete":
            # Design §08: a deletion is another fan-out: out of every timeline and the cache.
            if defects.skip_delete_fanout:
                continue
            tweet_id, author = int(ev["tweet_id"]), int(ev["author_id"])
            batch.removals.append((author, tweet_id))
            batch.removals.extend((f, tweet_id) for f in followers_of(author))
            batch.dropped.append(tweet_id)
        elif kind == "backfill":
            # Design §10: a new follower gets the author's newest tweets; ZADD makes a re-run harmless.
            # Not one who unfollowed since: hidden by the read filter, they would still push a
            # full timeline's oldest entries out.
            follower, author = int(ev["follower_id"]), int(ev["author_id"])
            if defects.never_backfill or not follows(follower, author):
                continue
            batch.entries.extend((follower, t.tweet_id) for t in newest_of(author, settings.backfill_tweets)
                                 if not t.deleted)
        else:
            log.warning("unknown event type %r: skipped", kind)
    return batch


# The fields each fan-out event must carry as ids (decimal strings), by type, as the API writes them.
_FANOUT_IDS = {"tweet": ("tweet.tweet_id", "tweet.author_id"), "delete": ("tweet_id", "author_id"),
               "backfill": ("follower_id", "author_id")}


def well_formed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fan-out events that can be applied. A malformed one is logged, counted and
    skipped: retrying its batch (the lane never skips a batch that failed) would stop the lane
    for good on a message that can never succeed."""
    good = []
    for ev in events:
        fields = _FANOUT_IDS.get(ev.get("type", "tweet"))
        ok = fields is not None and all(positive_id(_field(ev, f)) is not None for f in fields)
        if ok:
            good.append(ev)
        else:
            SKIPPED.inc()
            log.warning("fan-out: skipping a malformed event: %.200r", ev)
    return good


def _field(ev: dict[str, Any], path: str) -> object:
    value: object = ev
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def to_count(events: list[dict[str, Any]], defects: Defects) -> list[tuple[CounterKey, int, float]]:
    """((tweet, counter), member, sent time) of each engagement event the aggregator should count."""
    out = []
    for ev in events:
        try:
            kind = ev.get("type")
            if kind not in ENGAGEMENT_EVENTS:
                raise ValueError(f"not an engagement event: {kind!r}")
            counter, member_field = ENGAGEMENT_EVENTS[kind]
            tweet_id, member = positive_id(ev["tweet_id"]), positive_id(ev[member_field])
            if tweet_id is None or member is None:
                raise ValueError("ids must be positive integers")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:   # never kill the lane
            log.warning("engagement: skipping an event that cannot be counted: %s: %.200r", exc, ev)
            continue
        if dropped_by_defect(defects.lose_counter_share, tweet_id, member):
            continue
        if defects.skip_reply_counts and counter in ("replies", "unreplies"):
            continue
        out.append(((tweet_id, counter), member, float(ev.get("t", time.time()))))
    return out


def engagement_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engagement events that tweet-path events imply (counted once each, however often
    they are sent): a reply posted or deleted, a retweet made or undone. The API sends them
    too, at once, for a quick count; this lane sends them durably, before its batch commits."""
    out = []
    for ev in events:
        kind = ev.get("type", "tweet")
        tweet = ev.get("tweet") if kind == "tweet" else ev
        if kind not in ("tweet", "delete") or not isinstance(tweet, dict):
            continue
        own = positive_id(tweet.get("tweet_id"))
        for parent_field, made, undone in (("reply_to", "reply", "unreply"), ("retweet_of", "retweet", "unretweet")):
            parent = positive_id(tweet.get(parent_field))
            if parent is not None and own is not None:
                out.append(engagement_event(made if kind == "tweet" else undone, parent, own))
    return out


class PullRegistry:
    """Keeps the store's pull-tier registry (feed.pull_tier) current for the authors this
    worker fans out; the API merges those authors' tweets into feeds at read time.

    A pull author's row is written again at each of its tweets: an upsert, cheap at celebrity
    tweet rates, and right even if another worker (before a rebalance) removed it. A removal
    is written only for an author the registry lists, as last read (every few seconds), so
    push authors leave no tombstones in the registry's one partition."""

    def __init__(self, store: Store, ttl_s: float = CONFIG_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._listed: tuple[float, set[int]] = (-ttl_s, set())

    def update(self, tiers: Mapping[int, Tier]) -> None:
        if not tiers:
            return
        at, listed = self._listed
        if time.monotonic() - at > self.ttl_s:
            listed = self.store.pull_tier_sync()
            self._listed = (time.monotonic(), listed)
        for author, tier in tiers.items():
            if tier is Tier.PULL:
                self.store.set_pull_tier_sync(author, True)
                listed.add(author)
            elif author in listed:
                self.store.set_pull_tier_sync(author, False)
                listed.discard(author)


class FanoutWorker:
    def __init__(self, settings: Settings, metrics_port: int | None = None) -> None:
        self.s = settings
        self.metrics_port = metrics_port   # where peers find this process (peers.py); None: nowhere
        self.client_id = peers.client_id(metrics_port) if metrics_port else "rdkafka"
        self.store = Store(settings.cassandra)
        slow = settings.defects.slow_retry_s   # the defect: every retry waits far past any outage
        self.backoff = (slow, slow) if slow else (0.1, 5.0)              # a batch that failed
        self.write_backoff = (slow, slow) if slow else (0.05, 1.0)       # a shard that did not confirm
        self.writer = TimelineWriter(settings.redis_nodes, settings.timeline_cap, self.write_backoff)
        self.follower_lists = FollowerLists(self.writer.rc, self.store.followers_sync)
        self.pull_registry = PullRegistry(self.store)
        self._overrides: dict[int, tuple[float, str | None]] = {}
        self._defaults = TierPolicy.from_settings(settings)
        self._policy = (0.0, self._defaults)
        self.consumer = self._consumer("fanout")
        self.producer = Producer({"bootstrap.servers": settings.kafka, "acks": "all", "enable.idempotence": True})
        self.running = True

    def _consumer(self, group: str) -> Consumer:
        return Consumer({
            "bootstrap.servers": self.s.kafka, "group.id": group, "client.id": self.client_id,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": self.s.kafka_session_timeout_ms, "heartbeat.interval.ms": self.s.kafka_heartbeat_ms,
            "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
        })

    def policy(self) -> TierPolicy:
        """Thresholds from runtime_config, re-read every few seconds."""
        at, current = self._policy
        if time.monotonic() - at > CONFIG_TTL_S:
            try:
                current = self._defaults.with_config(self.store.runtime_config_sync())
            except Exception:  # noqa: BLE001 - keep the last good policy while the store is away
                log.warning("runtime config unreadable; keeping the current policy", exc_info=True)
            self._policy = (time.monotonic(), current)
        return current

    def _override(self, author: int) -> str | None:
        """The author's tier override flag (users.fanout_tier), re-read every few seconds."""
        now = time.monotonic()
        hit = self._overrides.get(author)
        if hit and now - hit[0] < OVERRIDE_TTL_S:
            return hit[1]
        override = self.store.tier_override_sync(author)
        self._overrides[author] = (now, override)
        return override

    def tier_of(self, author: int, follower_count: int) -> Tier:
        return self.policy().tier(follower_count, self._override(author))

    def handle(self, events: list[dict[str, Any]]) -> None:
        """One batch of events, in order, applied to Redis as one durable write."""
        events = well_formed(events)
        authors = [int(ev["tweet"]["author_id"]) if ev.get("type", "tweet") == "tweet" else int(ev["author_id"])
                   for ev in events if ev.get("type", "tweet") in ("tweet", "delete")]
        followers = self.follower_lists.of(authors)
        batch = plan(events, self.s, followers_of=followers.__getitem__, newest_of=self.store.newest_by_author_sync,
                     tier_of=self.tier_of, follows=self.store.is_following_sync)
        parked = self.writer.write(batch.entries, batch.tweets, removals=batch.removals, dropped=batch.dropped,
                                   notify=batch.notify, park_after_s=PARK_AFTER_S)
        if parked:
            self._park(parked)
        self.pull_registry.update(batch.tiers)
        if batch.throttled:   # queued before the offsets are committed: at-least-once
            self._produce_all(THROTTLED_TOPIC, [(str(ev["tweet"]["author_id"]).encode(), orjson.dumps(ev))
                                                for ev in batch.throttled])
        engagement = engagement_of(events)
        if engagement:        # likewise: a reply or retweet is counted however the API fared
            self._produce_all(ENGAGEMENT_TOPIC, [(ev["tweet_id"].encode(), orjson.dumps(ev)) for ev in engagement])
        TIMELINE_WRITES.inc(len(batch.entries))
        REDIS_RETRIES.set(self.writer.retries)
        self._observe_lag([t for t in batch.tweets if int(t["tweet_id"]) not in batch.requeued], batch.throttled)

    def _park(self, commands: list[Command]) -> None:
        """Queue timeline commands a shard did not take for the retry lane, keyed by their
        Redis key so that those of one timeline stay in order; before the batch is committed."""
        self._produce_all(RETRY_TOPIC, [
            (key.encode(), orjson.dumps({"key": key, "cmd": [a.decode() if isinstance(a, bytes) else a for a in cmd]}))
            for key, cmd in commands])
        PARKED.inc(len(commands))
        log.warning("parked %d timeline commands for shards that are down", len(commands))

    def _produce_all(self, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
        """Produce (key, value) `messages` and wait until Kafka has every one (raises if not:
        flush() only says the queue emptied, each delivery report says how)."""
        refused: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                refused.append(err)

        for key, value in messages:
            self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
        if self.producer.flush(30) > 0 or refused:
            raise RuntimeError(f"could not queue {len(messages)} messages to {topic}: {refused[:1]}")

    def run_retries(self) -> None:
        """The parked commands' lane: applied in order once their shard answers again. A shard
        that came back empty has no timelines to append to (they are rebuilt from the store)."""
        consumer = self._consumer("fanout-retry")
        writer = TimelineWriter(self.s.redis_nodes, self.s.timeline_cap, self.write_backoff)
        consumer.subscribe([RETRY_TOPIC])
        while self.running:
            msgs = consumer.consume(num_messages=500, timeout=0.2)
            commands = parked_commands(_decoded(msgs))
            deleted = self._deleted_among(commands)
            pending = [c for c in commands if _appended_tweet(c) not in deleted]
            left = writer.send(pending, deadline_s=RETRY_ROUND_S) if pending else []
            if left or not self.running:
                # Not applied (the shard is still down): read the batch again next round, which
                # keeps this consumer polling (and in its group) however long the outage lasts.
                if left:
                    log.warning("retry lane: %d of %d parked timeline commands not applied in %.0f s (last: %s); "
                                "reading them again", len(left), len(pending), RETRY_ROUND_S, writer.last_failure)
                for tp in _first_offsets(msgs):
                    consumer.seek(tp)
                continue
            if msgs:
                _commit(consumer)
            if pending:
                REPLAYED.inc(len(pending))
                log.warning("retry lane applied %d parked timeline commands", len(pending))
        consumer.close()

    def _deleted_among(self, commands: list[Command]) -> set[int]:
        """The tweets that parked timeline appends add and that were deleted since: their
        deletion fan-out may have reached the timelines first (directly, once the shard
        answered), so those appends are dropped. Each tweet is looked up once: a parked batch
        holds one tweet's appends to many timelines."""
        deleted: set[int] = set()
        for tweet_id in {t for t in map(_appended_tweet, commands) if t is not None}:
            try:
                if self.store.is_deleted_sync(tweet_id):
                    deleted.add(tweet_id)
            except Exception:  # noqa: BLE001 - the store away: apply it; hydration drops a deleted id
                log.warning("could not tell whether tweet %s was deleted; applying its parked appends", tweet_id)
        return deleted

    @staticmethod
    def _observe_lag(tweets: list[dict[str, Any]], skip: list[dict[str, Any]]) -> None:
        later = {ev["tweet"]["tweet_id"] for ev in skip}
        now_ms = time.time() * 1000
        for t in tweets:
            if t["tweet_id"] not in later:
                FANOUT_LAG.observe(max(0.0, (now_ms - timestamp_ms(int(t["tweet_id"]))) / 1000))

    def run_throttled(self) -> None:
        """The middle band's lane: its own consumer group and Redis connection, writes capped at
        `throttle_writes_per_s`, so a burst of large accounts never delays the push tier."""
        consumer = self._consumer("fanout-throttled")
        writer = TimelineWriter(self.s.redis_nodes, self.s.timeline_cap, self.write_backoff)
        lists = FollowerLists(writer.rc, self.store.followers_sync)   # this thread's own client
        pacer = SharedPacer(writer.rc)
        consumer.subscribe([THROTTLED_TOPIC])
        while self.running:
            msgs = consumer.consume(num_messages=50, timeout=0.2)
            for ev in _decoded(msgs):
                tweet = ev.get("tweet")
                if not isinstance(tweet, dict):
                    log.warning("throttled lane: skipping an event without a tweet: %.200r", ev)
                    continue
                until_done("throttled", functools.partial(self._fan_out_throttled, writer, pacer, lists, tweet,
                                                          requeued=bool(ev.get("requeued"))),
                           lambda: self.running, backoff=self.backoff)
            if msgs and self.running:
                _commit(consumer)
        consumer.close()

    def _fan_out_throttled(self, writer: TimelineWriter, pacer: SharedPacer, lists: FollowerLists,
                           tweet: dict[str, Any], *, requeued: bool = False) -> None:
        """Push one middle-band tweet. Its deletion fan-out runs on the main lane and may come
        before or during this one, removing only what was written by then; so a tweet deleted
        before its turn is not written (its entries are removed, in case this is a retry that
        wrote them), and one deleted while it was written is taken back out here. (The store
        marks a tweet deleted before its deletion is queued: either the check after the writes
        sees it, or the deletion fan-out runs after them.)"""
        tweet_id, author = int(tweet["tweet_id"]), int(tweet["author_id"])
        if tweet.get("retweet_of") is not None and self.s.defects.skip_retweet_fanout:
            return
        followers = [f for f in lists.of([author])[author]
                     if not dropped_by_defect(self.s.defects.drop_fanout_share, tweet_id, f)]
        entries = [(f, tweet_id) for f in followers]

        def deleted() -> bool:
            return not self.s.defects.skip_delete_fanout and self.store.is_deleted_sync(tweet_id)

        if not deleted():
            self._write_throttled(writer, pacer, entries, None if requeued else new_tweet_signal(tweet), tweet_id)
            if not deleted():
                if not requeued:   # a retry's tweet: its age is not a fan-out lag
                    FANOUT_LAG.observe(max(0.0, time.time() - timestamp_ms(tweet_id) / 1000))
                return
        writer.write([], [], removals=entries)

    def _write_throttled(self, writer: TimelineWriter, pacer: SharedPacer, entries: list[tuple[int, int]],
                         signal: bytes | None, tweet_id: int) -> None:
        """Middle band: the writes go out in slices of a tenth of a second's cap, paced across workers."""
        rate = self.policy().throttle_writes_per_s
        step = max(1, rate // 10)
        drop = self.s.defects.drop_signals_share
        for start in range(0, len(entries), step):
            chunk = entries[start:start + step]
            pacer.take(len(chunk), rate)
            notify = [] if signal is None else [(user, signal) for user, _ in chunk
                                                if not dropped_by_defect(drop, tweet_id, user)]
            writer.write(chunk, [], notify=notify)
            TIMELINE_WRITES.inc(len(chunk))

    def run_counters(self) -> None:
        CounterLane(self).run()

    def run(self) -> None:
        lanes = [threading.Thread(target=self.run_throttled, name="throttled-lane", daemon=True),
                 threading.Thread(target=self.run_counters, name="counter-lane", daemon=True),
                 threading.Thread(target=self.run_retries, name="retry-lane", daemon=True)]
        for lane in lanes:
            lane.start()
        self.consumer.subscribe([TWEETS_TOPIC])
        LagGauge(self.s.kafka, LANES, lambda: self.running)
        if self.metrics_port and self.s.peer_probe_ms and not self.s.defects.slow_failover:
            peers.PeerWatch(self.s.kafka, LANES, self.client_id, lambda: self.running,
                            probe_s=self.s.peer_probe_ms / 1000)
        while self.running:
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            if not msgs:
                continue
            events = _decoded(msgs)
            if events:
                until_done("fanout", functools.partial(self.handle, events), lambda: self.running,
                           backoff=self.backoff)
            if self.running:
                _commit(self.consumer)
        for lane in lanes:
            lane.join(timeout=10)
        self.consumer.close()
        self.store.close()


class CounterLane:
    """The counter aggregator: engagement events -> Redis (each member of each counter once,
    `EngagementCounter`), checkpointed to the Cassandra counter table every CHECKPOINT_S. A
    counter is one (tweet, counter name) pair: likes, retweets, unretweets, replies, unreplies
    (engagement.py), all monotonic, so what follows holds for each alike.

    Offsets are committed only after a checkpoint, so a successor re-reads whatever the store
    may lack. A checkpoint brings the store's count of each touched counter up to date: by the
    events counted here since the last one (`pending`), or up to the cache's count where that
    is higher. The cache's count covers an event counted in Redis just before a crash and
    re-delivered to the successor, which rightly does not count it again; `pending` covers a
    counter lost (or re-cached from the store, lower) since. Cassandra counters can only be
    incremented, so two lanes reconciling the same counter would both add: when partitions are
    taken away the lane checkpoints and commits first (a rebalance), or forgets what it has
    (partitions lost: another lane owns them already and re-reads the uncommitted events)."""

    def __init__(self, worker: FanoutWorker) -> None:
        self.worker = worker
        self.store = worker.store
        self.consumer = worker._consumer("counters")
        self.counter = EngagementCounter(worker.s.redis_nodes)
        self.pending: dict[CounterKey, int] = {}   # events counted since the last checkpoint
        self.touched: set[CounterKey] = set()      # counters with events since then, counted or re-read
        # Failed adds, which may have landed all the same: counter -> (its stored count if the add
        # landed, the pending events it carried). Settled by reading the store at the next checkpoint.
        self.unsettled: dict[CounterKey, tuple[int, int]] = {}
        self.recheck: set[CounterKey] = set()      # counters missing at the last checkpoint (see there)
        self.last_checkpoint = time.monotonic()
        self.session_timeout_s = worker.s.kafka_session_timeout_ms / 1000
        self.freezes = FreezeWatch()
        self.quiet_until = 0.0   # no checkpoint before then (after a freeze)

    def run(self) -> None:
        self.consumer.subscribe([ENGAGEMENT_TOPIC], on_revoke=self._revoked, on_lost=self._lost)
        while self.worker.running:
            started = time.monotonic()
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            for key, member, sent_t in to_count(_decoded(msgs), self.worker.s.defects):
                self.touched.add(key)
                base = functools.partial(self._base, key)
                counted = self.counter.count(key, member, base)   # retries on its own until Redis takes it
                if counted is Counted.NOW:
                    self.pending[key] = self.pending.get(key, 0) + 1
                if counted is not Counted.BEFORE:   # IN_BASE: counted by the rebuilt count, carried by _base's pending
                    COUNTED.labels(key[1]).inc()
                    COUNTER_LAG.observe(max(0.0, time.time() - sent_t))
            if msgs and not self.touched:
                _commit(self.consumer)   # nothing waits for a checkpoint
            # After the process was frozen long enough to miss heartbeats (even inside consume(),
            # which then hands out what it had fetched for partitions that may be someone else's
            # already) only a heartbeat tells whether the group moved on (on_lost): until a
            # session has passed, checkpointing could add events the new owner adds too. A lane
            # that only waited on Redis or the store kept heartbeating (librdkafka's own thread)
            # and checkpoints as usual: waiting a session then kept the likes of counters lost
            # with a shard unseen for 10 s after it came back (verify, 2026-12-05).
            now = time.monotonic()
            if may_have_lost_partitions(self.freezes.take(), now - started, self.session_timeout_s):
                self.quiet_until = now + self.session_timeout_s
            if (self.touched or self.recheck) and now >= self.quiet_until and now - self.last_checkpoint > CHECKPOINT_S:
                self._checkpoint_and_commit()
                self.last_checkpoint = time.monotonic()
        self.consumer.close()   # leaves the group: _revoked checkpoints first

    def _stored(self, keys: list[CounterKey]) -> dict[CounterKey, int]:
        rows = self.store.counts_sync(sorted({t for t, _ in keys}))
        return {(t, c): rows.get(t, {}).get(c, 0) for t, c in keys}

    def _base(self, key: CounterKey) -> Base:
        """A counter's count when it or its counted set is missing from the cache (expired, or
        lost with its shard): the store's checkpoint plus what this lane counted since. For a
        counter whose members the store records (each recorded before its event is queued: the
        likers, every retweet id made, every one undone, every reply, every one deleted), also
        those members, to be counted once more never: a like, retweet or reply has its event
        sent twice or more (the API queues a repeated one again; the fan-out lane sends
        replies' and retweets' again), and after a shard came back
        empty one was counted twice (a tweet showed 8 retweets for 7: verify, 2026-12-05). The
        count is then at least theirs, so the members must be all the counter ever counts: with
        the standing retweets alone, a retweet made after the wipe passed for one the rebuilt
        count held when as many had been undone meanwhile (9 shown for 10)."""
        COUNTER_BASES.labels(key[1]).inc()
        stored = self._stored([key])[key]
        self._settle({key: stored}, decide=False)
        count = stored + self.pending.get(key, 0)
        if key[1] not in MEMBERS_IN_STORE:
            return Base(count)
        members = MEMBERS_IN_STORE[key[1]](self.store, key[0])
        base = Base(max(count, len(members)), members)
        # What the rebuilt counter holds beyond the store must reach the store even if the counter
        # is lost again before the next checkpoint: as if counted here since.
        self.pending[key] = base.count - stored
        return base

    def _settle(self, stored: dict[CounterKey, int], *, decide: bool) -> None:
        """Failed adds (`unsettled`) whose count reached the store landed: the events they
        carried are stored. With `decide`, the others are taken as lost (the driver gave up on
        them a checkpoint ago) and their events are added again."""
        for k in [k for k in self.unsettled if k in stored]:
            landed_at, carried = self.unsettled[k]
            if stored[k] >= landed_at:
                self.pending[k] = self.pending.get(k, 0) - carried
                del self.unsettled[k]
            elif decide:
                del self.unsettled[k]

    def _revoked(self, consumer: Consumer, partitions: list[Any]) -> None:
        if self.touched and not self._checkpoint_and_commit():
            self._lost(consumer, partitions)   # the next owner re-reads them and reconciles

    def _lost(self, _consumer: Consumer, _partitions: list[Any]) -> None:
        self.pending, self.touched, self.unsettled, self.recheck = {}, set(), {}, set()

    def _checkpoint_and_commit(self) -> bool:
        """Checkpoint every touched counter, then commit. A counter whose add failed stays for
        the next checkpoint (its delta is computed again then); one whose add succeeded is done,
        whatever fails after it. A failed add may have landed all the same (a timeout; counter
        updates are not idempotent, so it must not simply be made again): the next checkpoint
        reads the store, and the add landed if the count got there (this lane is the only
        writer of its tweets' counts). False (and logged) when some counter could not be
        checkpointed.

        Then each cached counter below the store's new count is raised to it, a missing one too
        (raising creates nothing): a reader may cache a lost counter from a store count it read
        before the add, at any moment. A counter missing when this checkpoint read it is looked
        at once more at the next one, for a reader that cached it after the raise (shard-lost
        showed a retweet at 0 for good: its counter was re-cached at 0 right after the heal, while
        the checkpoint that stored it raised only the counters it had seen)."""
        keys = sorted(self.touched)
        rechecked = sorted(self.recheck - self.touched)   # raised only: their events are stored
        try:
            live = self.counter.counts(keys + rechecked)
            stored = self._stored(keys + rechecked)
        except Exception:  # noqa: BLE001 - kept, and tried again at the next checkpoint
            log.warning("counter checkpoint failed; will retry", exc_info=True)
            return False
        self._settle(stored, decide=True)
        deltas = {k: max(live.get(k, 0) - stored[k], self.pending.get(k, 0)) for k in keys}
        try:
            failed = self.store.add_counts_sync(deltas)
        except Exception:  # noqa: BLE001 - e.g. the session shut down: nothing known to be added
            log.warning("counter checkpoint failed; will retry", exc_info=True)
            failed = {k for k, d in deltas.items() if d}
        for k in keys:
            if k in failed:
                self.unsettled[k] = (stored[k] + deltas[k], self.pending.get(k, 0))
            else:
                self.touched.discard(k)
                self.pending.pop(k, None)
        raised = {k: n for k, d in deltas.items() if k not in failed and live.get(k, -1) < (n := stored[k] + d)}
        raised.update({k: stored[k] for k in rechecked if k in live and live[k] < stored[k]})
        self.recheck = {k for k in keys if k not in failed and k not in live}
        try:
            self.counter.raise_to(raised)
        except Exception:  # noqa: BLE001 - best effort: the missing ones are looked at again next time
            log.warning("raising counters to the store's count failed", exc_info=True)
        if failed:
            log.warning("counter checkpoint failed for %d counters (perhaps applied: the next one reads the store"
                        " first); will retry", len(failed))
            return False
        _commit(self.consumer)
        return True


def may_have_lost_partitions(frozen_s: float, iteration_s: float, session_timeout_s: float) -> bool:
    """Whether a lane's group may have moved its partitions on during its last iteration: the
    process was frozen for half a session (heartbeats come every second), or the lane did
    not poll for half of max.poll.interval.ms."""
    return frozen_s > session_timeout_s / 2 or iteration_s > MAX_POLL_INTERVAL_MS / 1000 / 2


def parked_commands(events: list[dict[str, Any]]) -> list[Command]:
    """The timeline commands of parked-write events; anything else is logged and skipped."""
    commands: list[Command] = []
    for ev in events:
        key, cmd = ev.get("key"), ev.get("cmd")
        if isinstance(key, str) and isinstance(cmd, list) and cmd and all(
                isinstance(a, str | int | float) for a in cmd):
            commands.append((key, tuple(cmd)))
        else:
            log.warning("retry lane: skipping a malformed parked command: %.200r", ev)
    return commands


def _appended_tweet(command: Command) -> int | None:
    """The tweet a timeline append command adds, or None for any other command."""
    _, cmd = command
    return int(cmd[5]) if cmd[0] == "EVAL" and cmd[1] == APPEND_SCRIPT else None


def _first_offsets(msgs: list[Any]) -> list[TopicPartition]:
    """Where each partition of a consumed batch began."""
    first: dict[tuple[str, int], int] = {}
    for m in msgs:
        if m.error():
            continue
        k = (m.topic(), m.partition())
        first[k] = min(first.get(k, m.offset()), m.offset())
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


def _decoded(msgs: list[Any]) -> list[dict[str, Any]]:
    """The JSON payloads of Kafka messages `msgs`; an error is logged and skipped."""
    values = []
    for m in msgs:
        value = m.value()
        if m.error() or value is None:
            log.warning("kafka: skipping message: %s", m.error())
            continue
        values.append(value)
    return decode_events(values)


def decode_events(values: list[bytes]) -> list[dict[str, Any]]:
    """JSON objects from message payloads; anything else is logged and skipped (a payload
    that cannot be read must not stop a lane)."""
    events = []
    for value in values:
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            log.warning("kafka: skipping a message that is not a JSON object: %.200r", value)
    return events


class LagGauge:
    """Each consumer group's lag (high watermarks - committed offsets, over its topic's
    partitions), every `every_s`, from a thread and consumers of its own that never join their
    group (one per group, as harness/settle.py reads lag): nothing the lanes do can stall it.
    (It asked each lane's own consumer before: after a shard came back the retry lane's gauge
    stopped for good at a value from the outage, its thread blocked in
    `Consumer.assignment()`, while the group's committed offsets had reached the watermarks.
    The admin client's list_consumer_group_offsets is not used: librdkafka 2.16 crashed the
    worker with SIGSEGV in it at start-up, before the groups had a coordinator.) Every worker
    process reports whole groups; the harness takes the max per group."""

    def __init__(self, bootstrap: str, lanes: dict[str, str], running: Callable[[], bool],
                 every_s: float = 2.0) -> None:
        self.readers = {group: (Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                          "enable.auto.commit": False, "client.id": f"lag-{group}"}), topic)
                        for group, topic in lanes.items()}
        self.running, self.every_s = running, every_s
        threading.Thread(target=self._run, name="consumer-lag", daemon=True).start()

    def _run(self) -> None:
        while self.running():
            for group in self.readers:
                try:
                    self.update(group)
                except Exception:  # noqa: BLE001 - a gauge that dies would report its last value for ever
                    log.warning("consumer lag of %s not measured this time", group, exc_info=True)
            time.sleep(self.every_s)
        for reader, _ in self.readers.values():
            reader.close()

    def update(self, group: str) -> None:
        reader, topic = self.readers[group]
        meta = reader.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        lag = 0
        for tp in reader.committed([TopicPartition(topic, p) for p in sorted(meta.partitions)], timeout=5):
            low, high = reader.get_watermark_offsets(tp, timeout=5, cached=False)
            done = tp.offset if tp.offset >= 0 else max(low, 0)   # nothing committed yet: all of it
            lag += max(0, high - done)
        CONSUMER_LAG.labels(group).set(lag)


def until_done(what: str, step: Callable[[], None], running: Callable[[], bool],
               sleep: Callable[[float], None] = time.sleep, backoff: tuple[float, float] = (0.1, 5.0)) -> bool:
    """Run `step` until it succeeds (or the worker stops), waiting `backoff` (first, at most:
    doubling) between attempts. A batch is never skipped: the consumer's position is already
    past it, so giving up would lose it until a rebalance. Returns whether it succeeded."""
    delay, most = backoff
    while running():
        try:
            step()
            return True
        except Exception:  # noqa: BLE001 - a store or cache away: log, back off, same batch again
            RETRIED.labels(what).inc()
            log.warning("%s failed; retrying the same batch in %.1f s", what, delay, exc_info=True)
            sleep(delay)
            delay = min(delay * 2, most)
    return False


# The batch's partitions are no longer this consumer's (its session expired, say the process
# was frozen, and the group moved them on): no retry can commit, and the new owner re-reads
# from the last committed offset, which the idempotent writes make safe.
_NOT_OURS = {KafkaError._ASSIGNMENT_LOST, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
             KafkaError.REBALANCE_IN_PROGRESS, KafkaError.FENCED_INSTANCE_ID}


def _commit(consumer: Consumer) -> None:
    while True:
        try:
            done = consumer.commit(asynchronous=False) or []
            refused = [tp for tp in done if tp.error is not None]
            if refused:   # per-partition failures come back in the list, not as an exception
                log.warning("commit refused for %d partition(s): %s", len(refused),
                            ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}: {tp.error}" for tp in refused[:3]))
            return
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args and isinstance(exc.args[0], KafkaError) else None
            if code == KafkaError._NO_OFFSET:
                return
            if code in _NOT_OURS:
                log.warning("commit skipped, the partitions moved to another consumer: %s", exc)
                return
            log.warning("commit failed, retrying: %s", exc)
            time.sleep(0.2)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kafka-python (the peer watch's admin client) logs each connection at INFO and its event
    # loop's slow tasks at WARNING (at nice 19 under load, many); the watch logs what matters.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = Settings.from_env()
    metrics_port = int(os.environ["FEED_METRICS_PORT"])
    start_http_server(metrics_port, addr="127.0.0.1")
    worker = FanoutWorker(settings, metrics_port)

    def stop(*_: object) -> None:
        worker.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("fan-out worker started (push < %d <= pull)", settings.pull_threshold)
    worker.run()


if __name__ == "__main__":
    main()
