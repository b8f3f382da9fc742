"""Follow graph behaviours of design §10: unfollow filter, deletion, backfill, follow cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
import redis

from targets.feed.cache import (
    _PUT_TWEET,
    SENTINEL,
    TimelineWriter,
    deleted_marker,
    timeline_key,
    tweet_key,
)
from targets.feed.engagement import COUNTERS, counter_key
from targets.feed.guards import follow_lock_key
from targets.feed.snowflake import Snowflake, timestamp_ms
from targets.feed.store import Store
from tests.stack.conftest import SiblingWorker, Stack, drained, eventually, feed_ids, post

pytestmark = pytest.mark.stack


def unfollow_scenario(c: httpx.Client, stack: Stack, author: int, reader: int) -> str:
    c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tid = post(c, stack, author, "before the unfollow")
    assert eventually(lambda: tid in feed_ids(c, stack, reader))
    assert c.delete(f"/v1/users/{author}/follow", headers=stack.auth(reader)).json()["following"] is False
    return tid


def test_an_unfollowed_authors_tweets_leave_the_feed_at_once(client: httpx.Client, stack: Stack) -> None:
    tid = unfollow_scenario(client, stack, 701, 702)
    assert tid not in feed_ids(client, stack, 702)


def test_skip_unfollow_filter_defect_keeps_serving_them(stack: Stack, sibling_api: Callable[[dict[str, str]], str],
                                                        client: httpx.Client) -> None:
    tid = unfollow_scenario(client, stack, 711, 712)
    with httpx.Client(base_url=sibling_api({"FEED_DEFECT_SKIP_UNFOLLOW_FILTER": "1"}), timeout=10) as broken:
        assert tid in feed_ids(broken, stack, 712)


def test_deleted_tweets_disappear_for_readers_and_from_timelines(client: httpx.Client, stack: Stack) -> None:
    author, reader = 721, 722
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tid = post(client, stack, author, "regrettable")
    assert eventually(lambda: tid in feed_ids(client, stack, reader))
    assert client.delete(f"/v1/tweets/{tid}", headers=stack.auth(reader)).status_code == 403
    r = client.delete(f"/v1/tweets/{tid}", headers=stack.auth(author))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert tid not in feed_ids(client, stack, reader)                      # at once for readers
    assert tid not in [t["tweet_id"] for t in client.get(f"/v1/users/{author}/tweets",
                                                        headers=stack.auth(reader)).json()["tweets"]]
    import redis

    rc = redis.RedisCluster(host="127.0.0.1", port=stack.topo.redis_proxy_port(1), decode_responses=True)
    try:
        # the deletion fan-out takes the id out of the follower's timeline and leaves a deleted
        # marker in the hydration cache...
        assert eventually(lambda: rc.zscore(f"timeline:{{{reader}}}", tid) is None)
        assert eventually(lambda: rc.get(tweet_key(int(tid))) == deleted_marker(int(tid)).decode())
        # ...which a reader that read the live tweet from the store just before cannot overwrite
        live = orjson.dumps({"tweet_id": tid, "author_id": str(author), "text": "regrettable", "deleted": False})
        counters = [counter_key(c, int(tid)) for c in COUNTERS]
        rc.eval(_PUT_TWEET, 1 + len(counters), tweet_key(int(tid)), *counters, live, 600, *[0] * len(counters))
        assert rc.get(tweet_key(int(tid))) == deleted_marker(int(tid)).decode()
    finally:
        rc.close()
    assert client.delete(f"/v1/tweets/{tid}", headers=stack.auth(author)).status_code == 200   # idempotent
    assert client.delete("/v1/tweets/999", headers=stack.auth(author)).status_code == 404


@pytest.mark.parametrize("defect", [False, True])
def test_a_delete_hides_the_tweet_at_once_unless_the_defect_is_on(
        stack: Stack, sibling_api: Callable[[dict[str, str]], str], client: httpx.Client, defect: bool) -> None:
    """With the fan-out workers paused, only the API's at-once cache update can hide a deleted
    tweet: the healthy API does it, the one with FEED_DEFECT_SKIP_DELETE_FANOUT does not."""
    author, reader = (761, 762) if defect else (771, 772)
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    tid = post(client, stack, author, "delete me")
    assert eventually(lambda: tid in feed_ids(client, stack, reader))
    api = sibling_api({"FEED_DEFECT_SKIP_DELETE_FANOUT": "1" if defect else "0"})
    workers = stack.topo.worker_names()
    for w in workers:
        stack.runtime.pause(w)
    try:
        with httpx.Client(base_url=api, timeout=10) as c:
            assert c.delete(f"/v1/tweets/{tid}", headers=stack.auth(author)).status_code == 200
            assert (tid in feed_ids(c, stack, reader)) is defect
    finally:
        for w in workers:
            stack.runtime.resume(w)


def backfilled(rc: redis.RedisCluster, reader: int, tweets: list[str]) -> bool:
    return all(rc.zscore(timeline_key(reader), t) is not None for t in tweets)


def test_following_a_large_account_backfills_its_recent_tweets(client: httpx.Client, stack: Stack,
                                                               rc: redis.RedisCluster) -> None:
    """Into the newcomer's cached timeline (not only visible through the store fan-in)."""
    big, newcomer = 741, 742
    recent = [post(client, stack, big, f"big {i}") for i in range(3)]
    store = Store(f"127.0.0.1:{stack.topo.cassandra_proxy_port}")
    try:   # 250 followers: above the stack's push threshold (200)
        store.bulk_follow([(100000 + i, big) for i in range(250)])
    finally:
        store.close()
    rc.zadd(timeline_key(newcomer), {SENTINEL: 0})   # the newcomer's timeline is cached already
    r = client.post(f"/v1/users/{big}/follow", headers=stack.auth(newcomer))
    assert r.json().get("backfill") == "queued"
    assert eventually(lambda: backfilled(rc, newcomer, recent))


def pinned_account_and_newcomer(client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
                                pinned: int, newcomer: int) -> list[str]:
    """An account with three tweets and no followers, pinned to the pull tier by its override
    flag; a newcomer whose timeline is cached. Returns the tweets."""
    recent = [post(client, stack, pinned, f"pinned {i}") for i in range(3)]
    store.set_tier_override_sync(pinned, "pull")
    rc.zadd(timeline_key(newcomer), {SENTINEL: 0})
    return recent


def test_an_accounts_override_flag_decides_the_backfill_too(client: httpx.Client, stack: Stack, store: Store,
                                                            rc: redis.RedisCluster) -> None:
    """A pinned pull-tier account with few followers is backfilled; a retry queues it again."""
    pinned, plain, newcomer = 781, 783, 782
    recent = pinned_account_and_newcomer(client, stack, store, rc, pinned, newcomer)
    for _ in range(2):   # the second is a retry: already following, still queued (idempotent)
        r = client.post(f"/v1/users/{pinned}/follow", headers=stack.auth(newcomer))
        assert r.status_code == 200 and r.json().get("backfill") == "queued"
    assert eventually(lambda: backfilled(rc, newcomer, recent))
    assert "backfill" not in client.post(f"/v1/users/{plain}/follow", headers=stack.auth(newcomer)).json()


def test_no_backfill_for_a_follow_taken_back_before_it_ran(client: httpx.Client, stack: Stack, store: Store,
                                                          rc: redis.RedisCluster) -> None:
    pinned, newcomer = 784, 785
    recent = pinned_account_and_newcomer(client, stack, store, rc, pinned, newcomer)
    workers = stack.topo.worker_names()
    for w in workers:   # the backfill waits in Kafka (well inside the workers' sessions)
        stack.runtime.pause(w)
    try:
        r = client.post(f"/v1/users/{pinned}/follow", headers=stack.auth(newcomer))
        assert r.json().get("backfill") == "queued"
        assert client.delete(f"/v1/users/{pinned}/follow", headers=stack.auth(newcomer)).status_code == 200
    finally:
        for w in workers:
            stack.runtime.resume(w)
    assert drained(stack, within_s=30)
    assert not any(rc.zscore(timeline_key(newcomer), t) is not None for t in recent)


def test_never_backfill_defect_leaves_the_new_followers_timeline_without_them(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    pinned, newcomer = 791, 792
    recent = pinned_account_and_newcomer(client, stack, store, rc, pinned, newcomer)
    metrics = sibling_worker({"FEED_DEFECT_NEVER_BACKFILL": "1"}).metrics
    before = backfill_events(httpx.get(metrics).text)
    assert client.post(f"/v1/users/{pinned}/follow", headers=stack.auth(newcomer)).json().get("backfill") == "queued"
    assert eventually(lambda: backfill_events(httpx.get(metrics).text) > before)   # consumed, and ignored:
    assert not any(rc.zscore(timeline_key(newcomer), t) is not None for t in recent)


def backfill_events(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('feed_fanout_events_total{type="backfill"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_follow_cap(stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    with httpx.Client(base_url=sibling_api({"FEED_FOLLOW_CAP": "2"}), timeout=10) as c:
        me = 751
        assert c.post("/v1/users/752/follow", headers=stack.auth(me)).status_code == 200
        assert c.post("/v1/users/753/follow", headers=stack.auth(me)).status_code == 200
        assert c.post("/v1/users/752/follow", headers=stack.auth(me)).status_code == 200   # idempotent
        r = c.post("/v1/users/754/follow", headers=stack.auth(me))
        assert r.status_code == 409 and r.json()["error"]["code"] == "follow_cap"


def test_concurrent_follows_never_pass_the_cap(stack: Stack, store: Store,
                                               sibling_api: Callable[[dict[str, str]], str]) -> None:
    """Each follow checked the count before writing, so follows racing at the cap all passed
    the check: a user capped at 3, holding 2, ended up following 4 after six racing follows."""
    me, others = 1471, list(range(1472, 1480))
    with httpx.Client(base_url=sibling_api({"FEED_FOLLOW_CAP": "3"}), timeout=10) as c:
        for other in others[:2]:
            assert c.post(f"/v1/users/{other}/follow", headers=stack.auth(me)).status_code == 200
        with ThreadPoolExecutor(len(others) - 2) as pool:
            codes = list(pool.map(lambda o: c.post(f"/v1/users/{o}/follow", headers=stack.auth(me)).status_code,
                                  others[2:]))
    assert set(codes) <= {200, 409}
    followed = asyncio.run(store.followees(me))
    assert len(followed) <= 3
    assert len(followed) == 2 + codes.count(200)   # a 409 left nothing behind; a 200 stayed


def test_a_follow_change_waits_for_the_one_in_progress(client: httpx.Client, stack: Stack, store: Store,
                                                       rc: redis.RedisCluster) -> None:
    """A user's follow changes run one at a time. Without that, a retry arriving while its
    original was between the cap check and the recount answered 200 for a follow the original
    then took back. The test holds the user's lock as an in-flight change would."""
    me, first, second = 1481, 1482, 1483
    rc.set(follow_lock_key(me), "held by the test", px=20_000)
    try:
        refused = client.post(f"/v1/users/{first}/follow", headers=stack.auth(me))
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "in_progress", refused.text
        assert refused.headers["retry-after"]
        assert not asyncio.run(store.is_following(me, first))
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(client.post, f"/v1/users/{second}/follow", headers=stack.auth(me))
            time.sleep(0.5)
            assert not waiting.done()   # it waits for the change in progress (up to 2 s)...
            rc.delete(follow_lock_key(me))
            assert waiting.result().status_code == 200   # ...and goes on once that one is done
    finally:
        rc.delete(follow_lock_key(me))
    assert asyncio.run(store.followees(me)) == [second]


def test_a_full_timeline_holds_the_cap_and_a_deletion_beside_an_append_keeps_the_oldest(
        stack: Stack, rc: redis.RedisCluster) -> None:
    """A full timeline holds exactly `cap` ids (it held one more: the append script trimmed to
    cap + 1 members, counting the sentinel, which is the lowest and went first). And a batch
    that deletes one entry and appends another leaves the oldest in place (removals ran after
    appends, so the append pushed it out first); a tweet deleted in its own batch never lands."""
    user, cap = 1491, 5
    snowflake = Snowflake(0, 28)
    ids = [snowflake.next_id() for _ in range(8)]
    key = timeline_key(user)
    rc.delete(key)
    rc.zadd(key, {SENTINEL: 0, **{str(i): timestamp_ms(i) for i in ids[:cap]}})   # as a rebuild leaves it
    writer = TimelineWriter(stack.topo.redis_proxy_addresses(), cap)
    try:
        writer.write([(user, ids[5]), (user, ids[6])], [], removals=[(user, ids[2]), (user, ids[6])])
        assert rc.zrange(key, 0, -1) == [str(i) for i in (ids[0], ids[1], ids[3], ids[4], ids[5])]
        writer.write([(user, ids[7])], [])
        assert rc.zrange(key, 0, -1) == [str(i) for i in (ids[1], ids[3], ids[4], ids[5], ids[7])]
    finally:
        writer.rc.close()
        rc.delete(key)
