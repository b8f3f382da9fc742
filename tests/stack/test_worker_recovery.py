"""A fan-out worker frozen past its Kafka session (a long GC pause, SIGSTOP, a partition) is
evicted from its consumer groups; thawed, it must take its share of every lane again."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer

from harness.topology import TWEETS_TOPIC
from targets.feed.cache import preheat
from targets.feed.worker import _commit
from tests.stack.conftest import Stack, eventually, feed_ids, group_sizes, post

pytestmark = pytest.mark.stack


def test_a_worker_frozen_past_its_kafka_session_rejoins_every_lane(client: httpx.Client, stack: Stack) -> None:
    author, reader = 1701, 1702
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    assert eventually(lambda: post(client, stack, author, "warm") in feed_ids(client, stack, reader))
    workers = len(stack.topo.worker_names())
    # Tweets in flight as it freezes: a batch it was handling then commits into a lost
    # assignment, which it used to retry forever, its main lane dead for good (whether a batch
    # is in flight is timing; the next test forces that case).
    busy = [post(client, stack, author, f"in flight {i}") for i in range(10)]
    kafka_log = stack.runtime.log_path("kafka")
    already = kafka_log.stat().st_size
    stack.runtime.pause("worker-1")
    try:
        assert eventually(lambda: group_sizes(stack)["fanout"] == workers - 1, within_s=30)   # evicted
        # by its session's end: its peers still reach its port, so they leave it alone
        removals = removals_of(kafka_log, already, stack.topo.worker_metrics_port(1))
        assert removals and all("on heartbeat expiration" in line for line in removals), removals
        during = post(client, stack, author, "while it is frozen")
        assert eventually(lambda: {*busy, during} <= set(feed_ids(client, stack, reader)), within_s=30)
    finally:
        stack.runtime.resume("worker-1")
    assert eventually(lambda: set(group_sizes(stack).values()) == {workers}, within_s=60)
    after = post(client, stack, author, "after the thaw")
    assert eventually(lambda: after in feed_ids(client, stack, reader))


def removals_of(kafka_log: Path, since: int, metrics_port: int) -> list[str]:
    """The coordinator's lines, after byte `since`, that remove a member of the worker whose
    metrics port this is ("... on LeaveGroup" or "... on heartbeat expiration")."""
    with kafka_log.open() as f:
        f.seek(since)
        return [line for line in f if f"removing member fanout-worker@{metrics_port}#" in line.lower()]


def test_a_commit_after_losing_the_partitions_gives_up_instead_of_retrying_forever(
        client: httpx.Client, stack: Stack) -> None:
    """The deterministic form of the above: a consumer that stopped polling for longer than
    max.poll.interval.ms has left its group, and its commit can never succeed."""
    post(client, stack, 1711, "something to consume")
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{stack.topo.kafka_proxy_port}",
                         "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                         "max.poll.interval.ms": 10000})
    committing = threading.Thread()
    try:
        consumer.subscribe([TWEETS_TOPIC])
        assert eventually(lambda: bool(consumer.consume(num_messages=1, timeout=1)), within_s=30)
        time.sleep(12)   # no poll: past max.poll.interval.ms, the consumer leaves its group
        consumer.poll(0)
        committing = threading.Thread(target=_commit, args=(consumer,), daemon=True)
        committing.start()
        committing.join(timeout=10)
        assert not committing.is_alive(), "the commit kept retrying after the assignment was lost"
    finally:
        if not committing.is_alive():   # else it is still using the consumer: leave both to exit
            consumer.close()


def test_a_malformed_event_does_not_stop_fan_out_behind_it(client: httpx.Client, stack: Stack) -> None:
    """A message the lane can never apply, in the author's partition ahead of a real tweet."""
    from confluent_kafka import Producer

    author, reader = 1731, 1732
    preheat(stack.topo.redis_proxy_addresses(), [reader])   # as a seeded user: no store fan-in on a miss
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{stack.topo.kafka_proxy_port}"})
    producer.produce(TWEETS_TOPIC, key=str(author).encode(), value=b'{"type": "delete", "author_id": "1731"}')
    assert producer.flush(10) == 0
    tid = post(client, stack, author, "behind a malformed event")
    assert eventually(lambda: tid in feed_ids(client, stack, reader), within_s=15)


def test_a_killed_worker_is_removed_from_every_group_by_its_peers_not_by_its_session(
        client: httpx.Client, stack: Stack) -> None:
    """SIGKILL leaves a worker no time to leave its groups, and Kafka would hand its partitions on
    only when its session ends. Its peers see its metrics port refuse connections and remove its
    members on its behalf (targets/feed/peers.py): the coordinator logs each removal as a
    LeaveGroup, where a session's end is a heartbeat expiration."""
    author, reader = 1741, 1742
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    assert eventually(lambda: post(client, stack, author, "warm") in feed_ids(client, stack, reader))
    workers = len(stack.topo.worker_names())
    kafka_log = stack.runtime.log_path("kafka")
    already = kafka_log.stat().st_size
    stack.runtime.kill("worker-1")
    try:
        assert eventually(lambda: set(group_sizes(stack).values()) == {workers - 1}, within_s=30)
        removals = removals_of(kafka_log, already, stack.topo.worker_metrics_port(1))
        how = {group: [line for line in removals if f"rebalance group {group} " in line]
               for group in group_sizes(stack)}
        assert all(lines for lines in how.values()), f"no removal logged for some groups: {how}"
        assert all("on LeaveGroup" in line for line in removals), removals   # not "on heartbeat expiration"
        during = post(client, stack, author, "while it is dead")
        assert eventually(lambda: during in feed_ids(client, stack, reader), within_s=30)
    finally:
        stack.runtime.restart("worker-1")
    assert eventually(lambda: set(group_sizes(stack).values()) == {workers}, within_s=60)
