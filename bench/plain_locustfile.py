"""The generator benchmark's reference: a plain Locust FastHttpUser, closed loop, no wait."""

from __future__ import annotations

from locust import FastHttpUser, task


class Plain(FastHttpUser):
    @task
    def get(self) -> None:
        self.client.get("/v1/feed?limit=20", name="static")
