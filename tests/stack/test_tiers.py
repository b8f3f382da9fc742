"""Tiered fan-out on the real stack: push, throttled lane, pull merged at read time."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from harness.topology import THROTTLED_TOPIC, TWEETS_PARTITIONS
from targets.feed.cache import TimelineWriter, preheat
from targets.feed.settings import THROTTLE_WRITES_PER_S
from targets.feed.store import Store
from targets.feed.tiers import THROTTLE_KEY, SharedPacer
from tests.stack.conftest import Stack, drained, eventually, feed_ids, post

pytestmark = pytest.mark.stack

CONFIG_TTL_S = 5.0   # how often workers re-read runtime_config (targets/feed/worker.py)
SLOW_THROTTLE = 50   # timeline writes/s: slow enough to watch a middle-band tweet on its way


@pytest.fixture
def slow_throttle(store: Store) -> Iterator[int]:
    """The middle band's cap at SLOW_THROTTLE writes/s for one test, then back to the default."""
    store.set_runtime_config_sync("fanout.throttle_writes_per_s", str(SLOW_THROTTLE))
    time.sleep(CONFIG_TTL_S + 1)
    try:
        yield SLOW_THROTTLE
    finally:
        store.set_runtime_config_sync("fanout.throttle_writes_per_s", str(THROTTLE_WRITES_PER_S))
        time.sleep(CONFIG_TTL_S + 1)


def throttled_partitions_by_worker(stack: Stack) -> list[set[int]]:
    """The partitions of the middle band's topic that each worker's throttled lane owns."""
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{stack.topo.kafka_proxy_port}"})
    group = admin.describe_consumer_groups(["fanout-throttled"], request_timeout=5)["fanout-throttled"].result()
    return [{tp.partition for tp in m.assignment.topic_partitions if tp.topic == THROTTLED_TOPIC}
            for m in group.members]


def throttle_waited(stack: Stack) -> float:
    """Seconds the stack's workers have waited for the shared write cap."""
    texts = [httpx.get(f"http://127.0.0.1:{stack.topo.worker_metrics_port(i)}/metrics", timeout=5).text
             for i in range(1, len(stack.topo.worker_names()) + 1)]
    return sum(sample.value for text in texts for family in text_string_to_metric_families(text)
               if family.name == "feed_fanout_throttle_wait_seconds" for sample in family.samples
               if sample.name.endswith("_total") and sample.labels == {"schedule": "shared"})


def partition_of(author: int) -> int:
    """Where the worker's producer puts an author's middle-band events: librdkafka's default
    partitioner (`consistent_random`) takes the CRC-32 of the key."""
    return zlib.crc32(str(author).encode()) % TWEETS_PARTITIONS



def in_timeline(rc: redis.RedisCluster, user: int, tweet_id: str) -> bool:
    return rc.zscore(f"timeline:{{{user}}}", tweet_id) is not None


def test_middle_band_tweets_reach_every_follower_through_the_throttled_lane(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    author, followers = 801, [200000 + i for i in range(300)]   # 300: between push (200) and pull (1000)
    store.bulk_follow([(f, author) for f in followers])
    preheat(stack.topo.redis_proxy_addresses(), followers)     # fan-out appends to existing timelines
    tid = post(client, stack, author, "middle band")
    assert eventually(lambda: all(in_timeline(rc, f, tid) for f in followers[::30]), within_s=20)
    assert eventually(lambda: in_timeline(rc, followers[-1], tid))
    assert author not in store.pull_tier_sync()


def test_a_middle_band_tweet_deleted_while_the_throttled_lane_pushes_it_leaves_every_timeline(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster, slow_throttle: int) -> None:
    """The deletion fan-out (main lane) overtakes the throttled lane still writing the tweet."""
    author, followers = 802, [210000 + i for i in range(300)]   # 300 followers at 50/s: 6 s
    store.bulk_follow([(f, author) for f in followers])
    preheat(stack.topo.redis_proxy_addresses(), followers)
    tid = post(client, stack, author, "deleted while on its way")
    assert eventually(lambda: in_timeline(rc, followers[0], tid))        # the lane has begun
    assert client.delete(f"/v1/tweets/{tid}", headers=stack.auth(author)).status_code == 200
    assert drained(stack, within_s=30)
    assert [f for f in followers if in_timeline(rc, f, tid)] == []


def test_the_throttle_caps_the_middle_band_across_workers(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster, slow_throttle: int) -> None:
    """Two middle-band tweets handled by different workers share one cap: adding workers must
    not multiply the write rate the cap bounds. 500 writes at 50/s take 10 s; with a cap per
    worker they took 5. (A lower bound on time: a slow machine only makes it longer.)"""
    owned = throttled_partitions_by_worker(stack)
    assert len(owned) == 2 and all(owned)
    authors = [next(a for a in range(830, 900) if partition_of(a) in partitions) for partitions in owned]
    followers = {a: [base + i for i in range(250)] for a, base in zip(authors, (220000, 230000), strict=True)}
    store.bulk_follow([(f, a) for a in authors for f in followers[a]])
    preheat(stack.topo.redis_proxy_addresses(), [f for fs in followers.values() for f in fs])
    waited = throttle_waited(stack)
    start = time.monotonic()
    tids = {a: post(client, stack, a, "one of two middle-band tweets at once") for a in authors}
    assert eventually(lambda: all(in_timeline(rc, f, tids[a]) for a in authors for f in followers[a]),
                      within_s=60)
    took = time.monotonic() - start
    writes = sum(len(fs) for fs in followers.values())
    assert took > 0.8 * writes / slow_throttle, f"{writes} writes in {took:.1f} s: over the cap of {slow_throttle}/s"
    assert throttle_waited(stack) - waited > 0.5 * writes / slow_throttle   # and the wait is in the metrics


def test_a_pinned_pull_author_is_merged_at_read_time_not_pushed(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_api: Callable[[dict[str, str]], str]) -> None:
    author, reader = 811, 812
    preheat(stack.topo.redis_proxy_addresses(), [reader])   # as seeded users: no rebuild on a miss
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))   # before the pin: no backfill
    store.set_tier_override_sync(author, "pull")                               # that could race the post
    tid = post(client, stack, author, "from the pull tier")
    assert eventually(lambda: author in store.pull_tier_sync())
    time.sleep(2.5)   # the API's registry cache
    assert eventually(lambda: tid in feed_ids(client, stack, reader))
    assert not in_timeline(rc, reader, tid)          # never pushed
    with httpx.Client(base_url=sibling_api({"FEED_DEFECT_BREAK_CELEBRITY_MERGE": "1"}), timeout=10) as broken:
        assert tid not in feed_ids(broken, stack, reader)


def test_thresholds_are_runtime_configuration(client: httpx.Client, stack: Stack, store: Store,
                                              rc: redis.RedisCluster) -> None:
    author, readers = 821, [822, 823, 824]
    preheat(stack.topo.redis_proxy_addresses(), readers)
    for r in readers:
        client.post(f"/v1/users/{author}/follow", headers=stack.auth(r))
    store.set_runtime_config_sync("fanout.push_threshold", "2")
    store.set_runtime_config_sync("fanout.pull_threshold", "3")
    try:
        time.sleep(CONFIG_TTL_S + 1)
        tid = post(client, stack, author, "three followers is a crowd now")
        assert eventually(lambda: author in store.pull_tier_sync())
        assert not any(in_timeline(rc, r, tid) for r in readers)
    finally:
        store.set_runtime_config_sync("fanout.push_threshold", "200")
        store.set_runtime_config_sync("fanout.pull_threshold", "1000")
        time.sleep(CONFIG_TTL_S + 1)


def test_the_shared_schedule_paces_in_exact_microseconds_and_outlives_a_clock_stepped_back(
        rc: redis.RedisCluster) -> None:
    slept: list[float] = []
    pacer = SharedPacer(rc, sleep=slept.append)
    rc.set(THROTTLE_KEY, str(int((time.time() + 3600) * 1e6)))   # written before the clock stepped back an hour
    pacer.take(100, 1000)
    pacer.take(100, 1000)              # the schedule restarted from now, 0.1 s for the first slot
    assert slept[:1] == [] or slept[0] < 0.2, slept
    assert 0.05 < slept[-1] <= 0.1, slept
    assert re.fullmatch(r"[0-9]{16}", str(rc.get(THROTTLE_KEY))), "the schedule lost precision"


def test_the_pacer_paces_alone_while_the_shared_schedule_hangs(stack: Stack) -> None:
    """The schedule's shard stops answering (its proxy drops everything; no failover, the node is
    alive): the lane neither stops nor runs uncapped. It paces itself alone, and does not wait
    out the cluster client's timeouts and retries again at every slice."""
    rc = TimelineWriter(stack.topo.redis_proxy_addresses(), 800).rc   # the throttled lane's client
    node = rc.get_node_from_key(THROTTLE_KEY)
    shard = next(i for i in range(1, len(stack.topo.redis_names()) + 1) if stack.topo.redis_proxy_port(i) == node.port)
    pacer = SharedPacer(rc)
    try:
        with stack.runtime.toxiproxy.client.toxic(f"redis-{shard}", "hang", "timeout", "upstream", timeout=0):
            started = time.monotonic()
            pacer.take(100, 1000)          # fails over to pacing alone, after the client gives up
            failed_over = time.monotonic()
            for _ in range(3):
                pacer.take(100, 1000)      # 0.1 s each at this worker's own cap
            done = time.monotonic()
    finally:
        rc.close()
    print(f"gave up on the schedule in {failed_over - started:.1f} s; 3 slices alone in {done - failed_over:.2f} s")
    assert 0.25 < done - failed_over < 1.0
