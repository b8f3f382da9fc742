"""Server-Sent Events: a connected follower is signalled each new tweet."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack


def test_a_connected_follower_is_signalled_a_new_tweet(stack: Stack) -> None:
    author, reader = 921, 922
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        c.post(f"/v1/users/{author}/follow", headers=stack.auth(reader))
        with c.stream("GET", "/v1/stream", headers=stack.auth(reader)) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(line for line in lines if line.startswith(":")) == ": connected"   # subscribed
            tweet_id = c.post("/v1/tweets", headers=stack.auth(author), json={"text": "ping"}).json()["tweet_id"]
            deadline = time.monotonic() + 10
            for line in lines:
                if line.startswith("data: ") and json.loads(line[6:])["tweet_id"] == tweet_id:
                    break
                assert time.monotonic() < deadline, "no signal within 10 s"
            assert json.loads(line[6:]) == {"type": "tweet", "tweet_id": tweet_id, "author_id": str(author)}


def test_the_first_request_of_a_fresh_api_process_can_be_a_stream(
        stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """A pub/sub does not discover the cluster's slots: an API process that had sent no other
    Redis command (just started) answered every stream with a 503."""
    with httpx.Client(base_url=sibling_api({}), timeout=5) as c, \
            c.stream("GET", "/v1/stream", headers=stack.auth(1522)) as events:
        assert events.status_code == 200, events.read()
        assert next(line for line in events.iter_lines() if line.startswith(":")) == ": connected"


def test_the_stream_needs_a_token(stack: Stack) -> None:
    r = httpx.get(f"{stack.url}/v1/stream", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
