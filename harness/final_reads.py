"""Final reads: after settling, read back through the public API what users would see.

For every follower of a push-tier author in the ledger, their home feed (up to
`MAX_TIMELINES` of them: past that, a seeded sample, which the nothing-lost check draws again
and reports); for every author in the ledger, their own tweets, with each one's text and
counts (the duplicates and engagement checks read them); and the home feeds of the users the
checks name besides (`extra_timelines`: who unfollowed, who followed a large account, who
follows a pull-tier author, up to `MAX_TIMELINES` more). Paging stops once a page reaches
tweets older than the oldest acknowledged one (nothing older can be expected), or at the
timeline cap. The records go to final_reads.jsonl, where the checkers find them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from harness.tokens import TokenSource
from records import FINAL_READS, FinalRead, JsonlWriter
from workloads.graph import Graph

PAGE = 100
# Timelines read back at most. On the large graph a one-minute run's authors have 115,000 to
# 135,000 followers: reading them all through the API took about 8 minutes (~230 reads/s).
MAX_TIMELINES = 20_000
PROGRESS_S = 5.0


def timelines_to_read(followers: Iterable[int], limit: int | None, seed: int) -> list[int]:
    """The followers whose timelines are read back: all of them, or `limit` drawn with `seed`."""
    everyone = sorted(set(followers))
    if limit is None or len(everyone) <= limit:
        return everyone
    return sorted(random.Random(seed).sample(everyone, limit))


async def _get(session: aiohttp.ClientSession, path: str, headers: dict[str, str],
               params: dict[str, str]) -> tuple[Any, str]:
    """The page's body, or None and why not; a read that fails is retried (a missing read is
    "unknown", not "lost")."""
    why = "no response"
    for attempt in range(5):
        try:
            async with session.get(path, headers=headers, params=params, allow_redirects=False) as r:
                if r.status == 200:
                    return await r.json(content_type=None), ""
                why = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError):
            why = "no response"
        await asyncio.sleep(0.2 * (attempt + 1))
    return None, why


async def _read(session: aiohttp.ClientSession, tokens: TokenSource, kind: str, user: int, oldest: int,
                max_pages: int) -> FinalRead:
    headers = {"Authorization": f"Bearer {tokens.token(user)}"}
    path = "/v1/feed" if kind == "timeline" else f"/v1/users/{user}/tweets"
    ids: list[str] = []
    texts: dict[str, str] = {}
    counts: dict[str, list[int]] = {}
    originals: dict[str, str] = {}

    def done(complete: bool = True, error: str | None = None) -> FinalRead:
        return FinalRead(kind, user, ids, complete=complete, error=error, texts=texts, counts=counts,
                         originals=originals)

    cursor = None
    for _ in range(max_pages):
        params = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        body, why = await _get(session, path, headers, params)
        if body is None:
            return done(False, f"{path}: {why}")
        page = [t["tweet_id"] for t in body["tweets"]]
        ids.extend(page)
        for t in body["tweets"]:
            if t.get("retweet_of"):
                originals[t["tweet_id"]] = t["retweet_of"]["tweet_id"]
            elif kind == "author":
                texts[t["tweet_id"]] = t.get("text", "")
                e = t.get("engagement") or {}
                counts[t["tweet_id"]] = [int(e.get("likes") or 0), int(e.get("retweets") or 0),
                                         int(e.get("replies") or 0)]
        cursor = body.get("next_cursor")
        if not body.get("has_more") or not cursor or (page and int(page[-1]) < oldest):
            return done()
    return done(int(ids[-1]) < oldest if ids else True,
                None if ids and int(ids[-1]) < oldest else "page budget exhausted")


def _interrupt_is_not_an_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Ctrl-C lands in whichever read is running; the harness reports the interrupted run, so
    the task it left behind need not be logged with a traceback as the process exits."""
    if not isinstance(context.get("exception"), KeyboardInterrupt):
        loop.default_exception_handler(context)


def read_back(*, base_url: str, tokens: TokenSource, graph: Graph, acked: list[tuple[str, int]], run_dir: Path,
              timeline_cap: int, seed: int, max_timelines: int | None = MAX_TIMELINES,
              extra_timelines: Iterable[int] = (), extra_authors: Iterable[int] = (),
              progress: Callable[[int, int], None] | None = None, concurrency: int = 16) -> int:
    """Read back everything the ledger `acked` [(tweet_id, author)] implies, the home feeds of
    `extra_timelines` and the tweets of `extra_authors`; returns reads made."""
    if not acked:
        return 0
    oldest = min(int(t) for t, _ in acked)
    authors = sorted({a for _, a in acked} | set(extra_authors))
    followers = timelines_to_read((f for a in authors if graph.is_push_tier(a) for f in graph.followers_of(a)),
                                  max_timelines, seed)
    extra = timelines_to_read(set(extra_timelines) - set(followers), max_timelines, seed)
    jobs = [("author", a) for a in authors] + [("timeline", f) for f in followers + extra]
    max_pages = timeline_cap // PAGE + 2

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(_interrupt_is_not_an_error)
        sem = asyncio.Semaphore(concurrency)
        done = 0
        shown = time.monotonic()
        async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=concurrency),
                                         timeout=aiohttp.ClientTimeout(total=10)) as session:
            with JsonlWriter(run_dir / FINAL_READS) as out:
                async def one(kind: str, user: int) -> None:
                    nonlocal done, shown
                    async with sem:
                        out.write(await _read(session, tokens, kind, user, oldest, max_pages))
                    done += 1
                    if progress and (time.monotonic() - shown >= PROGRESS_S or done == len(jobs)):
                        shown = time.monotonic()
                        progress(done, len(jobs))
                await asyncio.gather(*(one(k, u) for k, u in jobs))

    asyncio.run(main())
    return len(jobs)
