"""Design §10, timeline cache node failure, the hard way: a whole shard (primary and replica)
down. Feeds come from the store fan-in path (never a 5xx), posts still succeed (the store is
the record of truth), and after the shard returns empty, nothing is missing from feeds."""

from __future__ import annotations

import functools
import time

import httpx
import pytest

from harness.topology import links_of
from targets.feed.app import PULL_TIER_TTL_S
from targets.feed.cache import preheat, timeline_key
from targets.feed.store import Store
from targets.feed.worker import PARK_AFTER_S
from tests.stack.conftest import Stack, drained, eventually, feed_ids, metric_total, post

pytestmark = pytest.mark.stack


def test_a_whole_redis_shard_down_degrades_to_the_store_and_loses_nothing(stack: Stack) -> None:
    author, reader, dropped = 951, 952, 953
    preheat(stack.topo.redis_proxy_addresses(), [reader])
    shard = stack.runtime.redis.shard_of(timeline_key(reader))   # also the shard of following:{reader}
    assert len(shard) == 2
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
        c.post(f"/v1/users/{dropped}/follow", headers=stack.auth(reader))
        before = post(c, stack, author, "before the shard went down")
        gone = post(c, stack, dropped, "from an account unfollowed while the shard is down")
        assert eventually(lambda: {before, gone} <= set(feed_ids(c, stack, reader)))
        for node in shard:
            stack.runtime.kill(node)
        try:
            during = post(c, stack, author, "while the shard is down")          # 201: still accepted
            r = c.delete(f"/v1/users/{dropped}/follow", headers=stack.auth(reader))
            assert r.status_code == 200 and r.elapsed.total_seconds() < 3, r.text   # in time for nginx
            for _ in range(5):
                r = c.get("/v1/feed?limit=100", headers=stack.auth(reader))
                assert r.status_code == 200, r.text                           # never a 5xx
            served = set(feed_ids(c, stack, reader))
            assert {before, during} <= served and gone not in served         # the store fan-in, filtered
            with c.stream("GET", "/v1/stream", headers=stack.auth(reader)) as sse:   # its channel is there too
                body = sse.read()
            assert sse.status_code == 503 and sse.headers["retry-after"] == "2", body   # the client retries
        finally:
            for node in shard:
                stack.runtime.restart(node, deadline_s=90)
        stack.runtime.redis.wait_cluster_ok(60)
        after = post(c, stack, author, "after the shard came back")
        # The shard came back empty: the reader's timeline is rebuilt from the store, complete.
        assert eventually(lambda: {before, during, after} <= set(feed_ids(c, stack, reader)), within_s=30)
        assert gone not in feed_ids(c, stack, reader)   # the unfollow made while the shard was down holds


def test_the_celebrity_merge_outlives_a_shard_that_returns_empty(stack: Stack, store: Store) -> None:
    """The pull-tier registry is the store's, not the cache's: a shard restarting empty must not
    stop the merge of celebrity tweets into feeds whose timelines it did not hold. The shard
    chosen is the one that held the registry when it lived in Redis (`tiers:pull`), where the
    merge stopped until each celebrity tweeted again."""
    author = 961
    shard = stack.runtime.redis.shard_of("tiers:pull")
    reader = next(r for r in range(962, 970) if stack.runtime.redis.shard_of(timeline_key(r)) != shard)
    preheat(stack.topo.redis_proxy_addresses(), [reader])   # as a seeded user: no rebuild on a miss
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))   # before the pin: no backfill
        store.set_tier_override_sync(author, "pull")
        tid = post(c, stack, author, "from the pull tier, before the shard restart")
        assert eventually(lambda: author in store.pull_tier_sync())
        assert eventually(lambda: tid in feed_ids(c, stack, reader))
        for node in shard:
            stack.runtime.kill(node)
        for node in shard:
            stack.runtime.restart(node, deadline_s=90)
        stack.runtime.redis.wait_cluster_ok(60)
        time.sleep(PULL_TIER_TTL_S + 0.5)   # every API instance has re-read the registry
        assert tid in feed_ids(c, stack, reader)


def test_a_shard_down_does_not_stop_fan_out_to_the_other_shards(stack: Stack) -> None:
    """Every batch holds writes for every shard: one shard that clients cannot reach (both its
    nodes' proxies down; the nodes live on, so no failover) must not keep the other shards'
    followers from new tweets until it returns. Its share is parked in Kafka and applied, in
    order, once it answers."""
    author, down_reader = 990, 991
    down = stack.runtime.redis.shard_of(timeline_key(down_reader))
    up_reader = next(u for u in range(992, 1000) if stack.runtime.redis.shard_of(timeline_key(u)) != down)
    preheat(stack.topo.redis_proxy_addresses(), [down_reader, up_reader])
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        for reader in (down_reader, up_reader):
            c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
        with stack.runtime.toxiproxy.client.down([link for node in down for link in links_of(node)]):
            first = post(c, stack, author, "while one shard is unreachable")   # its batch cannot finish...
            assert eventually(lambda: rc_has(stack, up_reader, first))
            during = post(c, stack, author, "and after that")   # ...and this one used to wait behind it
            assert eventually(lambda: rc_has(stack, up_reader, during), within_s=PARK_AFTER_S + 20)
            for i in range(3):   # the shard is parked now: no batch waits for it again
                later = post(c, stack, author, f"later {i}")
                assert eventually(functools.partial(rc_has, stack, up_reader, later), within_s=PARK_AFTER_S - 2)
        assert drained(stack, within_s=60)
        # the parked writes were applied: the timeline itself has them, not only the store fan-in
        assert all(rc_has(stack, down_reader, t) for t in (first, during, later))


def rc_has(stack: Stack, user: int, tweet_id: str) -> bool:
    """Whether the tweet reached the user's cached timeline (not merely their feed: a feed may
    come from the store fan-in)."""
    import redis
    from redis.cluster import ClusterNode

    nodes = [ClusterNode("127.0.0.1", port) for port in (stack.topo.redis_proxy_port(i)
                                                          for i in range(1, len(stack.topo.redis_names()) + 1))]
    try:
        rc = redis.RedisCluster(startup_nodes=nodes, decode_responses=True, socket_timeout=2,
                                require_full_coverage=False)
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return False
    try:
        return rc.zscore(timeline_key(user), tweet_id) is not None
    except (redis.RedisError, redis.exceptions.RedisClusterException):
        return False
    finally:
        rc.close()



def api_metric(stack: Stack, name: str, **labels: str) -> float:
    """A counter of the API, summed over its instances (0 where it has no sample yet)."""
    return metric_total((stack.topo.api_port(i) for i in range(1, stack.topo.api_instances + 1)), name, **labels)


def test_a_primary_its_clients_cannot_reach_is_read_from_its_replica(stack: Stack) -> None:
    """Every client link to the primary of the reader's shard down (the node lives, so the cluster
    does not fail it over): the reader's timeline and the page's tweets on that shard are read
    from its replica, not the store fan-in, and the feed holds what it held, less the account
    the reader unfollowed meanwhile (the replica's copy of the follow set still has it)."""
    author, dropped, reader = 3101, 3103, 3102   # ids no other stack test uses (one stack for all)
    preheat(stack.topo.redis_proxy_addresses(), [reader])
    primary = stack.runtime.redis.shard_of(timeline_key(reader))[0]
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        for followed in (author, dropped):
            c.post(f"/v1/users/{followed}/follow", headers=stack.auth(reader))
        tweets = [post(c, stack, author, f"before the partition {i}") for i in range(3)]
        gone = post(c, stack, dropped, "from an account unfollowed during the partition")
        assert eventually(lambda: set(tweets) | {gone} <= set(feed_ids(c, stack, reader)))
        store_path = functools.partial(api_metric, stack, "feed_degraded_requests_total", reason="redis_error")
        replica = functools.partial(api_metric, stack, "feed_cache_replica_reads_total", op="timeline",
                                    outcome="served")
        before_store, before_replica = store_path(), replica()
        with stack.runtime.toxiproxy.client.down(links_of(primary)):
            assert c.delete(f"/v1/users/{dropped}/follow", headers=stack.auth(reader)).status_code == 200
            pages = []
            for _ in range(6):   # both instances: nginx alternates
                r = c.get("/v1/feed?limit=100", headers=stack.auth(reader))
                assert r.status_code == 200, r.text
                pages.append([t["tweet_id"] for t in r.json()["tweets"]])
            served_by_replica, served_by_store = replica() - before_replica, store_path() - before_store
    assert all(set(tweets) <= set(p) and gone not in p for p in pages), pages
    assert served_by_replica >= 6 and served_by_store == 0, (served_by_replica, served_by_store)


def test_a_fault_on_one_client_role_s_link_leaves_the_other_role_alone(stack: Stack) -> None:
    """`down worker->NODE` (the catalogue's per-role link): the fan-out cannot write the reader's
    shard, so a new tweet reaches the reader's timeline only after the heal, while the API
    still reads that shard's primary (no replica or store read); `down api->NODE`: the API reads
    the shard from its replica while the fan-out still writes the primary."""
    from chaos.build import build
    from harness.campaign import chaos_stack

    author, reader = 3111, 3112
    preheat(stack.topo.redis_proxy_addresses(), [reader])
    primary = stack.runtime.redis.shard_of(timeline_key(reader))[0]
    replica_reads = functools.partial(api_metric, stack, "feed_cache_replica_reads_total", op="timeline",
                                      outcome="served")
    store_reads = functools.partial(api_metric, stack, "feed_degraded_requests_total", reason="redis_error")
    with httpx.Client(base_url=stack.url, timeout=15) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))

        fault = build("down", f"worker->{primary}", {}, chaos_stack(stack.runtime))
        fault.invoke()
        try:
            before = (replica_reads(), store_reads())
            parked = post(c, stack, author, "while the workers cannot reach the reader's shard")
            time.sleep(3)
            assert not rc_has(stack, reader, parked)                  # not written: the workers' link is down
            for _ in range(4):
                assert c.get("/v1/feed", headers=stack.auth(reader)).status_code == 200
            assert (replica_reads(), store_reads()) == before         # the API's own link is up
        finally:
            fault.heal()
        assert eventually(lambda: rc_has(stack, reader, parked), within_s=PARK_AFTER_S + 40)

        fault = build("down", f"api->{primary}", {}, chaos_stack(stack.runtime))
        fault.invoke()
        try:
            before_replica = replica_reads()
            written = post(c, stack, author, "while the API cannot reach the reader's shard")
            assert eventually(lambda: rc_has(stack, reader, written))  # the workers' link is up
            for _ in range(4):
                assert c.get("/v1/feed", headers=stack.auth(reader)).status_code == 200
            assert replica_reads() >= before_replica + 4
        finally:
            fault.heal()
