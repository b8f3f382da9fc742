"""Seeding a target the harness did not start: the graph through the public API.

Every user registers (`PUT /v1/users/me` with the handle `fl<id>`), then every follow edge is
made (`POST /v1/users/{id}/follow`), `CONCURRENCY` requests at a time, with progress. Both
calls are idempotent in the design (a registration retried answers 200, a follow retried is a
follow), so a request that timed out or got a 5xx is sent again (tenacity: exponential
backoff, `ATTEMPTS` tries), and seeding the same graph twice is no error. Any other answer
stops the seeding with the call and the answer: a 401 means the token source does not match
the service, a 409 on a registration that the handle belongs to another user.

Through the API this is slow next to the local runtime's SSTable import (the small graph's
415,657 follows would take minutes), so aim an external target at a scenario with fewer users
(`--users`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from harness.tokens import TokenSource
from workloads.graph import Graph

CONCURRENCY = 32
ATTEMPTS = 5
TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 5.0
HANDLE_PREFIX = "fl"   # the reference target reserves user<digits> for accounts it seeded itself

Progress = Callable[[str], None]


class SeedingRefused(RuntimeError):
    """The target answered a seeding call with something a retry will not change."""


def handle_of(user_id: int) -> str:
    return f"{HANDLE_PREFIX}{user_id}"


class _Overloaded(Exception):
    """A 5xx or 429: the call may pass when sent again."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text}")
        self.status, self.text = status, text


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Overloaded | aiohttp.ClientError | TimeoutError)


@dataclass
class SeedResult:
    users: int
    follows: int
    seconds: float
    retries: int

    def to_json(self) -> dict[str, float | int]:
        return {"users": self.users, "follows": self.follows, "seconds": round(self.seconds, 1),
                "retries": self.retries}


class ApiSeeder:
    def __init__(self, base_url: str, tokens: TokenSource, progress: Progress) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.progress = progress
        self.retries = 0

    def seed(self, graph: Graph) -> SeedResult:
        t0 = time.monotonic()
        users = list(graph.user_ids)
        asyncio.run(self._run("register", len(users), (("PUT", "/v1/users/me", u, {"handle": handle_of(u)})
                                                       for u in users)))
        edges = graph.edge_count
        asyncio.run(self._run("follow", edges, (("POST", f"/v1/users/{a}/follow", f, None)
                                                for a in graph.authors for f in graph.followers_of(a))))
        return SeedResult(len(users), edges, time.monotonic() - t0, self.retries)

    async def _run(self, what: str, total: int, calls: Iterator[tuple[str, str, int, dict[str, str] | None]]) -> None:
        done = 0
        t0 = next_note = time.monotonic()
        async with aiohttp.ClientSession(self.base_url, connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                                         timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
            async def worker() -> None:
                nonlocal done, next_note
                for method, path, user, body in calls:   # one shared iterator: each call taken once
                    await self._call(session, method, path, user, body)
                    done += 1
                    if time.monotonic() >= next_note:
                        next_note = time.monotonic() + PROGRESS_EVERY_S
                        rate = done / max(time.monotonic() - t0, 1e-9)
                        self.progress(f"{what}: {done:,}/{total:,} ({rate:,.0f}/s, "
                                      f"about {(total - done) / max(rate, 1e-9):,.0f} s left)")
            try:
                async with asyncio.TaskGroup() as group:   # the first failure cancels the other workers
                    for _ in range(CONCURRENCY):
                        group.create_task(worker())
            except ExceptionGroup as failed:   # say the first failure, not the group's wrapper
                raise failed.exceptions[0] from None
        self.progress(f"{what}: {done:,}/{total:,} in {time.monotonic() - t0:.1f} s")

    async def _call(self, session: aiohttp.ClientSession, method: str, path: str, user: int,
                    body: dict[str, str] | None) -> None:
        headers = {"Authorization": f"Bearer {self.tokens.token(user)}"}
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(ATTEMPTS), reraise=True,
                                               wait=wait_exponential(multiplier=0.2, max=5),
                                               retry=retry_if_exception(_retryable)):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.retries += 1
                    # a redirect is an answer to report, not to follow (a POST would become a GET)
                    async with session.request(method, path, headers=headers, json=body, allow_redirects=False) as r:
                        if r.status >= 500 or r.status == 429:
                            raise _Overloaded(r.status, (await r.text(errors="replace"))[:300])
                        if not 200 <= r.status < 300:   # the reference answers 200 or 201; others 204
                            raise SeedingRefused(f"{method} {path} as user {user} answered {r.status}: "
                                                 f"{(await r.text(errors='replace'))[:300]}" + _hint(r.status))
        except _Overloaded as exc:
            raise SeedingRefused(f"{method} {path} as user {user} answered {exc.status} "
                                 f"{ATTEMPTS} times: {exc.text}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SeedingRefused(f"{method} {path} as user {user}: no answer in {ATTEMPTS} tries "
                                 f"({type(exc).__name__}: {exc})") from None


def _hint(status: int) -> str:
    if status == 401:
        return " (the token source does not match the service's: check --token-secret-file or --token-command)"
    if status == 409:
        return (" (the handle belongs to another user of the service, or this user registered another handle "
                "before: seed a fresh service)")
    return ""
