"""Missing timelines: preheated for active users, and rebuilt once (per process) when reads miss."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from targets.feed.cache import SENTINEL, timeline_key
from targets.feed.preheat import BUCKETS, FLUSH_S, SCAN_S, active_key
from tests.stack.conftest import Stack, eventually, feed_ids, post

pytestmark = pytest.mark.stack


def test_a_missing_timeline_of_an_active_user_is_rebuilt_without_a_read(client: httpx.Client, stack: Stack,
                                                                         rc: redis.RedisCluster) -> None:
    author, reader = 1501, 1502
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tid = post(client, stack, author, "preheated")
    assert eventually(lambda: tid in feed_ids(client, stack, reader))   # the reader is now active
    assert eventually(lambda: rc.zscore(active_key(reader % BUCKETS), str(reader)) is not None, 3 * FLUSH_S)

    rc.delete(timeline_key(reader))   # as if its shard had restarted empty
    assert eventually(lambda: rc.zscore(timeline_key(reader), tid) is not None, within_s=4 * SCAN_S)


def rebuilds(metrics: str) -> float:
    """Timeline rebuilds started after a read missed (this process)."""
    for line in metrics.splitlines():
        if line.startswith("feed_timeline_rebuilds_total "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_concurrent_reads_of_a_missing_timeline_start_one_rebuild(client: httpx.Client, stack: Stack,
                                                                  rc: redis.RedisCluster) -> None:
    """Every reader is served from the store meanwhile; the rebuild itself runs once."""
    author, reader = 1601, 1602
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    rc.zadd(timeline_key(reader), {SENTINEL: 0})   # a timeline exists, without a read that would make
    tid = post(client, stack, author, "read by many at once")   # the reader active (and preheated)
    assert eventually(lambda: rc.zscore(timeline_key(reader), tid) is not None)
    rc.delete(timeline_key(reader))

    api = f"http://127.0.0.1:{stack.topo.api_port(1)}"   # one process: the rebuild is per process
    before = rebuilds(httpx.get(f"{api}/metrics").text)
    with httpx.Client(base_url=api, timeout=10) as direct, ThreadPoolExecutor(20) as pool:
        pages = list(pool.map(lambda _: direct.get("/v1/feed", headers=stack.auth(reader)), range(20)))
    assert all(p.status_code == 200 and tid in [t["tweet_id"] for t in p.json()["tweets"]] for p in pages)
    assert eventually(lambda: rc.zscore(timeline_key(reader), tid) is not None)
    assert rebuilds(httpx.get(f"{api}/metrics").text) - before == 1
