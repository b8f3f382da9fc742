"""The write path of design §05b: validation, idempotency keys, rate limit, media, replies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
import redis

from targets.feed.cache import preheat, timeline_key
from targets.feed.guards import PENDING_TTL_S, _idem_key
from targets.feed.snowflake import Snowflake
from targets.feed.store import Store, Tweet
from tests.stack.conftest import Stack, drained, eventually, feed_ids, post

pytestmark = pytest.mark.stack


def own_tweets(client: httpx.Client, stack: Stack, author: int) -> list[dict]:  # type: ignore[type-arg]
    return list(client.get(f"/v1/users/{author}/tweets?limit=100", headers=stack.auth(author)).json()["tweets"])


def test_a_retry_with_the_same_idempotency_key_gets_the_original_201(client: httpx.Client, stack: Stack) -> None:
    author, key = 601, str(uuid.uuid4())
    first = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "once", "idempotency_key": key})
    retry = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "once", "idempotency_key": key})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers.get("idempotent-replay") == "true"
    assert [t["tweet_id"] for t in own_tweets(client, stack, author)] == [first.json()["tweet_id"]]
    # The key belongs to the user: another user's identical key is a different request.
    other = client.post("/v1/tweets", headers=stack.auth(602), json={"text": "once", "idempotency_key": key})
    assert other.status_code == 201 and other.json()["tweet_id"] != first.json()["tweet_id"]


def test_a_retry_after_the_first_attempt_died_stores_and_queues_the_same_tweet(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster) -> None:
    """As if the API process was killed between recording its tweet and writing it to the store:
    the retry writes that very tweet (not a second one) and queues it for fan-out."""
    author, reader, key = 661, 662, str(uuid.uuid4())
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    orphan = Tweet(Snowflake(0, 31).next_id(), author, "the first attempt died", [], None)
    rc.set(_idem_key(author, key), orjson.dumps({"state": "stored", "tweet": orphan.to_json()}), ex=600)
    retry = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "the first attempt died",
                                                                        "idempotency_key": key})
    assert retry.status_code == 201 and retry.json()["tweet_id"] == str(orphan.tweet_id)
    assert [t["tweet_id"] for t in own_tweets(client, stack, author)] == [str(orphan.tweet_id)]
    assert eventually(lambda: str(orphan.tweet_id) in feed_ids(client, stack, reader))


def test_a_claim_in_flight_gets_409_and_expires_on_its_own(client: httpx.Client, stack: Stack,
                                                          rc: redis.RedisCluster) -> None:
    """While the first attempt checks its reply_to (Cassandra paused here), a retry gets 409 and
    the claim's TTL is short: a process killed at that point does not block the key for 24 h."""
    author, key = 671, str(uuid.uuid4())
    parent = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "parent"}).json()["tweet_id"]
    body = {"text": "reply", "reply_to_tweet_id": parent, "idempotency_key": key}
    for i in range(1, stack.topo.api_instances + 1):   # each API process has met the author (registry read)
        assert httpx.get(f"http://127.0.0.1:{stack.topo.api_port(i)}/v1/feed", headers=stack.auth(author)).is_success
    stack.runtime.pause("cassandra")
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/v1/tweets", headers=stack.auth(author), json=body)
            assert eventually(lambda: rc.get(_idem_key(author, key)) is not None, within_s=3)
            assert 0 < rc.ttl(_idem_key(author, key)) <= PENDING_TTL_S
            retry = client.post("/v1/tweets", headers=stack.auth(author), json=body)
            assert retry.status_code == 409 and retry.json()["error"]["code"] == "in_progress"
            assert retry.headers["retry-after"]
            stack.runtime.resume("cassandra")
            assert first.result().status_code in (201, 503)
    finally:
        stack.runtime.resume("cassandra")
    done = client.post("/v1/tweets", headers=stack.auth(author), json=body)
    assert done.status_code == 201
    assert rc.ttl(_idem_key(author, key)) > PENDING_TTL_S   # a finished request keeps its key 24 h


def test_ignore_idempotency_defect_posts_duplicates(stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    url = sibling_api({"FEED_DEFECT_IGNORE_IDEMPOTENCY": "1"})
    author, key = 611, str(uuid.uuid4())
    with httpx.Client(base_url=url, timeout=10) as c:
        a = c.post("/v1/tweets", headers=stack.auth(author), json={"text": "dup", "idempotency_key": key})
        b = c.post("/v1/tweets", headers=stack.auth(author), json={"text": "dup", "idempotency_key": key})
        assert a.status_code == b.status_code == 201
        assert a.json()["tweet_id"] != b.json()["tweet_id"]
        assert len(own_tweets(c, stack, author)) == 2


def test_rate_limit_is_a_sliding_window_with_retry_after(stack: Stack,
                                                         sibling_api: Callable[[dict[str, str]], str]) -> None:
    url = sibling_api({"FEED_RATE_LIMIT_TWEETS": "3", "FEED_RATE_LIMIT_WINDOW_S": "3600"})
    author = 621
    with httpx.Client(base_url=url, timeout=10) as c:
        codes = [c.post("/v1/tweets", headers=stack.auth(author), json={"text": f"r{i}"}).status_code
                 for i in range(3)]
        assert codes == [201, 201, 201]
        refused = c.post("/v1/tweets", headers=stack.auth(author), json={"text": "r3"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 3500 <= int(refused.headers["retry-after"]) <= 3600
        # other users are not affected, and an idempotent replay is not counted
        assert c.post("/v1/tweets", headers=stack.auth(622), json={"text": "x"}).status_code == 201
        assert len(own_tweets(c, stack, author)) == 3


def test_media_must_be_registered_by_the_author(client: httpx.Client, stack: Stack) -> None:
    author = 631
    media = client.post("/v1/media", headers=stack.auth(author), json={"content_type": "image/png", "size_bytes": 2048})
    assert media.status_code == 201
    mid = media.json()["media_id"]
    ok = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "pic", "media_ids": [mid]})
    assert ok.status_code == 201
    assert own_tweets(client, stack, author)[0]["media"] == [{"media_id": mid, "content_type": "image/png"}]
    foreign = client.post("/v1/tweets", headers=stack.auth(632), json={"text": "pic", "media_ids": [mid]})
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "unknown_media"
    unknown = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "pic", "media_ids": ["m_nope"]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_media"
    bad = client.post("/v1/media", headers=stack.auth(author), json={"content_type": "text/html", "size_bytes": 1})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_content_type"


def test_a_reply_must_answer_an_existing_tweet(client: httpx.Client, stack: Stack) -> None:
    parent = client.post("/v1/tweets", headers=stack.auth(641), json={"text": "parent"}).json()["tweet_id"]
    reply = client.post("/v1/tweets", headers=stack.auth(642), json={"text": "re", "reply_to_tweet_id": parent})
    assert reply.status_code == 201
    assert own_tweets(client, stack, 642)[0]["reply_to"] == parent
    orphan = client.post("/v1/tweets", headers=stack.auth(642), json={"text": "re", "reply_to_tweet_id": "12345"})
    assert orphan.status_code == 404 and orphan.json()["error"]["code"] == "unknown_reply_to"


@pytest.mark.parametrize(("text", "ok"), [
    ("é" * 280, True),             # 280 code points
    ("é" * 281, False),
    ("e\u0301" * 140, True),       # e + combining accent: two code points each, as JSON Schema counts
    ("e\u0301" * 141, False),
    ("👨‍👩‍👧" * 56, True),           # a family emoji is five code points
    ("👨‍👩‍👧" * 57, False),
    ("   ", False),
    ("\u3000\u2003", False),       # only white space, of other kinds
])
def test_text_length_counts_code_points_as_the_contract_does(client: httpx.Client, stack: Stack, text: str,
                                                             ok: bool) -> None:
    r = client.post("/v1/tweets", headers=stack.auth(651), json={"text": text})
    assert r.status_code == (201 if ok else 400), r.text


NO_QUEUE_PORT_OFFSET = 589   # in the stack's port block, never bound: an API whose Kafka never answers
NO_REDIS_PORT_OFFSET = 588   # likewise, for its Redis


def queue_down_api(stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> httpx.Client:
    url = sibling_api({"FEED_KAFKA": f"127.0.0.1:{stack.topo.base_port + NO_QUEUE_PORT_OFFSET}"})
    return httpx.Client(base_url=url, timeout=30)   # a publish gives up after 10 s


def test_a_post_that_could_not_be_queued_and_cannot_be_resumed_is_taken_back(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """Without an idempotency key nothing would ever queue a stored tweet whose event Kafka
    refused, and a retry posts a second one: the 503 must mean it was not posted."""
    author = 674
    with queue_down_api(stack, sibling_api) as down:
        r = down.post("/v1/tweets", headers=stack.auth(author), json={"text": "into the void"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_unavailable"
    assert own_tweets(client, stack, author) == []


def test_a_reply_taken_back_is_not_recorded_under_its_parent(
        client: httpx.Client, stack: Stack, store: Store, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """No event of a reply taken back counted it, so the record the counter lane rebuilds the
    parent's reply counts from must not hold it (flagged deleted, it was counted once as a reply
    and once as a deletion whenever both counted sets were rebuilt; one alone was off by one)."""
    author, replier = 2973, 2974
    parent = int(post(client, stack, author, "a parent"))
    with queue_down_api(stack, sibling_api) as down:
        r = down.post("/v1/tweets", headers=stack.auth(replier), json={"text": "into the void",
                                                                          "reply_to_tweet_id": str(parent)})
    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_unavailable"
    assert store.reply_ids_sync(parent) == []
    kept = client.post("/v1/tweets", headers=stack.auth(replier), json={"text": "a reply",
                                                                       "reply_to_tweet_id": str(parent)})
    assert kept.status_code == 201 and store.reply_ids_sync(parent) == [int(kept.json()["tweet_id"])]


def test_a_retry_of_a_post_deleted_since_does_not_bring_it_back(
        client: httpx.Client, stack: Stack, rc: redis.RedisCluster,
        sibling_api: Callable[[dict[str, str]], str]) -> None:
    """Stored, not queued (503), then seen on the author's profile and deleted; the client's
    retry with the same key must not queue it for fan-out again."""
    author, reader, key = 675, 676, str(uuid.uuid4())
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    preheat(stack.topo.redis_proxy_addresses(), [reader])
    with queue_down_api(stack, sibling_api) as down:
        first = down.post("/v1/tweets", headers=stack.auth(author), json={"text": "second thoughts",
                                                                          "idempotency_key": key})
    assert first.status_code == 503
    [stored] = own_tweets(client, stack, author)   # kept: the key lets a retry finish it
    assert client.delete(f"/v1/tweets/{stored['tweet_id']}", headers=stack.auth(author)).status_code == 200
    assert drained(stack, within_s=30)   # the deletion fan-out is done
    retry = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "second thoughts",
                                                                        "idempotency_key": key})
    assert retry.status_code == 201 and retry.json()["tweet_id"] == stored["tweet_id"]
    assert drained(stack, within_s=30)
    assert rc.zscore(timeline_key(reader), stored["tweet_id"]) is None


def test_a_key_is_held_in_the_store_so_a_post_whose_redis_claim_failed_open_stays_resumable(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """With the author's Redis shard unreachable the Redis claim fails open, but the key is still
    held in Cassandra: a post Kafka refused stays stored, its 503 says a retry re-queues it, and
    the retry (Redis answering again) does exactly that: one tweet. (Before the key was held in
    the store, the tweet was taken back and the retry posted another.)"""
    author, key = 677, str(uuid.uuid4())
    url = sibling_api({"FEED_KAFKA": f"127.0.0.1:{stack.topo.base_port + NO_QUEUE_PORT_OFFSET}",
                       "FEED_REDIS": f"127.0.0.1:{stack.topo.base_port + NO_REDIS_PORT_OFFSET}"})
    with httpx.Client(base_url=url, timeout=30) as down:
        r = down.post("/v1/tweets", headers=stack.auth(author), json={"text": "key kept", "idempotency_key": key})
    assert r.status_code == 503 and "stored but not queued" in r.json()["error"]["message"]
    stored = [t["tweet_id"] for t in own_tweets(client, stack, author)]
    assert len(stored) == 1
    retry = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "key kept", "idempotency_key": key})
    assert retry.status_code == 201 and retry.json()["tweet_id"] == stored[0]
    assert [t["tweet_id"] for t in own_tweets(client, stack, author)] == stored


def test_a_retry_is_deduplicated_when_its_first_attempt_found_redis_away(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """A Redis failover between two attempts: the first is made with the shard unreachable (the
    Redis claim fails open), the retry with it back (a fresh Redis claim). The key held in the
    store names the first attempt's tweet, so the retry answers it instead of making a second
    (the default campaign's Redis kill made a retried post twice before)."""
    author, key = 678, str(uuid.uuid4())
    url = sibling_api({"FEED_REDIS": f"127.0.0.1:{stack.topo.base_port + NO_REDIS_PORT_OFFSET}"})
    with httpx.Client(base_url=url, timeout=30) as no_redis:
        first = no_redis.post("/v1/tweets", headers=stack.auth(author), json={"text": "once", "idempotency_key": key})
    assert first.status_code == 201, first.text
    retry = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "once", "idempotency_key": key})
    assert retry.status_code == 201 and retry.json()["tweet_id"] == first.json()["tweet_id"]
    assert [t["tweet_id"] for t in own_tweets(client, stack, author)] == [first.json()["tweet_id"]]


def test_a_retry_made_while_redis_is_away_finds_the_tweet_its_first_attempt_made(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """The other way round: the first attempt with Redis answering (the key held in the store
    by its transaction), the retry with the author's shard unreachable (the store arbitrates)."""
    author, key = 679, str(uuid.uuid4())
    first = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "twice?", "idempotency_key": key})
    assert first.status_code == 201, first.text
    url = sibling_api({"FEED_REDIS": f"127.0.0.1:{stack.topo.base_port + NO_REDIS_PORT_OFFSET}"})
    with httpx.Client(base_url=url, timeout=30) as no_redis:
        retry = no_redis.post("/v1/tweets", headers=stack.auth(author), json={"text": "twice?", "idempotency_key": key})
    assert retry.status_code == 201 and retry.json()["tweet_id"] == first.json()["tweet_id"]
    assert [t["tweet_id"] for t in own_tweets(client, stack, author)] == [first.json()["tweet_id"]]


def test_two_attempts_of_one_key_in_flight_at_once_make_one_tweet(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """The duplicate `shard-lost` made: a retry that Redis could not tell about its first attempt
    (its shard wiped, or here an API without Redis) racing that attempt (claimed in Redis). Both
    wait on a paused Cassandra, so the store has both in hand at once when it resumes; for each
    of 12 such pairs, both answers name one tweet and the author has that one tweet."""
    url = sibling_api({"FEED_REDIS": f"127.0.0.1:{stack.topo.base_port + NO_REDIS_PORT_OFFSET}"})
    authors = range(681, 693)
    bases = [url] + [f"http://127.0.0.1:{stack.topo.api_port(i)}" for i in range(1, stack.topo.api_instances + 1)]
    for author in authors:   # every API process has met the author (a registry read): the pause holds only posts
        for base in bases:
            assert httpx.get(f"{base}/v1/feed", headers=stack.auth(author), timeout=30).is_success
    keys = {author: str(uuid.uuid4()) for author in authors}
    stack.runtime.pause("cassandra")
    try:
        with httpx.Client(base_url=url, timeout=30) as no_redis, ThreadPoolExecutor(2 * len(authors)) as pool:
            futures = {author: [pool.submit(c.post, "/v1/tweets", headers=stack.auth(author),
                                            json={"text": "raced", "idempotency_key": keys[author]})
                                for c in (client, no_redis)] for author in authors}
            time.sleep(1.2)   # both attempts of every pair are waiting on the store (the API gives up at 2.5 s)
            stack.runtime.resume("cassandra")
            answers = {author: [f.result() for f in pair] for author, pair in futures.items()}
    finally:
        stack.runtime.resume("cassandra")
    made = {author: [t["tweet_id"] for t in own_tweets(client, stack, author)] for author in authors}
    twice = {author: ids for author, ids in made.items() if len(ids) != 1}
    statuses = {author: [(r.status_code, r.text[:120]) for r in pair] for author, pair in answers.items()}
    assert not twice, f"keys that made other than one tweet: {twice}; answers {statuses}"
    for author, pair in answers.items():
        assert [r.status_code for r in pair] == [201, 201], [r.text for r in pair]
        assert {r.json()["tweet_id"] for r in pair} == set(made[author]), (author, [r.json() for r in pair])
