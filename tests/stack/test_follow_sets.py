"""Follow sets cached in Redis: hit after the first use, kept in step with every change."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest
import redis

from targets.feed import follow_sets
from targets.feed.cache import FeedCache
from targets.feed.follow_sets import (
    _CHANGE,
    _FILL,
    FOLLOW_TTL_S,
    GENERATION_TTL_S,
    FollowSets,
    fill_args,
    followers_key,
    following_key,
    generation_key,
    new_generation,
)
from targets.feed.store import Store
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
    seen = str(rc.get(generation_key(key)) or "")            # a reader starts a fill: generation, then store...
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))   # ...a follow lands meanwhile...
    assert rc.eval(_FILL, 2, key, generation_key(key), *fill_args(seen, [])) == 0   # ...its stale fill is refused
    assert not rc.exists(key)
    fresh = str(rc.get(generation_key(key)) or "")
    assert rc.eval(_FILL, 2, key, generation_key(key), *fill_args(fresh, [author])) == 1
    assert rc.smembers(key) == {"0", str(author)}


def test_a_fill_from_before_a_shard_restarted_empty_is_refused(client: httpx.Client, stack: Stack,
                                                              rc: redis.RedisCluster) -> None:
    """The generation survives nothing: after a restart a change must still give the set a
    generation no earlier fill can hold (a counter starts again at the value it read)."""
    reader, first, second = 1413, 1414, 1415
    key = following_key(reader)
    client.post(f"/v1/users/{first}/follow", headers=stack.auth(reader))
    seen = str(rc.get(generation_key(key)) or "")            # a fill starts: generation, then the store...
    rc.delete(key, generation_key(key))                  # ...the shard restarts empty...
    client.post(f"/v1/users/{second}/follow", headers=stack.auth(reader))   # ...a follow lands...
    assert rc.eval(_FILL, 2, key, generation_key(key), *fill_args(seen, [first])) == 0   # ...stale: refused


def copies_used(api_url: str) -> float:
    """How many reads took an API process's own copy of a follow set (its members not re-sent)."""
    found = re.search(r'^feed_follow_cache_requests_total\{result="copy",set="following"\} (\S+)$',
                      httpx.get(f"{api_url}/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def reading_its_copy(client: httpx.Client, stack: Stack, sibling: httpx.Client, reader: int,
                     authors: list[int]) -> list[str]:
    """`reader` follows `authors` and each posts a tweet; once the `sibling` API shows them
    all, it reads the reader's follow set from its own copy. Returns the tweets' ids."""
    for author in authors:
        client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tweets = [post(client, stack, author, f"by {author}") for author in authors]
    assert eventually(lambda: set(tweets) <= set(feed_ids(sibling, stack, reader)))
    feed_ids(sibling, stack, reader)                       # the set is cached by now: its members come once
    before = copies_used(str(sibling.base_url))
    assert set(tweets) <= set(feed_ids(sibling, stack, reader))
    assert copies_used(str(sibling.base_url)) > before    # the sibling reads its copy
    return tweets


def test_an_api_process_reads_its_copy_of_a_follow_set_until_a_change_elsewhere(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster,
        sibling_api: Callable[[dict[str, str]], str]) -> None:
    """The follow set's members travel only when the process holds no copy at the set's
    current generation; an unfollow through another API process moves the generation, and the
    next page is filtered by the set as it is now."""
    reader, kept, dropped = 1441, 1442, 1443
    with httpx.Client(base_url=sibling_api({}), timeout=10) as sibling:
        t_kept, t_dropped = reading_its_copy(client, stack, sibling, reader, [kept, dropped])
        client.delete(f"/v1/users/{dropped}/follow", headers=stack.auth(reader))   # not through the sibling
        shown = feed_ids(sibling, stack, reader)
        assert t_kept in shown and t_dropped not in shown


def test_a_copy_does_not_outlive_the_set_it_was_read_from(client: httpx.Client, stack: Stack, rc: redis.RedisCluster,
                                                          store: Store,
                                                          sibling_api: Callable[[dict[str, str]], str]) -> None:
    """A change lost with its shard (a failover before a replica had it) leaves the set as it
    was, at its old generation. Once that set expires the next read fills it from the store;
    had the fill kept the generation, a process's copy of the lost set would have passed for
    current for the rest of the generation's 24 h."""
    reader, kept, lost = 1446, 1447, 1448
    with httpx.Client(base_url=sibling_api({}), timeout=10) as sibling:
        t_kept, t_lost = reading_its_copy(client, stack, sibling, reader, [kept, lost])
        asyncio.run(store.unfollow(reader, lost))          # the unfollow is in the store, its cache change lost...
        rc.delete(following_key(reader))                   # ...and the set expired, its generation unchanged
        for _ in range(2):                                 # the fill, then the read after it
            shown = feed_ids(sibling, stack, reader)
            assert t_kept in shown and t_lost not in shown


def test_a_fill_gives_a_set_without_a_generation_one(client: httpx.Client, stack: Stack,
                                                     rc: redis.RedisCluster) -> None:
    """A seeded user's follow set never changed through the API, so it had no generation, and
    without one no process could keep a copy of it: every page carried all its members."""
    reader = 1445
    key = following_key(reader)
    assert rc.get(generation_key(key)) is None
    feed_ids(client, stack, reader)                       # a miss: filled from the store
    assert rc.smembers(key) == {"0"}
    assert rc.get(generation_key(key))


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


def test_a_retried_follow_change_cannot_undo_a_later_one(stack: Stack, rc: redis.RedisCluster,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A follow whose cache write no replica confirmed is tried again. Applied again, it could
    land after an unfollow of the same account made meanwhile (by another request) and bring
    the account back into the cached set, for as long as the set lives (FOLLOW_TTL_S). A retry
    drops the set instead; the next read fills it from the store."""
    reader, author = 1451, 1452
    key = following_key(reader)
    assert rc.eval(_FILL, 2, key, generation_key(key), *fill_args(str(rc.get(generation_key(key)) or ""), [])) == 1
    _, *replicas = stack.runtime.redis.shard_of(key)
    # Room for a try after the replica is back, however the tries before it were spaced.
    monkeypatch.setattr(follow_sets, "CHANGE_DEADLINE_S", 5.0)

    async def follow_while_an_unfollow_lands() -> None:
        cache = FeedCache(stack.topo.redis_proxy_addresses())
        follows = FollowSets(cache.rc)
        try:
            change = asyncio.create_task(follows.changed(reader, author, following=True))
            await asyncio.sleep(0.6)              # the first try went unconfirmed (its WAIT timed out)
            assert not change.done()
            # ...an unfollow lands meanwhile, confirmed (as another API process would apply it)...
            rc.eval(_CHANGE, 2, key, generation_key(key), "remove", author, GENERATION_TTL_S, new_generation())
            await asyncio.sleep(1.2)              # ...the follow is tried again after it, still unconfirmed...
            for node in replicas:
                stack.runtime.resume(node)
            await change                          # ...until its shard's replica is back
        finally:
            await follows.close()                 # (its clients of single nodes too)
            await cache.close()

    for node in replicas:
        stack.runtime.pause(node)
    try:
        asyncio.run(follow_while_an_unfollow_lands())
    finally:
        for node in replicas:
            stack.runtime.resume(node)
    assert str(author) not in rc.smembers(key)


def test_seeding_preheats_both_sets_whole_and_changes_apply_to_them(client: httpx.Client, stack: Stack,
                                                                  rc: redis.RedisCluster) -> None:
    """What a campaign's seeding caches (harness/seeding.py) is what reads and fan-outs would
    have filled: every user's followees and followers, a user who follows nobody included,
    each set under a generation of its own; and a follow change then applies to it in place."""
    reader, loner, a, b = 1491, 1492, 1493, 1494
    follow_sets.preheat(stack.topo.redis_proxy_addresses(), {a: [reader], b: [reader, a]},
                        users=[reader, loner, a, b])
    assert rc.smembers(following_key(reader)) == {"0", str(a), str(b)}
    assert rc.smembers(following_key(loner)) == {"0"}           # follows nobody: a hit all the same
    assert rc.smembers(followers_key(b)) == {"0", str(reader), str(a)}
    assert rc.smembers(following_key(a)) == {"0", str(b)}
    generations = {rc.get(generation_key(k)) for k in (following_key(reader), following_key(a), followers_key(b))}
    assert len(generations) == 3 and None not in generations
    assert 0 < rc.ttl(following_key(reader)) <= FOLLOW_TTL_S
    client.delete(f"/v1/users/{a}/follow", headers=stack.auth(reader))
    assert rc.smembers(following_key(reader)) == {"0", str(b)}
    assert rc.smembers(followers_key(a)) == {"0"}
