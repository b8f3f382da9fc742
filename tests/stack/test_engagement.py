"""Likes on the real stack: idempotent per user, counts converge in hydrated tweets."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping

import httpx
import orjson
import pytest
import redis
from confluent_kafka import Producer

from harness.runtime.toxiproxy import ToxiproxyApi
from harness.settle import consumer_lag
from harness.topology import ENGAGEMENT_TOPIC
from targets.feed.cache import NOBODY, tweet_key
from targets.feed.engagement import CounterKey, counted_key, counter_key
from targets.feed.engagement import event as engagement_event
from targets.feed.settings import Settings
from targets.feed.store import REQUEST_TIMEOUT_S, Store
from targets.feed.worker import CHECKPOINT_S, CounterLane, FanoutWorker
from tests.stack.conftest import SiblingWorker, Stack, drained, eventually, group_sizes, metric_total, post

pytestmark = pytest.mark.stack

def likes_seen(c: httpx.Client, stack: Stack, author: int, tweet_id: str) -> int | None:
    tweets = c.get(f"/v1/users/{author}/tweets", headers=stack.auth(author)).json()["tweets"]
    return next((t["engagement"]["likes"] for t in tweets if t["tweet_id"] == tweet_id), None)


def test_likes_are_idempotent_per_user_and_converge(client: httpx.Client, stack: Stack) -> None:
    author = 901
    tid = post(client, stack, author, "like me")
    first = client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(902))
    assert first.status_code == 200 and first.json()["liked"] is True and first.json()["likes"] == 1
    # A repeated like adds nothing, and its optimistic count still includes the caller's like,
    # whether the aggregator has counted it yet or not (it answered 0 while the event was on its way).
    again = [client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(902)).json()["likes"] for _ in range(6)]
    assert again == [1] * 6
    for user in (903, 904):
        client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user))
    assert eventually(lambda: likes_seen(client, stack, author, tid) == 3, within_s=10)
    body = client.get(f"/v1/users/{author}/tweets", headers=stack.auth(author)).json()["tweets"][0]
    assert body["engagement"] == {"likes": 3, "retweets": 0, "replies": 0, "likes_display": "3"}


def test_liking_what_does_not_exist(client: httpx.Client, stack: Stack) -> None:
    r = client.post("/v1/tweets/12345/like", headers=stack.auth(911))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    deleted = post(client, stack, 912, "gone")
    client.delete(f"/v1/tweets/{deleted}", headers=stack.auth(912))
    assert client.post(f"/v1/tweets/{deleted}/like", headers=stack.auth(911)).status_code == 404


def test_a_counter_lost_from_the_cache_resumes_from_the_store(client: httpx.Client, stack: Stack, store: Store,
                                                              rc: redis.RedisCluster) -> None:
    """As if the tweet's shard restarted empty (or its keys expired): reads show the store's
    checkpoint, and the next like counts on from it instead of restarting at 1."""
    author = 921
    tid = post(client, stack, author, "liked, then forgotten by the cache")
    for user in (922, 923, 924):
        client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user))
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=CHECKPOINT_S + 10)
    rc.delete(tweet_key(int(tid)), counter_key("likes", int(tid)), counted_key("likes", int(tid)))
    assert likes_seen(client, stack, author, tid) == 3
    liked = client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(925)).json()
    assert liked["likes"] == 4
    counter = counter_key("likes", int(tid))
    assert eventually(lambda: likes_seen(client, stack, author, tid) == 4 and rc.get(counter) == "4")
    rc.delete(counter, counted_key("likes", int(tid)))   # the counter alone, before the next checkpoint
    client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(926))
    assert eventually(lambda: rc.get(counter_key("likes", int(tid))) == "5")


def test_a_user_liking_again_after_the_counted_set_was_lost_is_not_counted_twice(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """The API queues every like, a repeated one too, and the aggregator counts each user once
    by its counted set in Redis. shard-lost wiped that set with the counter: a user's second
    like after the shard came back made the count 9 for 8 likers (verify, 2026-12-05). The set
    is rebuilt from the likes the store records, whoever (API or aggregator) re-creates the
    counter first."""
    author = 931
    tid = post(client, stack, author, "liked, wiped, liked again")
    for user in (932, 933, 934):
        client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user))
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=CHECKPOINT_S + 10)
    counter, counted = counter_key("likes", int(tid)), counted_key("likes", int(tid))
    for re_cached_by_a_reader in (False, True):
        rc.delete(tweet_key(int(tid)), counter, counted)   # the shard came back empty
        if re_cached_by_a_reader:   # the API re-caches the tweet and its counter, not the set
            assert likes_seen(client, stack, author, tid) == 3 and rc.get(counter) == "3"
        assert client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(932)).status_code == 200   # again
        assert eventually(lambda: rc.exists(counted) == 1, within_s=10)
        assert rc.get(counter) == "3", (re_cached_by_a_reader, rc.get(counter))
        assert rc.smembers(counted) == {"932", "933", "934"}
    client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(935))   # a new liker still counts
    assert eventually(lambda: rc.get(counter) == "4")
    assert eventually(lambda: store.like_count_sync(int(tid)) == 4, within_s=CHECKPOINT_S + 10)
    assert likes_seen(client, stack, author, tid) == 4


def test_a_user_retweeting_again_after_the_counted_set_was_lost_is_not_counted_twice(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """The API queues every retweet, a repeated one too (it answers the same retweet id), and the
    aggregator counts each retweet id once by its counted set. shard-lost wiped that set with the
    counter: a repeated retweet after the shard came back made a tweet show 8 retweets for 7
    (verify, 2026-12-05). The set is rebuilt from the retweets the store records."""
    tid = int(post(client, stack, 951, "retweeted, wiped, retweeted again"))
    made: dict[int, str] = {}
    for user in (952, 953, 954):
        r = client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(user))
        assert r.status_code == 200, r.text
        made[user] = r.json()["retweet_id"]

    def stored() -> int:
        return store.counts_sync([tid]).get(tid, {}).get("retweets", 0)

    assert eventually(lambda: stored() == 3, within_s=CHECKPOINT_S + 10)
    counter, counted = counter_key("retweets", tid), counted_key("retweets", tid)
    rc.delete(tweet_key(tid), counter, counted)   # the shard came back empty
    again = client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(952))
    assert again.status_code == 200 and again.json()["retweet_id"] == made[952]
    assert eventually(lambda: rc.exists(counted) == 1, within_s=10)
    assert rc.get(counter) == "3"
    assert rc.smembers(counted) == set(made.values())
    assert client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(955)).status_code == 200   # a new one counts
    assert eventually(lambda: rc.get(counter) == "4")
    assert eventually(lambda: stored() == 4, within_s=CHECKPOINT_S + 10)


def test_retweets_made_and_undone_after_the_counters_were_lost_are_counted_once_each(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """A tweet shows retweets made less retweets undone, two counters each rebuilt from the store
    when lost with their shard. Rebuilt from the standing retweets alone, a retweet made after
    the wipe passed for one the rebuilt count held (as many had been undone): shard-lost showed
    9 retweets for 10 (2026-12-05). And an undo's events come twice (the API's, the fan-out's):
    the second must not count again once the undone counted set is gone."""
    author = 1971
    tid = int(post(client, stack, author, "retweeted, undone, wiped"))
    made: dict[int, str] = {}
    for user in (1972, 1973, 1974):
        r = client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(user))
        assert r.status_code == 200, r.text
        made[user] = r.json()["retweet_id"]
    assert client.delete(f"/v1/tweets/{tid}/retweet", headers=stack.auth(1972)).status_code == 200

    def stored(counter: str) -> int:
        return store.counts_sync([tid]).get(tid, {}).get(counter, 0)

    def shown() -> int | None:
        tweets = client.get(f"/v1/users/{author}/tweets", headers=stack.auth(author)).json()["tweets"]
        return next((t["engagement"]["retweets"] for t in tweets if t["tweet_id"] == str(tid)), None)

    assert eventually(lambda: (stored("retweets"), stored("unretweets")) == (3, 1), within_s=CHECKPOINT_S + 10)
    rc.delete(tweet_key(tid), *(k(c, tid) for c in ("retweets", "unretweets") for k in (counter_key, counted_key)))
    assert client.delete(f"/v1/tweets/{tid}/retweet", headers=stack.auth(1973)).status_code == 200   # undone
    assert client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(1975)).status_code == 200     # made
    # The first undo's events again: deleting the retweet again queues both once more.
    assert client.delete(f"/v1/tweets/{made[1972]}", headers=stack.auth(1972)).status_code == 200
    assert eventually(lambda: (stored("retweets"), stored("unretweets")) == (4, 2), within_s=2 * CHECKPOINT_S + 10), \
        (stored("retweets"), stored("unretweets"))
    time.sleep(CHECKPOINT_S + 1)   # what the lane counted last is checkpointed too: nothing more
    assert (stored("retweets"), stored("unretweets")) == (4, 2)
    assert rc.get(counter_key("retweets", tid)) == "4" and rc.get(counter_key("unretweets", tid)) == "2"
    assert shown() == 2


def test_replies_made_and_deleted_after_the_counters_were_lost_are_counted_once_each(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """Every reply event comes twice at least (the API's, then the fan-out lane's). Once the
    replies' counted set was lost with its shard, the second counted again: shard-lost showed 5
    replies for 4 (2026-12-06). Here every event of the replies before the wipe is delivered once
    more after it, then one reply is made and one deleted."""
    author = 2968
    tid = int(post(client, stack, author, "replied to, wiped"))
    replies: dict[int, int] = {}
    for user in (2969, 2970, 2971):
        r = client.post("/v1/tweets", headers=stack.auth(user), json={"text": "a reply", "reply_to_tweet_id": str(tid)})
        assert r.status_code == 201, r.text
        replies[user] = int(r.json()["tweet_id"])
    assert client.delete(f"/v1/tweets/{replies[2969]}", headers=stack.auth(2969)).status_code == 200

    def stored() -> tuple[int, int]:
        counts = store.counts_sync([tid]).get(tid, {})
        return counts.get("replies", 0), counts.get("unreplies", 0)

    assert eventually(lambda: stored() == (3, 1), within_s=CHECKPOINT_S + 10), stored()
    rc.delete(tweet_key(tid), *(k(c, tid) for c in ("replies", "unreplies") for k in (counter_key, counted_key)))
    again = Producer({"bootstrap.servers": f"127.0.0.1:{stack.topo.kafka_proxy_port}"})
    for kind, member in [*(("reply", i) for i in replies.values()), ("unreply", replies[2969])]:
        again.produce(ENGAGEMENT_TOPIC, key=str(tid).encode(), value=orjson.dumps(engagement_event(kind, tid, member)))
    assert again.flush(10) == 0
    r = client.post("/v1/tweets", headers=stack.auth(2972), json={"text": "a reply", "reply_to_tweet_id": str(tid)})
    assert r.status_code == 201, r.text
    assert client.delete(f"/v1/tweets/{replies[2970]}", headers=stack.auth(2970)).status_code == 200
    assert eventually(lambda: stored() == (4, 2), within_s=2 * CHECKPOINT_S + 10), stored()
    time.sleep(CHECKPOINT_S + 1)   # what the lane counted last is checkpointed too: nothing more
    assert stored() == (4, 2)
    assert rc.get(counter_key("replies", tid)) == "4" and rc.get(counter_key("unreplies", tid)) == "2"
    tweets = client.get(f"/v1/users/{author}/tweets", headers=stack.auth(author)).json()["tweets"]
    assert next(t["engagement"]["replies"] for t in tweets if t["tweet_id"] == str(tid)) == 2


def worker_metric(stack: Stack, name: str, **labels: str) -> float:
    """A counter of the fan-out workers, summed over them (0 where it has no sample yet)."""
    return metric_total((stack.topo.worker_metrics_port(i) for i in range(1, stack.topo.fanout_workers + 1)),
                        name, **labels)


def test_the_first_likes_of_a_new_tweet_are_counted_without_reading_the_store(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    """Since a lost counted set is rebuilt from the store, a missing one costs the aggregator two
    store reads (the checkpointed count, the likers or retweets) before it counts. Every new
    tweet had no set before its first like (or retweet). Now the API caches them with the tweet,
    holding only NOBODY."""
    tid = int(post(client, stack, 1291, "liked while new"))
    counted = counted_key("likes", tid)
    assert rc.smembers(counted) == {NOBODY}
    rebuilt = functools.partial(worker_metric, stack, "feed_counter_bases_total", counter="likes")
    before = rebuilt()
    for user in (1292, 1293):
        assert client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user)).status_code == 200
    assert eventually(lambda: rc.get(counter_key("likes", tid)) == "2")
    assert rebuilt() == before
    assert rc.smembers(counted) == {NOBODY, "1292", "1293"}
    # retweets alike, since their counted set is rebuilt from the store too
    retweets_rebuilt = functools.partial(worker_metric, stack, "feed_counter_bases_total", counter="retweets")
    before = retweets_rebuilt()
    assert rc.smembers(counted_key("retweets", tid)) == {NOBODY}
    made = client.post(f"/v1/tweets/{tid}/retweet", headers=stack.auth(1294))
    assert made.status_code == 200, made.text
    assert eventually(lambda: rc.get(counter_key("retweets", tid)) == "1")
    assert retweets_rebuilt() == before
    assert rc.smembers(counted_key("retweets", tid)) == {NOBODY, made.json()["retweet_id"]}


def test_an_object_cached_again_without_its_counter_shows_the_stores_count(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """A late fan-out (a redelivered batch, a parked write) caches the tweet object with SET NX
    and no counter. After the counter was lost, readers took the lone object for a tweet
    nobody liked, and showed 0 until the next like."""
    author = 1281
    tid = post(client, stack, author, "liked, forgotten, then fanned out late")
    assert drained(stack, within_s=60)                    # the fan-out's own write is done
    for user in (1282, 1283, 1284):
        client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user))
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=CHECKPOINT_S + 10)
    obj = rc.get(tweet_key(int(tid)))
    assert obj is not None
    rc.delete(tweet_key(int(tid)), counter_key("likes", int(tid)), counted_key("likes", int(tid)))
    assert rc.set(tweet_key(int(tid)), obj, nx=True, ex=600)   # what a late fan-out writes: no counter
    assert likes_seen(client, stack, author, tid) == 3


def test_lose_counter_events_defect_drops_likes_from_the_count(
        client: httpx.Client, stack: Stack, sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    author = 931
    tid = post(client, stack, author, "likes that go nowhere")
    metrics = sibling_worker({"FEED_DEFECT_LOSE_COUNTER_EVENTS": "1"}).metrics
    for user in (932, 933, 934):
        assert client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user)).status_code == 200
    bootstrap = f"127.0.0.1:{stack.topo.kafka_proxy_port}"
    assert eventually(lambda: consumer_lag(bootstrap, "counters", ENGAGEMENT_TOPIC) == 0)   # consumed, and lost:
    assert likes_seen(client, stack, author, tid) == 0
    assert 'feed_engagement_counted_total{counter="likes"}' not in httpx.get(metrics).text   # none counted


def two_likes_past_a_checkpoint(client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
                                tid: str, users: tuple[int, int, int]) -> None:
    """With a sibling worker as the only counter lane: one like checkpointed (the lane's first
    checkpoint comes at once), then two counted in Redis with the next checkpoint seconds away."""
    client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(users[0]))
    assert eventually(lambda: store.like_count_sync(int(tid)) == 1)
    for user in users[1:]:
        client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(user))
    assert eventually(lambda: rc.get(counter_key("likes", int(tid))) == "3", within_s=CHECKPOINT_S / 2)


def test_likes_counted_just_before_a_crash_still_reach_the_store(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    """The store is where a count is rebuilt from when its Redis counter is lost, so the
    checkpoint must not lose likes either: an aggregator killed after counting likes in Redis
    but before its next checkpoint leaves them to its successor."""
    author = 941
    tid = post(client, stack, author, "likes counted by an aggregator about to die")
    worker = sibling_worker({})
    two_likes_past_a_checkpoint(client, stack, store, rc, tid, (942, 943, 944))
    worker.proc.kill()   # counted in Redis, its next checkpoint still seconds away
    worker.hand_back()
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=3 * CHECKPOINT_S)
    assert rc.get(counter_key("likes", int(tid))) == "3"   # re-delivered to the successor, and not counted twice


def test_likes_not_yet_checkpointed_survive_their_counter_being_recached_from_the_store(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    """A counter lost between two checkpoints comes back from the store's count, which lacks
    the likes counted since: the next checkpoint must still write them, and lift the counter."""
    author = 945
    tid = post(client, stack, author, "liked, forgotten, re-cached")
    sibling_worker({})
    two_likes_past_a_checkpoint(client, stack, store, rc, tid, (946, 947, 948))
    rc.delete(tweet_key(int(tid)), counter_key("likes", int(tid)))   # the shard restarted empty, say
    assert likes_seen(client, stack, author, tid) == 1    # re-cached with the store's count
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=3 * CHECKPOINT_S)
    assert eventually(lambda: likes_seen(client, stack, author, tid) == 3)


def test_a_rebalance_in_the_middle_of_counting_adds_each_like_to_the_store_once(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    """Lanes join while one holds likes it has not checkpointed: it must checkpoint them before
    the newcomers re-read its uncommitted events (or both would add them to the store)."""
    author = 955
    tid = post(client, stack, author, "counted across a rebalance")
    sibling_worker({})
    two_likes_past_a_checkpoint(client, stack, store, rc, tid, (956, 957, 958))
    for w in stack.topo.worker_names():   # they rejoin the lanes: partitions move
        stack.runtime.resume(w)
    assert eventually(lambda: group_sizes(stack)["counters"] == 1 + len(stack.topo.worker_names()), within_s=30)
    time.sleep(2 * CHECKPOINT_S)
    assert store.like_count_sync(int(tid)) == 3 and rc.get(counter_key("likes", int(tid))) == "3"


@dataclasses.dataclass(frozen=True)
class OwnLink:
    """A Toxiproxy proxy of this test's own to a store: faults on it reach no other client."""
    toxiproxy: ToxiproxyApi
    name: str
    listen: str

    def delay_replies(self, ms: int) -> None:
        self.toxiproxy.add_toxic(self.name, "slow-replies", "latency", "downstream", latency=ms)

    def heal(self) -> None:
        self.toxiproxy.remove_toxic(self.name, "slow-replies")

    def enable(self, enabled: bool) -> None:
        """Down: its connections are closed and new ones refused."""
        self.toxiproxy.set_enabled(self.name, enabled)


@pytest.fixture
def own_cassandra_link(stack: Stack) -> Iterator[OwnLink]:
    toxiproxy, name = stack.runtime.toxiproxy.client, "cassandra-test-lane"
    listen = toxiproxy.create_proxy(name, f"127.0.0.1:{stack.topo.cassandra_port}")
    try:
        yield OwnLink(toxiproxy, name, listen)
    finally:
        toxiproxy.delete_proxy(name)


@pytest.fixture
def lane_behind_own_link(stack: Stack, own_cassandra_link: OwnLink) -> Iterator[CounterLane]:
    """A counter lane in this process (not subscribed: the test drives its checkpoints), its
    store reached through `own_cassandra_link`."""
    worker = FanoutWorker(Settings.from_env({**stack.runtime.feed.env(), "FEED_CASSANDRA": own_cassandra_link.listen}))
    lane = CounterLane(worker)
    try:
        yield lane
    finally:
        lane.consumer.close()
        worker.consumer.close()
        worker.store.cluster.shutdown()


def two_likes_counted_since_a_checkpoint(client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
                                         lane: CounterLane, author: int) -> int:
    """A tweet with 3 likes in its Redis counter and 1 in the store, and the lane holding the 2
    it counted since its last checkpoint."""
    tid = int(post(client, stack, author, "liked while the store's link was failing"))
    store.add_counts_sync({(tid, "likes"): 1})
    rc.set(counter_key("likes", tid), 3, ex=600)
    lane.touched, lane.pending = {(tid, "likes")}, {(tid, "likes"): 2}
    return tid


def failing_adds(lane: CounterLane, fault: Callable[[], None], heal: Callable[[], None]) -> Callable[[], None]:
    """Make the lane's next adds run under `fault`, healed after each; returns the undo."""
    add = lane.store.add_counts_sync

    def add_under_fault(deltas: dict[CounterKey, int]) -> set[CounterKey]:
        fault()
        try:
            return add(deltas)
        finally:
            heal()

    lane.store.add_counts_sync = add_under_fault   # type: ignore[method-assign]
    return lambda: setattr(lane.store, "add_counts_sync", add)


def test_a_counter_update_applied_after_its_timeout_is_not_added_again(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster, own_cassandra_link: OwnLink,
        lane_behind_own_link: CounterLane) -> None:
    """Cassandra counter updates are not idempotent, so a checkpoint whose add timed out yet was
    applied must not add the same likes at the next one. The reply to the add is delayed past
    the driver's timeout; the add itself reaches Cassandra at once."""
    lane = lane_behind_own_link
    tid = two_likes_counted_since_a_checkpoint(client, stack, store, rc, lane, 974)
    undo = failing_adds(lane, lambda: own_cassandra_link.delay_replies(ms=int(REQUEST_TIMEOUT_S * 1000) + 3000),
                        own_cassandra_link.heal)
    assert lane._checkpoint_and_commit() is False                # timed out...
    assert eventually(lambda: store.like_count_sync(tid) == 3)   # ...and applied all the same
    undo()
    assert lane._checkpoint_and_commit() is True
    assert store.like_count_sync(tid) == 3


def test_a_counter_update_that_failed_is_made_again_even_if_its_counter_is_lost_meanwhile(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster, own_cassandra_link: OwnLink,
        lane_behind_own_link: CounterLane) -> None:
    """The other side of the same question: an add that did not land is made again at the next
    checkpoint, from what the lane counted, not from the Redis counter (lost here, before it)."""
    lane = lane_behind_own_link
    tid = two_likes_counted_since_a_checkpoint(client, stack, store, rc, lane, 976)
    undo = failing_adds(lane, lambda: own_cassandra_link.enable(False), lambda: own_cassandra_link.enable(True))
    assert lane._checkpoint_and_commit() is False
    assert store.like_count_sync(tid) == 1
    rc.delete(counter_key("likes", tid))
    undo()
    assert eventually(lane._checkpoint_and_commit, within_s=30)   # once the driver has reconnected
    assert store.like_count_sync(tid) == 3


@pytest.mark.parametrize("reader_caches", ["before the raise", "after the raise"])
def test_a_lost_counter_re_cached_from_the_store_count_before_a_checkpoint_is_raised_to_the_new_one(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        lane_behind_own_link: CounterLane, reader_caches: str) -> None:
    """A reader re-caches a lost counter from the store's count, which it may have read before a
    checkpoint's add landed, and write after the checkpoint read the counters (or even after it
    raised them). shard-lost showed a retweet at 0 for good (verify, 2026-12-06): the checkpoint
    raised only the counters it had seen, and nothing touched this one again."""
    lane = lane_behind_own_link
    tid = two_likes_counted_since_a_checkpoint(client, stack, store, rc, lane,
                                               2978 if reader_caches == "before the raise" else 2979)
    counter = counter_key("likes", tid)
    rc.delete(counter)                          # lost with its shard
    stale = store.like_count_sync(tid)          # 1: what a reader read from the store, before the add
    add, raise_to = lane.store.add_counts_sync, lane.counter.raise_to

    def add_then_reader_caches(deltas: dict[CounterKey, int]) -> set[CounterKey]:
        failed = add(deltas)
        rc.set(counter, stale, nx=True)
        return failed

    def raise_then_reader_caches(counts: Mapping[CounterKey, int]) -> None:
        raise_to(counts)
        rc.set(counter, stale, nx=True)

    if reader_caches == "before the raise":
        lane.store.add_counts_sync = add_then_reader_caches   # type: ignore[method-assign]
    else:
        lane.counter.raise_to = raise_then_reader_caches      # type: ignore[method-assign]
    try:
        assert lane._checkpoint_and_commit()
    finally:
        lane.store.add_counts_sync, lane.counter.raise_to = add, raise_to   # type: ignore[method-assign]
    assert store.like_count_sync(tid) == 3
    if reader_caches == "after the raise":
        assert rc.get(counter) == "1"           # the reader's write came last
        assert lane._checkpoint_and_commit()    # the next checkpoint looks at it again
    assert rc.get(counter) == "3"


def test_a_first_like_lost_with_its_shard_before_the_checkpoint_still_reaches_the_store(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster) -> None:
    """A tweet's first like finds no counted set, so the aggregator rebuilds it from the store,
    which holds that like already. The like must still be checkpointed when the shard loses the
    counter before the next checkpoint: shard-lost showed a liked tweet at 0 for good (verify,
    2026-12-05) when the rebuilt count was not carried to the store."""
    author = 941
    for attempt in range(3):   # the wipe must come before the aggregator's next checkpoint
        tid = post(client, stack, author, f"liked once, then the shard went ({attempt})")
        counter, counted = counter_key("likes", int(tid)), counted_key("likes", int(tid))
        assert client.post(f"/v1/tweets/{tid}/like", headers=stack.auth(942)).status_code == 200
        assert eventually(functools.partial(lambda key: rc.get(key) == "1", counter), within_s=CHECKPOINT_S)
        if store.like_count_sync(int(tid)) == 0:   # counted in Redis, not checkpointed yet
            rc.delete(tweet_key(int(tid)), counter, counted)
            break
    else:
        pytest.fail("each like was checkpointed before it could be wiped: the case was not made")
    assert eventually(lambda: store.like_count_sync(int(tid)) == 1, within_s=CHECKPOINT_S + 10)
    assert eventually(lambda: likes_seen(client, stack, author, tid) == 1)


def test_a_lane_that_waited_on_redis_checkpoints_on_schedule_after_it(
        client: httpx.Client, stack: Stack, store: Store, rc: redis.RedisCluster,
        sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    """A lane blocked on one Redis shard for longer than half a Kafka session kept heartbeating
    (only a frozen process stops), so it must not wait a session before its next checkpoint: the
    likes of a counter lost meanwhile come back from that checkpoint. shard-lost showed a like
    acknowledged before the wipe as 0 likes 10 s after the shard came back (verify, 2026-12-05)."""
    from chaos.build import build
    from harness.campaign import chaos_stack

    author = 2961   # ids no other stack test uses (one stack for all)
    tid = post(client, stack, author, "liked, then lost with its shard while the lane waited")

    def shard(t: str) -> str:
        return stack.runtime.redis.shard_of(counter_key("likes", int(t)))[0]

    blocker = next(t for t in (post(client, stack, author, f"blocks the lane {i}") for i in range(30))
                   if shard(t) != shard(tid))
    fault = build("down", f"worker->{shard(blocker)}", {}, chaos_stack(stack.runtime))
    sibling_worker({"FEED_REDIS": ",".join(stack.topo.redis_link_addresses("worker"))})
    two_likes_past_a_checkpoint(client, stack, store, rc, tid, (2962, 2963, 2964))
    fault.invoke()
    try:
        assert client.post(f"/v1/tweets/{blocker}/like", headers=stack.auth(2965)).status_code == 200
        time.sleep(1)   # the lane is counting it, and retrying
        assert store.like_count_sync(int(tid)) == 1, "checkpointed before the lane was blocked: the case was not made"
        rc.delete(tweet_key(int(tid)), counter_key("likes", int(tid)), counted_key("likes", int(tid)))   # wiped
        assert likes_seen(client, stack, author, tid) == 1   # re-cached with the store's count
        time.sleep(6)   # past half a session in one iteration
    finally:
        fault.heal()
    healed = time.monotonic()
    assert eventually(lambda: store.like_count_sync(int(tid)) == 3, within_s=3 * CHECKPOINT_S)
    waited = time.monotonic() - healed
    assert eventually(lambda: likes_seen(client, stack, author, tid) == 3)
    # A lane that waits a session (10 s) after the stall checkpoints 10 s after the heal at the earliest.
    assert waited < Settings.kafka_session_timeout_ms / 1000 - 2, f"checkpointed {waited:.1f} s after the heal"
