"""The steady feed workload, run by Locust in its own process (gevent stays here).

Readers page their home feed (a first page, sometimes a second through the cursor); posters
tweet with an idempotency key. Read:write is about 30:1. Who acts is drawn with Zipf weights
(a few users are very active). Every request is appended to the run's history, and every 201
to the ledger: the two files the checkers read.

Configuration comes from the environment (set by harness/load.py):
FEEDLAB_RUN_DIR, FEEDLAB_TOKEN_SECRET, FEEDLAB_USERS, FEEDLAB_SEED,
FEEDLAB_RATE_PER_USER (tasks/s for each simulated user), FEEDLAB_READ_WEIGHT, FEEDLAB_WRITE_WEIGHT.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task

from harness.records import HISTORY, LEDGER, Ack, JsonlWriter, Request
from targets.feed.auth import issue_token

RUN_DIR = Path(os.environ.get("FEEDLAB_RUN_DIR", "."))
SECRET = os.environ.get("FEEDLAB_TOKEN_SECRET", "")
USERS = int(os.environ.get("FEEDLAB_USERS", "2000"))
RATE = float(os.environ.get("FEEDLAB_RATE_PER_USER", "1.0"))
READ_WEIGHT = int(os.environ.get("FEEDLAB_READ_WEIGHT", "30"))
WRITE_WEIGHT = int(os.environ.get("FEEDLAB_WRITE_WEIGHT", "1"))
SECOND_PAGE_SHARE = 0.3

_history = JsonlWriter(RUN_DIR / HISTORY)
_ledger = JsonlWriter(RUN_DIR / LEDGER)
_rng = random.Random(int(os.environ.get("FEEDLAB_SEED", "1")) * 7919 + os.getpid())
_ranks = list(range(1, USERS + 1))
_rng.shuffle(_ranks)
_cum = list(itertools.accumulate(1.0 / (i + 1) ** 0.6 for i in range(USERS)))
_tokens: dict[int, str] = {}


def active_user() -> int:
    return _ranks[_rng.choices(range(USERS), cum_weights=_cum)[0]]


def auth(user_id: int) -> dict[str, str]:
    token = _tokens.get(user_id)
    if token is None:
        token = _tokens[user_id] = issue_token(SECRET, user_id)
    return {"Authorization": f"Bearer {token}"}


@events.request.add_listener
def record(request_type: str, name: str, response_time: float, response: Any = None,
           exception: BaseException | None = None, start_time: float | None = None, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    error = None
    if exception is not None:
        error = f"{type(exception).__name__}: {exception}"[:200]
    elif status >= 500 or status == 0:
        error = f"HTTP {status}"
    _history.write(Request(t=start_time or time.time(), op=name, latency_ms=float(response_time),
                           status=int(status), error=error))


@events.quitting.add_listener
def close_files(**_: Any) -> None:
    _history.close()
    _ledger.close()


class FeedUser(FastHttpUser):
    wait_time = constant_throughput(RATE)
    network_timeout = 10.0
    connection_timeout = 5.0

    @task(READ_WEIGHT)
    def read_feed(self) -> None:
        user = active_user()
        with self.client.get("/v1/feed?limit=20", headers=auth(user), name="feed", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            cursor = r.json().get("next_cursor")
        if cursor and _rng.random() < SECOND_PAGE_SHARE:
            with self.client.get(f"/v1/feed?limit=20&cursor={cursor}", headers=auth(user), name="feed_page",
                                 catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}")

    @task(WRITE_WEIGHT)
    def post_tweet(self) -> None:
        author = active_user()
        body = {"text": f"load tweet {uuid.uuid4().hex[:12]} by {author}", "idempotency_key": str(uuid.uuid4())}
        with self.client.post("/v1/tweets", json=body, headers=auth(author), name="post", catch_response=True) as r:
            if r.status_code == 429:   # the rate limit doing its job: not an error, not acknowledged
                r.success()
                return
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code}")
                return
            ack_t = time.time()
            _ledger.write(Ack(tweet_id=r.json()["tweet_id"], author_id=author, ack_t=ack_t, source="load"))
