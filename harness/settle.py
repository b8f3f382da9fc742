"""Settling: after the load stops, wait until the fan-out group has consumed everything."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from harness.topology import TWEETS_PARTITIONS, TWEETS_TOPIC


def consumer_lag(bootstrap: str, group: str = "fanout") -> int:
    """Messages in the tweets topic not yet committed by `group` (read without joining it)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "client.id": f"feedlab-lag-{uuid.uuid4().hex[:6]}"})
    try:
        parts = [TopicPartition(TWEETS_TOPIC, p) for p in range(TWEETS_PARTITIONS)]
        committed = c.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(TWEETS_TOPIC, tp.partition), timeout=10)
            done = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - done)
        return lag
    finally:
        c.close()


def wait_for_fanout(bootstrap: str, deadline_s: float) -> tuple[bool, int, float]:
    """(drained, last lag seen, seconds waited)."""
    start = time.monotonic()
    lag = -1
    while time.monotonic() - start < deadline_s:
        try:
            lag = consumer_lag(bootstrap)
        except Exception:  # noqa: BLE001 - Kafka briefly unreachable: keep waiting
            lag = -1
        if lag == 0:
            return True, 0, time.monotonic() - start
        time.sleep(0.5)
    return False, lag, time.monotonic() - start
