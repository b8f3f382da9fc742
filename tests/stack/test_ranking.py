"""algorithm=ranked: scored order, and the circuit breaker's chronological fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from targets.feed.store import Store
from tests.stack.conftest import Stack, eventually, feed_ids, post

pytestmark = pytest.mark.stack
CONFIG_TTL_S = 5.0



@pytest.fixture
def ranker_down(stack: Stack) -> Iterator[None]:
    """Chaos on the ranker through runtime config: every call fails until the fixture ends."""
    store = Store(f"127.0.0.1:{stack.topo.cassandra_proxy_port}")
    store.set_runtime_config_sync("ranker.fail_share", "1")
    time.sleep(CONFIG_TTL_S + 0.5)
    try:
        yield
    finally:
        store.set_runtime_config_sync("ranker.fail_share", "0")
        store.close()
        time.sleep(CONFIG_TTL_S + 0.5)


def short_circuited(metrics: str) -> float:
    """Ranked requests served chronologically because the breaker was open (this process)."""
    for line in metrics.splitlines():
        if line.startswith('feed_ranker_fallbacks_total{reason="breaker_open"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ranked(c: httpx.Client, stack: Stack, user: int, **params: str) -> httpx.Response:
    return c.get("/v1/feed", params={"algorithm": "ranked", "limit": "100", **params}, headers=stack.auth(user))


def setup_two_tweets(c: httpx.Client, stack: Stack, author: int, reader: int) -> tuple[str, str]:
    """An older tweet with media and likes, then a newer plain one."""
    c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    media = c.post("/v1/media", headers=stack.auth(author), json={"content_type": "image/png", "size_bytes": 9})
    rich = c.post("/v1/tweets", headers=stack.auth(author),
                  json={"text": "rich", "media_ids": [media.json()["media_id"]]}).json()["tweet_id"]
    for liker in (author + 100, author + 101, author + 102):
        c.post(f"/v1/tweets/{rich}/like", headers=stack.auth(liker))
    plain = post(c, stack, author, "plain")
    assert eventually(lambda: [plain, rich] == feed_ids(c, stack, reader)[:2])
    return rich, plain


def test_ranked_puts_engaging_media_above_newer_plain_tweets(client: httpx.Client, stack: Stack) -> None:
    rich, plain = setup_two_tweets(client, stack, 1001, 1002)
    def top_two() -> list[str]:
        return [t["tweet_id"] for t in ranked(client, stack, 1002).json()["tweets"]][:2]
    assert eventually(lambda: top_two() == [rich, plain])


def test_ranked_pages_walk_the_same_ranking(client: httpx.Client, stack: Stack) -> None:
    author, reader = 1011, 1012
    client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
    posted = [post(client, stack, author, f"p{i}") for i in range(5)]
    assert eventually(lambda: posted[-1] in feed_ids(client, stack, reader))
    r = ranked(client, stack, reader, limit="3")
    assert r.status_code == 200, r.text
    first = r.json()
    second = ranked(client, stack, reader, limit="3", cursor=first["next_cursor"]).json()
    seen = [t["tweet_id"] for t in first["tweets"] + second["tweets"]]
    assert sorted(seen) == sorted(posted) and second["has_more"] is False
    # A cursor continues the feed it came from: a chronological one gives a chronological page.
    below = ranked(client, stack, reader, limit="2", cursor=posted[2]).json()
    assert [t["tweet_id"] for t in below["tweets"]] == [posted[1], posted[0]]
    assert client.get("/v1/feed?algorithm=best", headers=stack.auth(reader)).status_code == 400


def test_a_failing_ranker_falls_back_to_chronological_and_opens_the_breaker(
        client: httpx.Client, stack: Stack, ranker_down: None) -> None:
    rich, plain = setup_two_tweets(client, stack, 1021, 1022)
    api_1 = f"http://127.0.0.1:{stack.topo.api_port(1)}"     # one instance: one breaker
    with httpx.Client(base_url=api_1, timeout=10) as direct:
        before = short_circuited(direct.get("/metrics").text)
        for _ in range(8):   # 5 failures open the breaker; the rest never reach the ranker
            r = ranked(direct, stack, 1022)
            assert r.status_code == 200
            assert [t["tweet_id"] for t in r.json()["tweets"]][:2] == [plain, rich]     # chronological
        metrics = direct.get("/metrics").text
    assert "feed_ranker_breaker_state 2.0" in metrics
    assert short_circuited(metrics) - before >= 3


def test_disable_breaker_fallback_defect_turns_ranker_failures_into_503(
        stack: Stack, sibling_api: Callable[[dict[str, str]], str], ranker_down: None) -> None:
    with httpx.Client(base_url=sibling_api({"FEED_DEFECT_DISABLE_BREAKER_FALLBACK": "1"}), timeout=10) as c:
        r = ranked(c, stack, 1031)
        assert r.status_code == 503 and r.json()["error"]["code"] == "ranker_unavailable"


def test_ranked_pages_follow_the_first_page_s_order_when_the_ranker_fails_between_them(
        client: httpx.Client, stack: Stack, store: Store) -> None:
    """Page 1 ranked (the liked tweet with media first), later pages served while the ranker is
    down: ranking afresh would fall back to chronological order and slice that, repeating the
    liked tweet and skipping another."""
    author, reader = 1041, 1042
    rich, plain = setup_two_tweets(client, stack, author, reader)
    posted = [rich, plain, *(post(client, stack, author, f"plain {i}") for i in range(2))]
    assert eventually(lambda: posted[-1] in feed_ids(client, stack, reader))

    def first_page() -> Any:
        return ranked(client, stack, reader, limit="2").json()
    assert eventually(lambda: first_page()["tweets"][0]["tweet_id"] == rich)
    first = first_page()
    seen = [t["tweet_id"] for t in first["tweets"]]
    store.set_runtime_config_sync("ranker.fail_share", "1")
    try:
        time.sleep(CONFIG_TTL_S + 0.5)
        cursor = first["next_cursor"]
        while cursor:
            page = ranked(client, stack, reader, limit="2", cursor=cursor).json()
            seen += [t["tweet_id"] for t in page["tweets"]]
            cursor = page["next_cursor"]
    finally:
        store.set_runtime_config_sync("ranker.fail_share", "0")
        time.sleep(CONFIG_TTL_S + 0.5)
    assert sorted(seen) == sorted(posted), "a ranked page repeated or skipped tweets"
