"""The fan-out worker: one member of the `fanout` Kafka consumer group.

For each tweet event: look up the author's followers (store, cached briefly in-process), and
unless the author is in the pull tier (followers >= pull threshold, served at read time),
insert the tweet id into every follower's timeline and the author's own. Offsets are committed
only after the timeline writes of the whole batch are durable (TimelineWriter), so a worker
killed mid-batch loses nothing: its successor re-reads from the last commit (at-least-once,
idempotent writes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from targets.feed.cache import TimelineWriter
from targets.feed.settings import Settings
from targets.feed.snowflake import timestamp_ms
from targets.feed.store import Store

log = logging.getLogger("feed.worker")

FANOUT_LAG = Histogram("feed_fanout_lag_seconds", "Tweet age when its timeline writes became durable",
                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
TIMELINE_WRITES = Counter("feed_timeline_writes_total", "Timeline entries written")
EVENTS = Counter("feed_fanout_events_total", "Tweet events consumed", ["tier"])
DROPPED = Counter("feed_fanout_defect_dropped_total", "Timeline writes skipped by the drop-fanout defect")
REDIS_RETRIES = Gauge("feed_fanout_redis_retries", "Batches re-sent to Redis since start")

FOLLOWER_TTL_S = 5.0


def dropped_by_defect(share: float, tweet_id: int, follower: int) -> bool:
    """Deterministic: the same (tweet, follower) pairs are dropped on every retry."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{tweet_id}:{follower}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32 < share


class FanoutWorker:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.store = Store(settings.cassandra)
        self.writer = TimelineWriter(settings.redis_nodes, settings.timeline_cap)
        self._followers: dict[int, tuple[float, list[int]]] = {}
        self.consumer = Consumer({
            "bootstrap.servers": settings.kafka, "group.id": "fanout", "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka_heartbeat_ms, "max.poll.interval.ms": 300000,
        })
        self.running = True

    def followers(self, author: int) -> list[int]:
        now = time.monotonic()
        hit = self._followers.get(author)
        if hit and now - hit[0] < FOLLOWER_TTL_S:
            return hit[1]
        got = self.store.followers_sync(author)
        self._followers[author] = (now, got)
        return got

    def handle(self, events: list[dict[str, Any]]) -> None:
        entries: list[tuple[int, int]] = []
        tweets = []
        for ev in events:
            tweet = ev["tweet"]
            tweet_id, author = int(tweet["tweet_id"]), int(tweet["author_id"])
            tweets.append(tweet)
            entries.append((author, tweet_id))
            followers = self.followers(author)
            if len(followers) >= self.s.pull_threshold:
                EVENTS.labels("pull").inc()
                continue
            EVENTS.labels("push").inc()
            for f in followers:
                if dropped_by_defect(self.s.defects.drop_fanout_share, tweet_id, f):
                    DROPPED.inc()
                    continue
                entries.append((f, tweet_id))
        self.writer.write(entries, tweets)
        TIMELINE_WRITES.inc(len(entries))
        REDIS_RETRIES.set(self.writer.retries)
        now_ms = time.time() * 1000
        for t in tweets:
            FANOUT_LAG.observe(max(0.0, (now_ms - timestamp_ms(int(t["tweet_id"]))) / 1000))

    def run(self) -> None:
        self.consumer.subscribe(["tweets"])
        while self.running:
            msgs = self.consumer.consume(num_messages=500, timeout=0.2)
            if not msgs:
                continue
            events = []
            for m in msgs:
                value = m.value()
                if m.error() or value is None:
                    log.warning("kafka: skipping message: %s", m.error())
                    continue
                events.append(orjson.loads(value))
            if events:
                self.handle(events)
            while True:
                try:
                    self.consumer.commit(asynchronous=False)
                    break
                except KafkaException as exc:
                    if "NO_OFFSET" in str(exc):
                        break
                    log.warning("commit failed, retrying: %s", exc)
                    time.sleep(0.2)
        self.consumer.close()
        self.store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    start_http_server(int(os.environ["FEED_METRICS_PORT"]), addr="127.0.0.1")
    worker = FanoutWorker(settings)

    def stop(*_: object) -> None:
        worker.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("fan-out worker started (push < %d <= pull)", settings.pull_threshold)
    worker.run()


if __name__ == "__main__":
    main()
