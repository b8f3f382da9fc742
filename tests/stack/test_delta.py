"""GET /v1/feed/delta?since=: what reached the feed after the last poll, oldest first."""

from __future__ import annotations

import httpx
import pytest

from targets.feed.cache import preheat
from tests.stack.conftest import Stack, eventually, feed_ids, post

pytestmark = pytest.mark.stack


def delta(c: httpx.Client, stack: Stack, user: int, since: str, limit: int = 20) -> dict:  # type: ignore[type-arg]
    r = c.get("/v1/feed/delta", params={"since": since, "limit": str(limit)}, headers=stack.auth(user))
    assert r.status_code == 200, r.text
    return dict(r.json())


def tweet_ids(page: dict) -> list[str]:  # type: ignore[type-arg]
    return [t["tweet_id"] for t in page["tweets"]]


@pytest.mark.parametrize("warm", [True, False])
def test_a_poll_returns_what_came_after_since_oldest_first(stack: Stack, warm: bool) -> None:
    author, reader = (1101, 1102) if warm else (1111, 1112)
    if warm:
        preheat(stack.topo.redis_proxy_addresses(), [reader])   # else: the store path
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
        seen = post(c, stack, author, "already seen")
        new = [post(c, stack, author, f"new {i}") for i in range(3)]
        if warm:
            assert eventually(lambda: new[-1] in feed_ids(c, stack, reader))
        # A poll may be a moment behind the page another read was served (one API instance read
        # the shard's replica, or the store's per-second copy of the author's tweets): wait for it
        # to catch up, then judge what it gives.
        eventually(lambda: new[-1] in tweet_ids(delta(c, stack, reader, seen)))
        got = delta(c, stack, reader, seen)
        assert tweet_ids(got) == new and got["has_more"] is False
        assert got["next_since"] == new[-1]
        first = delta(c, stack, reader, seen, limit=2)
        assert tweet_ids(first) == new[:2] and first["has_more"] is True
        assert delta(c, stack, reader, new[-1])["tweets"] == []


def test_a_burst_on_the_store_path_is_walked_oldest_first_without_a_gap(stack: Stack) -> None:
    """With the timeline missing, a poll falls back to the store, which can only list each
    author's newest tweets at once; an author's burst longer than a page must not lose its oldest."""
    author, reader = 1121, 1122   # the reader's timeline is never made: every poll takes the store path
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
        since = post(c, stack, author, "already seen")
        burst = [post(c, stack, author, f"burst {i}") for i in range(7)]
        walked: list[str] = []
        for _ in range(5):
            page = delta(c, stack, reader, since, limit=2)
            walked += [t["tweet_id"] for t in page["tweets"]]
            if not page["has_more"]:
                break
            since = page["next_since"]
        assert walked == burst


def test_since_is_required_and_checked(stack: Stack) -> None:
    for query in ("", "?since=abc", "?since=5&cursor=x"):
        r = httpx.get(f"{stack.url}/v1/feed/delta{query}", headers=stack.auth(1121), timeout=5)
        assert r.status_code == 400
