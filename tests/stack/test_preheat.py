"""Active users' timelines are preheated: one found missing is rebuilt before its reader asks."""

from __future__ import annotations

import httpx
import pytest
import redis

from targets.feed.cache import timeline_key
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
