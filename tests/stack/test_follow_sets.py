"""Follow sets cached in Redis: hit after the first use, kept in step with every change."""

from __future__ import annotations

import httpx
import pytest
import redis

from targets.feed.follow_sets import _FILL, FOLLOW_TTL_S, followers_key, following_key, generation_key
from tests.stack.conftest import Stack, eventually, feed_ids, post

pytestmark = pytest.mark.stack


def test_a_readers_follow_set_is_cached_and_follows_every_change(client: httpx.Client, stack: Stack,
                                                                 rc: redis.RedisCluster) -> None:
    reader, a, b = 1401, 1402, 1403
    client.post(f"/v1/users/{a}/follow", headers=stack.auth(reader))
    tid = post(client, stack, a, "cached follow set")
    assert eventually(lambda: tid in feed_ids(client, stack, reader))
    assert rc.smembers(following_key(reader)) == {"0", str(a)}   # "0": the sentinel of a cached set
    assert 0 < rc.ttl(following_key(reader)) <= FOLLOW_TTL_S

    client.post(f"/v1/users/{b}/follow", headers=stack.auth(reader))
    assert rc.smembers(following_key(reader)) == {"0", str(a), str(b)}
    client.delete(f"/v1/users/{a}/follow", headers=stack.auth(reader))
    assert rc.smembers(following_key(reader)) == {"0", str(b)}
    assert tid not in feed_ids(client, stack, reader)


def test_a_fill_that_read_the_store_before_a_change_is_refused(client: httpx.Client, stack: Stack,
                                                               rc: redis.RedisCluster) -> None:
    reader, author = 1411, 1412
    key = following_key(reader)
    seen = rc.get(generation_key(key)) or ""            # a reader starts a fill: generation, then store...
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))   # ...a follow lands meanwhile...
    assert rc.eval(_FILL, 2, key, generation_key(key), seen, FOLLOW_TTL_S) == 0   # ...its stale fill is refused
    assert not rc.exists(key)
    fresh = rc.get(generation_key(key)) or ""
    assert rc.eval(_FILL, 2, key, generation_key(key), fresh, FOLLOW_TTL_S, author) == 1
    assert rc.smembers(key) == {"0", str(author)}


def test_a_fill_from_before_a_shard_restarted_empty_is_refused(client: httpx.Client, stack: Stack,
                                                              rc: redis.RedisCluster) -> None:
    """The generation survives nothing: after a restart a change must still give the set a
    generation no earlier fill can hold (a counter starts again at the value it read)."""
    reader, first, second = 1413, 1414, 1415
    key = following_key(reader)
    client.post(f"/v1/users/{first}/follow", headers=stack.auth(reader))
    seen = rc.get(generation_key(key)) or ""            # a fill starts: generation, then the store...
    rc.delete(key, generation_key(key))                  # ...the shard restarts empty...
    client.post(f"/v1/users/{second}/follow", headers=stack.auth(reader))   # ...a follow lands...
    assert rc.eval(_FILL, 2, key, generation_key(key), seen, FOLLOW_TTL_S, first) == 0   # ...stale: refused


def test_a_new_follower_of_an_author_whose_list_is_cached_gets_the_next_tweet(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    author, first, newcomer = 1421, 1422, 1423
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(first))
    post(client, stack, author, "to the first follower")
    # the worker cached the list when it fanned that tweet out (at the stack's start it may still be
    # joining its consumer group; the reader's first read rebuilds from the store meanwhile)
    assert eventually(lambda: rc.smembers(followers_key(author)) == {"0", str(first)}, within_s=60)

    client.post(f"/v1/users/{author}/follow", headers=stack.auth(newcomer))
    assert rc.smembers(followers_key(author)) == {"0", str(first), str(newcomer)}
    t2 = post(client, stack, author, "to both")
    assert eventually(lambda: t2 in feed_ids(client, stack, newcomer))


def test_a_change_on_a_shard_whose_replica_is_down_is_applied_in_place(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    """With no replica to acknowledge, WAIT blocks for its own timeout and answers 0; the change
    is then confirmed (there is nobody to wait for). A read timeout shorter than WAIT's, or a
    client that retries the timed-out pipeline, turned every such change into an unconfirmed
    one: the set was dropped and follows took the whole deadline."""
    reader, a, b = 1431, 1432, 1433
    client.post(f"/v1/users/{a}/follow", headers=stack.auth(reader))
    feed_ids(client, stack, reader)                       # the read fills the set
    assert rc.smembers(following_key(reader)) == {"0", str(a)}
    primary, *replicas = stack.runtime.redis.shard_of(following_key(reader))
    assert replicas, "every shard has a replica"
    for node in replicas:
        stack.runtime.kill(node)
    try:
        r = client.post(f"/v1/users/{b}/follow", headers=stack.auth(reader))
        assert r.status_code == 200, r.text
        assert rc.smembers(following_key(reader)) == {"0", str(a), str(b)}   # applied, not dropped
    finally:
        for node in replicas:
            stack.runtime.restart(node, deadline_s=90)
        stack.runtime.redis.wait_cluster_ok(60)
