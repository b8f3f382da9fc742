"""The reference target against the real stack: post → Kafka → fan-out → Redis → feed."""

from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest
import redis

from targets.feed.cache import SENTINEL, timeline_key, tweet_key
from targets.feed.snowflake import EPOCH_MS
from targets.feed.store import Tweet
from tests.stack.conftest import Stack, eventually

pytestmark = pytest.mark.stack



def wait_visible(client: httpx.Client, stack: Stack, user: int, tweet_id: str, within_s: float = 10) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        body = client.get("/v1/feed", headers=stack.auth(user)).json()
        if any(t["tweet_id"] == tweet_id for t in body["tweets"]):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"tweet {tweet_id} not in user {user}'s feed after {within_s} s")


def test_post_fans_out_to_followers_feeds(client: httpx.Client, stack: Stack) -> None:
    author, followers, stranger = 101, [102, 103], 104
    for f in followers:
        assert client.post(f"/v1/users/{author}/follow", headers=stack.auth(f)).status_code == 200
    r = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "hello followers"})
    assert r.status_code == 201
    body = r.json()
    assert body["fan_out_status"] == "queued" and body["author_id"] == str(author)
    for f in followers:
        wait_visible(client, stack, f, body["tweet_id"])
    stranger_feed = client.get("/v1/feed", headers=stack.auth(stranger)).json()
    assert all(t["tweet_id"] != body["tweet_id"] for t in stranger_feed["tweets"])
    own = client.get(f"/v1/users/{author}/tweets", headers=stack.auth(stranger)).json()
    assert own["tweets"][0]["tweet_id"] == body["tweet_id"]
    assert own["tweets"][0]["text"] == "hello followers"


def test_cursor_pagination_walks_the_whole_timeline_once(client: httpx.Client, stack: Stack) -> None:
    author, reader = 201, 202
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    posted = [client.post("/v1/tweets", headers=stack.auth(author), json={"text": f"n{i}"}).json()["tweet_id"]
              for i in range(25)]
    # One author's events share a Kafka partition, so the newest visible means all are.
    wait_visible(client, stack, reader, posted[-1])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/feed", headers=stack.auth(reader), params=params).json()
        seen += [t["tweet_id"] for t in page["tweets"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(posted, key=int, reverse=True)


def test_a_page_is_full_when_its_newest_tweets_are_filtered_out(client: httpx.Client, stack: Stack) -> None:
    """The unfollow and deletion filters run after the timeline is read; a page must not come
    up short (or empty, with has_more) because the newest entries were filtered out."""
    quiet, loud, reader = 971, 972, 973
    for author in (quiet, loud):
        client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    older = [client.post("/v1/tweets", headers=stack.auth(quiet), json={"text": f"q{i}"}).json()["tweet_id"]
             for i in range(6)]
    wait_visible(client, stack, reader, older[-1])
    newer = [client.post("/v1/tweets", headers=stack.auth(loud), json={"text": f"l{i}"}).json()["tweet_id"]
             for i in range(30)]
    wait_visible(client, stack, reader, newer[-1])
    client.delete(f"/v1/users/{loud}/follow", headers=stack.auth(reader))
    first = client.get("/v1/feed", headers=stack.auth(reader), params={"limit": "5"}).json()
    assert [t["tweet_id"] for t in first["tweets"]] == older[::-1][:5] and first["has_more"] is True
    rest = client.get("/v1/feed", headers=stack.auth(reader), params={"limit": "5", "cursor": first["next_cursor"]})
    assert [t["tweet_id"] for t in rest.json()["tweets"]] == older[:1] and rest.json()["has_more"] is False


def test_a_user_acts_only_as_itself(client: httpx.Client, stack: Stack) -> None:
    assert client.get("/v1/feed").status_code == 401
    assert client.get("/v1/feed", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    from targets.feed.auth import issue_token

    forged = issue_token("not-the-secret-" * 3, 301)
    assert client.get("/v1/feed", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    r = client.post("/v1/tweets", headers=stack.auth(302), json={"text": "mine"})
    assert r.json()["author_id"] == "302"   # the token decides the author, not the body


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b'{"text": ""}', "bad_text"),
    (b'{"text": "' + b"x" * 281 + b'"}', "bad_text"),
    (b'{"text": 5}', "bad_text"),
    (b'{"text": "ok", "media_ids": "m1"}', "bad_media_ids"),
    (b'{"text": "ok", "media_ids": null}', "bad_media_ids"),   # found by schemathesis: not nullable
    (b'{"text": "ok", "reply_to_tweet_id": 12}', "bad_reply_to"),
    (b'{"text": "ok", "reply_to_tweet_id": "\xc2\xb2"}', "bad_reply_to"),   # "²": isdigit, yet int() refuses it
    (b'{"text": "ok", "reply_to_tweet_id": "' + b"9" * 5000 + b'"}', "bad_reply_to"),   # past int()'s digit limit
])
def test_bad_posts_get_a_4xx_with_a_code(client: httpx.Client, stack: Stack, body: bytes, code: str) -> None:
    r = client.post("/v1/tweets", headers={**stack.auth(401), "content-type": "application/json"}, content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize(("query", "code"), [("limit=0", "bad_limit"), ("limit=101", "bad_limit"),
                                             ("limit=x", "bad_limit"), ("cursor=%%%", "bad_cursor"),
                                             ("cursor=eyJ4IjoxfQ", "bad_cursor"), ("cursor=0", "bad_cursor"),
                                             ("cursor=007", "bad_cursor"), ("cursor=", "bad_cursor"),
                                             ("cursor=5-0", "bad_cursor"), ("cursor=5-200", "bad_cursor"),
                                             ("limt=5", "unknown_parameter"), ("limit=%C2%B2", "bad_limit"),
                                             ("limit=" + "9" * 5000, "bad_limit")])
def test_bad_feed_queries_get_a_400(client: httpx.Client, stack: Stack, query: str, code: str) -> None:
    r = client.get(f"/v1/feed?{query}", headers=stack.auth(402))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize("path", [
    f"/v1/users/404/tweets?cursor={2**64}",         # past the store's bigint
    f"/v1/users/404/tweets?cursor={2**63}",
    "/v1/users/404/tweets?cursor=5-20",             # a ranked feed's cursor
    f"/v1/feed?algorithm=ranked&cursor={2**63}-20",
    "/v1/feed?algorithm=ranked&cursor=5-x",
])
def test_cursors_out_of_range_are_a_400(client: httpx.Client, stack: Stack, path: str) -> None:
    r = client.get(path, headers=stack.auth(404))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_cursor"


def test_an_id_past_int_s_digit_limit_is_a_400(client: httpx.Client, stack: Stack) -> None:
    r = client.get(f"/v1/users/{'9' * 5000}/tweets", headers=stack.auth(403))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_user_id"


def test_oversized_bodies_get_a_json_413(client: httpx.Client, stack: Stack) -> None:
    """Over the balancer's limit nginx answers itself; the API's own limit is the same size."""
    body = b'{"text": "' + b"x" * 100_000 + b'"}'
    headers = {**stack.auth(404), "content-type": "application/json"}
    through_nginx = client.post("/v1/tweets", headers=headers, content=body)
    direct = httpx.post(f"http://127.0.0.1:{stack.topo.api_port(1)}/v1/tweets", headers=headers, content=body)
    for r in (through_nginx, direct):
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "too_large"


def test_metrics_expose_latency_and_fanout_lag(client: httpx.Client, stack: Stack) -> None:
    client.get("/v1/feed", headers=stack.auth(501))
    api = httpx.get(f"http://127.0.0.1:{stack.topo.api_port(1)}/metrics").text
    assert "feed_http_request_duration_seconds_bucket" in api
    workers = "".join(httpx.get(f"http://127.0.0.1:{stack.topo.worker_metrics_port(i)}/metrics").text
                      for i in (1, 2))
    assert "feed_fanout_lag_seconds_count" in workers


# What the service must let an SRE watch (issue 3, observability): request latency per endpoint,
# timeline cache hit ratio, hydration latency, fan-out lag and writes/s, Kafka consumer lag,
# celebrity merges, degraded-path requests, breaker state, counter lag.
OBSERVED = {"feed_http_request_duration_seconds", "feed_timeline_cache_requests_total", "feed_hydration_seconds",
            "feed_fanout_lag_seconds", "feed_timeline_writes_total", "feed_kafka_consumer_lag",
            "feed_celebrity_merges_total", "feed_degraded_requests_total", "feed_ranker_breaker_state",
            "feed_counter_lag_seconds"}


def test_the_grafana_dashboard_shows_every_observed_metric_and_only_exposed_ones(stack: Stack) -> None:
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "targets/feed/grafana/feed-dashboard.json")
                           .read_text())
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for p in dashboard["panels"] for t in p["targets"]
            for m in re.findall(r"\b(feed_[a-z_]+)", t["expr"])}
    exposed = httpx.get(f"http://127.0.0.1:{stack.topo.api_port(1)}/metrics").text + "".join(
        httpx.get(f"http://127.0.0.1:{stack.topo.worker_metrics_port(i)}/metrics").text for i in (1, 2))
    missing = sorted(m for m in used if f"# TYPE {m} " not in exposed and f"# TYPE {m.removesuffix('_total')} "
                     not in exposed)
    assert not missing, f"dashboard queries metrics nobody exposes: {missing}"
    unshown = sorted(OBSERVED - used)
    assert not unshown, f"the issue's observability list has no dashboard panel: {unshown}"


def test_pages_and_deltas_reach_every_tweet_of_a_crowded_millisecond(client: httpx.Client, stack: Stack,
                                                                      rc: redis.RedisCluster) -> None:
    """Timeline scores are milliseconds, so every id of one millisecond shares a score. Pages
    read from the cursor's score with a margin of 32 ids: with 100 ids in one millisecond the
    feed ended after 53 of them, and a delta from the middle of it returned nothing newer."""
    reader = 1461
    client.get("/v1/feed", headers=stack.auth(reader))              # a miss: the timeline is created
    assert eventually(lambda: rc.zscore(timeline_key(reader), SENTINEL) is not None)   # rebuilt whole
    ms = int(time.time() * 1000)
    ids = [((ms - EPOCH_MS) << 22) | (31 << 17) | (31 << 12) | seq for seq in range(100)]   # one millisecond
    for i in ids:
        rc.set(tweet_key(i), orjson.dumps(Tweet(i, reader, f"crowded {i & 0xFFF}", [], None).to_json()), ex=600)
    rc.zadd(timeline_key(reader), {str(i): ms for i in ids})

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "20", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/feed", headers=stack.auth(reader), params=params).json()
        seen += [int(t["tweet_id"]) for t in page["tweets"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(ids, reverse=True)

    delta = client.get("/v1/feed/delta", headers=stack.auth(reader), params={"since": str(ids[30]), "limit": "100"})
    assert [int(t["tweet_id"]) for t in delta.json()["tweets"]] == ids[31:]
