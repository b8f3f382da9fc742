"""Locust user of the read-path benchmark: GET /v1/feed?limit=20 as a random graph user, at
BENCH_RATE_PER_USER requests/s per simulated user (the runner sizes the user count so the
offered rate holds while latency stays far below 1/rate)."""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant_throughput, task

from targets.feed.auth import issue_token

SECRET = os.environ["BENCH_TOKEN_SECRET"]
USERS = int(os.environ["BENCH_GRAPH_USERS"])
_tokens = {u: {"Authorization": f"Bearer {issue_token(SECRET, u)}"} for u in range(1, USERS + 1)}


class Reader(FastHttpUser):
    wait_time = constant_throughput(float(os.environ["BENCH_RATE_PER_USER"]))
    network_timeout = 10.0

    @task
    def feed(self) -> None:
        self.client.get("/v1/feed?limit=20", headers=_tokens[random.randint(1, USERS)], name="feed")
