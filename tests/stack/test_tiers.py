"""Tiered fan-out on the real stack: push, throttled lane, pull merged at read time."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import redis

from harness.settle import LANES, consumer_lag
from targets.feed.cache import preheat
from targets.feed.store import Store
from tests.stack.conftest import Stack, eventually, feed_ids, post

pytestmark = pytest.mark.stack

CONFIG_TTL_S = 5.0   # how often workers re-read runtime_config (targets/feed/worker.py)



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
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """The deletion fan-out (main lane) overtakes the throttled lane still writing the tweet."""
    author, followers = 802, [210000 + i for i in range(300)]
    store.bulk_follow([(f, author) for f in followers])
    preheat(stack.topo.redis_proxy_addresses(), followers)
    store.set_runtime_config_sync("fanout.throttle_writes_per_s", "50")   # 300 followers: 6 s
    try:
        time.sleep(CONFIG_TTL_S + 1)
        tid = post(client, stack, author, "deleted while on its way")
        assert eventually(lambda: in_timeline(rc, followers[0], tid))        # the lane has begun
        assert client.delete(f"/v1/tweets/{tid}", headers=stack.auth(author)).status_code == 200
        bootstrap = f"127.0.0.1:{stack.topo.kafka_proxy_port}"
        assert eventually(lambda: all(consumer_lag(bootstrap, group, topic) == 0 for group, topic in LANES),
                          within_s=30)
        assert [f for f in followers if in_timeline(rc, f, tid)] == []
    finally:
        store.set_runtime_config_sync("fanout.throttle_writes_per_s", "5000")
        time.sleep(CONFIG_TTL_S + 1)


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
