"""The store fan-in path (a reader whose timeline is missing, and its rebuild) on the real stack:
pages that neither stop early nor skip, whatever the authors' tweets look like."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from cassandra.concurrent import execute_concurrent

from targets.feed import pulled
from targets.feed.app import PULL_TIER_TTL_S
from targets.feed.cache import (
    _FINISH_REBUILD,
    _START_REBUILD,
    BUILDING,
    REBUILD_LOCK_S,
    SENTINEL,
    TIMELINE_TTL_S,
    preheat,
    rebuild_lock_key,
    timeline_key,
)
from targets.feed.snowflake import Snowflake, timestamp_ms
from targets.feed.store import Store
from tests.stack.conftest import Stack, eventually, post

pytestmark = pytest.mark.stack


def walk(client: httpx.Client, stack: Stack, reader: int, limit: int) -> list[str]:
    """Every tweet id of the reader's feed, page after page."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        r = client.get("/v1/feed", params=params, headers=stack.auth(reader))
        assert r.status_code == 200, r.text
        ids += [t["tweet_id"] for t in r.json()["tweets"]]
        cursor = r.json()["next_cursor"]
        if not r.json()["has_more"]:
            return ids
    raise AssertionError("more than 100 pages")


def test_a_fan_in_larger_than_one_driver_page_is_served(client: httpx.Client, stack: Stack, store: Store) -> None:
    """51 followees with 101 tweets each: the first page of 100 reads 5,151 rows in one query,
    past the driver's page of 5,000 (it used to fail with a 500)."""
    authors, reader = [250000 + i for i in range(51)], 250100
    ids = Snowflake(0, 30)
    rows = [(a, ids.next_id()) for _ in range(101) for a in authors]
    now = datetime.now(UTC)
    statements: list[tuple[Any, tuple[Any, ...]]] = []
    for author, tid in rows:
        statements += [(store._insert_tweet, (author, tid, "prolific", [], [], None, now)),
                       (store._insert_by_id, (tid, author, "prolific", [], [], None, now))]
    assert all(ok for ok, _ in execute_concurrent(store.session, statements, concurrency=64))
    store.bulk_follow([(reader, a) for a in authors])
    r = client.get("/v1/feed", params={"limit": "100"}, headers=stack.auth(reader))
    assert r.status_code == 200, r.text
    newest = sorted((tid for _, tid in rows), reverse=True)[:100]
    assert [t["tweet_id"] for t in r.json()["tweets"]] == [str(i) for i in newest]
    assert r.json()["has_more"] is True


def test_a_deleted_tweet_does_not_end_a_fan_in_page_early(client: httpx.Client, stack: Stack) -> None:
    """Pages of 2 over 4 tweets, the newest deleted: every other one is reachable."""
    author, reader = 977, 978
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tweets = [post(client, stack, author, f"tweet {i}") for i in range(4)]
    assert client.delete(f"/v1/tweets/{tweets[-1]}", headers=stack.auth(author)).status_code == 200
    assert walk(client, stack, reader, limit=2) == tweets[-2::-1]


def test_a_rebuilt_timeline_has_no_holes(client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    """A rebuild reads at most 50 tweets of each followee: below the oldest of a prolific
    followee's 50 it cannot know what is missing, so it stops there instead of going on with
    the others' older tweets."""
    prolific, quiet, reader = 979, 980, 981
    for author in (prolific, quiet):
        client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    older = [post(client, stack, quiet, f"older {i}") for i in range(10)]
    newer = [post(client, stack, prolific, f"newer {i}") for i in range(60)]
    everything = (older + newer)[::-1]
    assert client.get("/v1/feed", headers=stack.auth(reader)).status_code == 200   # a miss: rebuilt
    assert eventually(lambda: rc.zscore(timeline_key(reader), SENTINEL) is not None)
    seen = walk(client, stack, reader, limit=20)
    assert seen == everything[:len(seen)], "the feed skipped tweets"
    assert len(seen) >= 50


def test_a_timeline_being_rebuilt_takes_fan_out_and_is_not_read_until_the_store_read_is_in(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    """A rebuild reads the store once: its timeline exists (BUILDING) before that read, fan-out
    adds to it, readers are served from the store meanwhile, and no other rebuild starts. Here
    the test plays the rebuild's two steps, with the target's own scripts, around a tweet
    fanned out between them."""
    author, reader = 2966, 2967
    assert client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader)).status_code in (200, 201)
    older = post(client, stack, author, "before the rebuild")
    timeline, lock = timeline_key(reader), rebuild_lock_key(reader)
    client.get("/v1/feed", headers=stack.auth(reader))               # the timeline exists, its fan-out done
    assert eventually(lambda: rc.zscore(timeline, older) is not None)
    rc.delete(timeline)                                              # as if lost with its shard
    assert rc.eval(_START_REBUILD, 2, timeline, lock, REBUILD_LOCK_S, "this") == 1   # the store read begins
    newer = post(client, stack, author, "during the rebuild")
    assert eventually(lambda: rc.zscore(timeline, newer) is not None), "fan-out skipped a timeline being rebuilt"

    time.sleep(pulled.TTL_S)   # the store path's copy of the author's tweets is this old at most
    page = client.get("/v1/feed", headers=stack.auth(reader))      # a miss: the store path
    assert page.status_code == 200, page.text
    assert [t["tweet_id"] for t in page.json()["tweets"]] == [newer, older], "a reader read a timeline half-built"
    time.sleep(1)   # the API's own rebuild after that miss would be done by now
    assert rc.zscore(timeline, BUILDING) is not None and rc.get(lock) == "this", \
        "the API rebuilt the timeline while another rebuild held it"

    def finish(token: str) -> int:
        return int(rc.eval(_FINISH_REBUILD, 2, timeline, lock, 800, TIMELINE_TTL_S, token,
                           timestamp_ms(int(older)), older))

    assert finish("a rebuild whose lock lapsed") == 0 and rc.zscore(timeline, BUILDING) is not None
    assert finish("this") == 1
    assert rc.zrange(timeline, 0, -1) == [SENTINEL, older, newer] and not rc.exists(lock)
    assert [t["tweet_id"] for t in client.get("/v1/feed", headers=stack.auth(reader)).json()["tweets"]] == \
        [newer, older]


def test_a_deleted_tweet_among_a_celebrity_s_newest_does_not_hide_the_older_ones(
        client: httpx.Client, stack: Stack, store: Store) -> None:
    """Each API process keeps a pull-tier author's newest 60 ids and reads deeper from the store
    only when a page runs past a full list: a deleted one among them must not make the list look
    short (the 2 oldest of 62 were unreachable)."""
    author, reader = 982, 983
    preheat(stack.topo.redis_proxy_addresses(), [reader])   # pulled tweets are never pushed: no rebuild either
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    store.set_tier_override_sync(author, "pull")
    tweets = [post(client, stack, author, f"celebrity {i}") for i in range(62)]
    assert client.delete(f"/v1/tweets/{tweets[-1]}", headers=stack.auth(author)).status_code == 200
    assert eventually(lambda: author in store.pull_tier_sync())
    live = tweets[-2::-1]
    assert eventually(lambda: walk(client, stack, reader, limit=20) == live, within_s=15)


def walk_past_lists_read_a_moment_ago(client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
                                      celebrity: int, author: int, reader: int) -> tuple[list[str], list[str]] | None:
    """Both API instances read `celebrity`'s list, then `celebrity` tweets, then `author`'s tweet
    is pushed to `reader`, who walks the feed through nginx one tweet a page: (every tweet, what
    the walk showed), or None if the walk was not over within the lists' `pulled.TTL_S`."""
    preheat(stack.topo.redis_proxy_addresses(), [reader])
    for followee in (celebrity, author):
        assert client.post(f"/v1/users/{followee}/follow", headers=stack.auth(reader)).status_code in (200, 201)
    store.set_tier_override_sync(celebrity, "pull")
    older_pulled = post(client, stack, celebrity, "before the lists were read")
    older_pushed = post(client, stack, author, "pushed before the lists were read")
    assert eventually(lambda: celebrity in store.pull_tier_sync())
    assert eventually(lambda: rc.zscore(timeline_key(reader), older_pushed) is not None)
    time.sleep(PULL_TIER_TTL_S + 0.5)   # every API process knows the celebrity is pulled now
    read_at = time.monotonic()
    for i in range(1, stack.topo.api_instances + 1):   # each process reads the celebrity's list
        r = httpx.get(f"http://127.0.0.1:{stack.topo.api_port(i)}/v1/feed", headers=stack.auth(reader), timeout=10)
        assert r.status_code == 200, r.text
    lacked = post(client, stack, celebrity, "not in the lists")
    pushed = post(client, stack, author, "pushed after it")
    if not eventually(lambda: rc.zscore(timeline_key(reader), pushed) is not None, within_s=pulled.TTL_S):
        return None
    walked = walk(client, stack, reader, limit=1)
    if time.monotonic() - read_at >= pulled.TTL_S:
        return None
    return [pushed, lacked, older_pushed, older_pulled], walked


def test_a_walk_does_not_step_over_a_celebrity_tweet_its_lists_lacked(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """Each API process keeps a pull-tier author's newest ids for up to `pulled.TTL_S`. A page
    that showed a pushed tweet newer than such a list, beside it, gave a cursor that stepped over
    the pull-tier tweet the list lacked, for good (the eighteenth verify table's skip)."""
    for attempt in range(5):   # a walk that ran past the lists' second proves nothing: again
        celebrity, author, reader = (3201 + 3 * attempt + k for k in range(3))
        played = walk_past_lists_read_a_moment_ago(client, stack, store, rc, celebrity, author, reader)
        if played is not None:
            every, walked = played
            assert walked == every, f"the walk stepped over {sorted(set(every) - set(walked))}"
            return
    raise AssertionError("no attempt walked the feed within a second of the lists' read: the stack is too slow "
                         "for this test to show anything")
