"""The freshness probe: canary tweets, timed from their 201 to first sight in followers' feeds.

Every `interval_s` a probe author (a push-tier account with followers) posts a canary; the
probe then reads the feed of a few of that author's followers, through the public API, until
the canary shows up or `give_up_s` passes. One ProbeRecord per (canary, follower); the canary
also goes into the ledger, so the nothing-lost check covers it.

A read looks at the first page, and deeper (PAGES pages at most) only while every tweet above
is at least as new as the canary: a canary fanned out late to a follower who gets ten tweets a
second in a write burst lands below the twenty posted after it. A look at the first page alone
missed it: in a `worker-crash` run on 2026-12-07 a canary acked after the failover was never
seen by its follower (9 tweets a second in their feed), though nothing was lost. A canary below
PAGES pages of newer tweets still counts as never seen.

The time of sight is the arrival of the answer that held it. Resolution is the poll interval,
0.1 s, until a canary has waited a second; then a tenth of its wait so far (a wait is measured
at most 10 % long), so that a canary held up by a stall costs a few reads a second rather than
ten per follower: on this 2-core machine those reads are load enough to make a stall longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from harness.tokens import TokenSource
from records import LEDGER, PROBES, Ack, JsonlWriter, ProbeRecord
from workloads.graph import Graph

BACKOFF = 0.1   # a waiting canary's next poll: this share of its wait so far (at least poll_s)


PAGE = 20       # a feed page, as a user's first screen asks for it
PAGES = 5       # how deep a canary is looked for below tweets newer than it


def _instant(raw: object) -> datetime | None:
    """A `created_at` as the API writes it (ISO 8601), or None."""
    try:
        t = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def next_page(page: dict[str, Any], created: datetime | None) -> str | None:
    """The cursor of the page after `page` when the canary (created at `created`) may be on it:
    every tweet on this page is at least as new as the canary (a canary fanned out late to a busy
    follower lands below the tweets posted after it). None: it cannot be further down, or the
    API says nothing more, or the times cannot be compared."""
    tweets = page.get("tweets") or []
    cursor = page.get("next_cursor")
    oldest = _instant(tweets[-1].get("created_at")) if tweets else None
    if created is None or oldest is None or oldest < created or not cursor:
        return None
    return str(cursor)


def next_poll_s(waited_s: float, poll_s: float) -> float:
    """How long a follower's watch sleeps before reading its feed again, `waited_s` after the ack."""
    return max(poll_s, BACKOFF * waited_s)


class FreshnessProbe:
    def __init__(self, *, base_url: str, graph: Graph, tokens: TokenSource, run_dir, seed: int,  # type: ignore[no-untyped-def]
                 interval_s: float = 3.0, followers_per_canary: int = 3, poll_s: float = 0.1,
                 give_up_s: float = 30.0) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.interval_s, self.per_canary, self.poll_s, self.give_up_s = (
            interval_s, followers_per_canary, poll_s, give_up_s)
        self.rng = random.Random(seed)
        self.graph = graph
        self.authors = [a for a in graph.authors
                        if graph.follower_count(a) >= followers_per_canary and graph.is_push_tier(a)]
        self.probes = JsonlWriter(run_dir / PROBES)
        self.ledger = JsonlWriter(run_dir / LEDGER)
        self._stop = threading.Event()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None   # set once _main runs
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="probe", daemon=True)
        self.canaries = 0

    def start(self) -> None:
        if not self.authors:
            raise ValueError("no push-tier author has enough followers to probe freshness")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._wake is not None:
            loop, wake = self._wake
            with contextlib.suppress(RuntimeError):   # its loop is closed already
                loop.call_soon_threadsafe(wake.set)
        self._thread.join(timeout=self.give_up_s + 10)
        self.probes.close()
        self.ledger.close()

    def _auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(user)}"}

    async def _main(self) -> None:
        wake = asyncio.Event()
        self._wake = (asyncio.get_running_loop(), wake)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            pending: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                task = asyncio.create_task(self._canary(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                with contextlib.suppress(TimeoutError):   # or woken by stop(): no new canary is begun
                    await asyncio.wait_for(wake.wait(), self.interval_s)
            if pending:
                await asyncio.wait(pending, timeout=self.give_up_s + 5)

    async def _canary(self, client: httpx.AsyncClient) -> None:
        author = self.rng.choice(self.authors)
        followers = self.rng.sample(list(self.graph.followers_of(author)), self.per_canary)
        try:
            r = await client.post("/v1/tweets", headers=self._auth(author),
                                  json={"text": f"canary {uuid.uuid4().hex[:8]}", "idempotency_key": str(uuid.uuid4())})
        except httpx.HTTPError:
            return
        if r.status_code != 201:
            return
        ack_t = time.time()
        body = r.json()
        tweet_id = body["tweet_id"]
        self.ledger.write(Ack(tweet_id=tweet_id, author_id=author, ack_t=ack_t, source="probe"))
        self.canaries += 1
        created = _instant(body.get("created_at"))
        await asyncio.gather(*(self._watch(client, tweet_id, created, author, f, ack_t) for f in followers))

    async def _watch(self, client: httpx.AsyncClient, tweet_id: str, created: datetime | None, author: int,
                     follower: int, ack_t: float) -> None:
        headers = self._auth(follower)
        seen_t = None
        while time.time() - ack_t < self.give_up_s:
            try:
                seen_t = await self._in_feed(client, headers, tweet_id, created)
            except (httpx.HTTPError, ValueError, TypeError, AttributeError):
                pass   # no answer, or one that is not a feed page: not seen this time
            if seen_t is not None:
                break
            await asyncio.sleep(next_poll_s(time.time() - ack_t, self.poll_s))
        self.probes.write(ProbeRecord(tweet_id=tweet_id, author_id=author, follower_id=follower, ack_t=ack_t,
                                      seen_t=seen_t))

    async def _in_feed(self, client: httpx.AsyncClient, headers: dict[str, str], tweet_id: str,
                       created: datetime | None) -> float | None:
        """When the follower's feed was seen holding the canary (the answer's arrival), or None:
        its first page, or the pages after it while everything above is newer (next_page)."""
        cursor = None
        for _ in range(PAGES):
            r = await client.get("/v1/feed", params={"limit": PAGE, **({"cursor": cursor} if cursor else {})},
                                 headers=headers)
            answered_t = time.time()
            if r.status_code != 200:
                return None
            page = r.json()
            tweets = page.get("tweets") or []
            if any(t.get("tweet_id") == tweet_id for t in tweets):
                return answered_t
            cursor = next_page(page, created)
            if cursor is None:
                return None
        return None
