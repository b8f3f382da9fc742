"""Settling: after the load stops, wait until the fan-out group has consumed everything."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from harness.topology import ENGAGEMENT_TOPIC, RETRY_TOPIC, THROTTLED_TOPIC, TWEETS_PARTITIONS, TWEETS_TOPIC

# The target's consumer groups and their topics, in the order events flow through them: the
# main lane hands the middle band's tweets on to the throttled lane.
LANES = (("fanout", TWEETS_TOPIC), ("fanout-throttled", THROTTLED_TOPIC), ("counters", ENGAGEMENT_TOPIC),
         ("fanout-retry", RETRY_TOPIC))


def consumer_lag(bootstrap: str, group: str = "fanout", topic: str = TWEETS_TOPIC) -> int:
    """Messages in `topic` not yet committed by `group` (read without joining the group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "client.id": f"feedlab-lag-{uuid.uuid4().hex[:6]}"})
    try:
        parts = [TopicPartition(topic, p) for p in range(TWEETS_PARTITIONS)]
        committed = c.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            done = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - done)
        return lag
    finally:
        c.close()


def wait_for_fanout(bootstrap: str, deadline_s: float) -> tuple[bool, int, float]:
    """Until every lane has consumed everything: (drained, last total lag seen, seconds waited).
    Lanes are read in flow order, so a drained main lane has handed on all it will."""
    start = time.monotonic()
    lag = -1
    while time.monotonic() - start < deadline_s:
        try:
            lag = sum(consumer_lag(bootstrap, group, topic) for group, topic in LANES)
        except Exception:  # noqa: BLE001 - Kafka briefly unreachable: keep waiting
            lag = -1
        if lag == 0:
            return True, 0, time.monotonic() - start
        time.sleep(0.5)
    return False, lag, time.monotonic() - start
