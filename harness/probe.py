"""The freshness probe: canary tweets, timed from their 201 to first sight in followers' feeds.

Every `interval_s` a probe author (a push-tier account with followers) posts a canary; the
probe then polls the first feed page of a few of that author's followers, through the public
API, until the canary shows up or `give_up_s` passes. One ProbeRecord per (canary, follower);
the canary also goes into the ledger, so the nothing-lost check covers it. Resolution is the
poll interval.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid

import httpx

from harness.tokens import TokenSource
from records import LEDGER, PROBES, Ack, JsonlWriter, ProbeRecord
from workloads.graph import Graph


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
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="probe", daemon=True)
        self.canaries = 0

    def start(self) -> None:
        if not self.authors:
            raise ValueError("no push-tier author has enough followers to probe freshness")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.give_up_s + 10)
        self.probes.close()
        self.ledger.close()

    def _auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token(user)}"}

    async def _main(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            pending: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                task = asyncio.create_task(self._canary(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(self.interval_s)
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
        tweet_id = r.json()["tweet_id"]
        self.ledger.write(Ack(tweet_id=tweet_id, author_id=author, ack_t=ack_t, source="probe"))
        self.canaries += 1
        await asyncio.gather(*(self._watch(client, tweet_id, author, f, ack_t) for f in followers))

    async def _watch(self, client: httpx.AsyncClient, tweet_id: str, author: int, follower: int,
                     ack_t: float) -> None:
        headers = self._auth(follower)
        seen_t = None
        while time.time() - ack_t < self.give_up_s:
            try:
                r = await client.get("/v1/feed?limit=20", headers=headers)
                if r.status_code == 200 and any(t["tweet_id"] == tweet_id for t in r.json()["tweets"]):
                    seen_t = time.time()
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(self.poll_s)
        self.probes.write(ProbeRecord(tweet_id=tweet_id, author_id=author, follower_id=follower, ack_t=ack_t,
                                      seen_t=seen_t))
