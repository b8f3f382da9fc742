"""Seeding a target the harness did not start: the graph through the public API.

Every user registers (`PUT /v1/users/me` with the handle `fl<id>`), then every follow edge is
made (`POST /v1/users/{id}/follow`), `CONCURRENCY` requests at a time, with progress. Both
calls are idempotent in the design (a registration retried answers 200, a follow retried is a
follow), so a request that timed out or got a 5xx is sent again (tenacity: exponential
backoff, `ATTEMPTS` tries), and seeding the same graph twice is no error. Any other answer
stops the seeding with the call and the answer: a 401 means the token source does not match
the service, a 409 on a registration that the handle belongs to another user.

Through the API this is slow next to the local runtime's SSTable import (the small graph's
415,657 follows would take minutes; `external`'s 15,446 take about 100 s on this machine, the
reference target's CPU the limit), so aim an external target at a scenario with fewer users
(`--users`), and seed it once: the service itself keeps a note of what it holds. The display
name of the graph's first account says `feedlab graph <digest> seeded` once every edge is as
the graph has it, and `... in use` from before anything changes the service's follows until
the run that changed them has put them back (`restore`: the follows and unfollows it asked for,
answered or not, undone). A run finding its graph's `seeded` note skips the seeding; any other
note (another graph, a run stopped half-way, a service reset since) has every registration and
follow of the graph sent again (follows outside the graph that an earlier run left, as before
the note, stay). A run whose load was cut short (aborted, interrupted, requests left unanswered,
a generator lost) leaves `in use`, since a follow it has no record of cannot be put back. The
note lives in the service, not in the harness, so a service started afresh at the same address
is seeded afresh. Two runs against one service at once are not supported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from harness.tokens import TokenSource
from workloads.graph import Graph

CONCURRENCY = 32
ATTEMPTS = 5
TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 5.0
HANDLE_PREFIX = "fl"   # the reference target reserves user<digits> for accounts it seeded itself

NOTE = "feedlab graph {digest} {state}"   # the display name of the graph's first account
SEEDED, IN_USE = "seeded", "in use"
NOT_REGISTERED = (403, 404)   # GET /v1/users/me of an account the service does not know (yet)

Progress = Callable[[str], None]
Call = tuple[str, str, int, dict[str, str] | None]   # method, path, as user, JSON body


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


def note(digest: str, state: str) -> str:
    return NOTE.format(digest=digest, state=state)


@dataclass
class SeedResult:
    users: int
    follows: int
    seconds: float
    retries: int
    skipped: bool = False   # the service held the graph already (its note said so)

    def to_json(self) -> dict[str, float | int | bool]:
        return {"users": self.users, "follows": self.follows, "seconds": round(self.seconds, 1),
                "retries": self.retries, "skipped": self.skipped}


def restore_calls(graph: Graph, pairs: Iterable[tuple[int, int]]) -> list[Call]:
    """A follow of each (follower, followee) pair the graph has, an unfollow of each it has not."""
    return [("POST" if graph.follows(f, a) else "DELETE", f"/v1/users/{a}/follow", f, None)
            for f, a in sorted(set(pairs)) if f != a]


class ApiSeeder:
    def __init__(self, base_url: str, tokens: TokenSource, progress: Progress) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.progress = progress
        self.retries = 0

    def seed(self, graph: Graph) -> SeedResult:
        """Every registration and follow of `graph`, unless the service's note says it holds
        them all already; either way the note says `in use` after (the run will change follows)."""
        t0 = time.monotonic()
        users, edges = list(graph.user_ids), graph.edge_count
        held = self.note_of(graph) == note(graph.digest(), SEEDED)
        self._set_note(graph, IN_USE)   # before anything changes the service's follows
        if held:
            self.progress(f"the service holds this graph already ({handle_of(users[0])}'s note says "
                          f"{SEEDED!r}): {edges:,} follows not sent again")
            return SeedResult(len(users), edges, time.monotonic() - t0, self.retries, skipped=True)
        asyncio.run(self._run("register", len(users), (("PUT", "/v1/users/me", u, {"handle": handle_of(u)})
                                                       for u in users)))
        asyncio.run(self._run("follow", edges, (("POST", f"/v1/users/{a}/follow", f, None)
                                                for a in graph.authors for f in graph.followers_of(a))))
        return SeedResult(len(users), edges, time.monotonic() - t0, self.retries)

    def restore(self, graph: Graph, pairs: Iterable[tuple[int, int]], *, seeded: bool = True) -> int:
        """Put the (follower, followee) `pairs` a run asked to follow or unfollow back as `graph`
        has them, then (if `seeded`: the pairs are all the run changed) note the graph `seeded`;
        returns the calls made. Both calls are idempotent, so a pair already as the graph has it
        costs one answered request. The unfollows go first: a follower the run took to its
        follow cap would be refused a follow back (409) before its unfollow."""
        calls = restore_calls(graph, pairs)
        for method in ("DELETE", "POST"):
            batch = [c for c in calls if c[0] == method]
            asyncio.run(self._run("restore " + ("unfollows" if method == "DELETE" else "follows"), len(batch),
                                  iter(batch)))
        if seeded:
            self._set_note(graph, SEEDED)
        return len(calls)

    def note_of(self, graph: Graph) -> str | None:
        """The display name of the graph's first account, or None if the service does not know it."""
        profile = asyncio.run(self._once(("GET", "/v1/users/me", graph.user_ids[0], None), absent=NOT_REGISTERED))
        return str(profile.get("display_name")) if isinstance(profile, dict) else None

    def _set_note(self, graph: Graph, state: str) -> None:
        first = graph.user_ids[0]   # registered by this call if it was not
        asyncio.run(self._once(("PUT", "/v1/users/me", first,
                                {"handle": handle_of(first), "display_name": note(graph.digest(), state)})))

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(self.base_url, connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                                     timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))

    async def _once(self, call: Call, absent: tuple[int, ...] = ()) -> Any:
        async with self._session() as session:
            return await self._call(session, *call, absent=absent)

    async def _run(self, what: str, total: int, calls: Iterator[Call]) -> None:
        done = 0
        t0 = next_note = time.monotonic()
        async with self._session() as session:
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
                    body: dict[str, str] | None, absent: tuple[int, ...] = ()) -> Any:
        """A GET's JSON body (None if it is not JSON), None for a status in `absent` or any other call."""
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
                        if r.status in absent:
                            return None
                        if not 200 <= r.status < 300:   # the reference answers 200 or 201; others 204
                            raise SeedingRefused(f"{method} {path} as user {user} answered {r.status}: "
                                                 f"{(await r.text(errors='replace'))[:300]}" + _hint(r.status))
                        if method != "GET":
                            return None
                        try:
                            return await r.json(content_type=None)
                        except ValueError:   # not JSON: no body to speak of
                            return None
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
