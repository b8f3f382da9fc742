"""The newest tweet ids of pull-tier authors, kept briefly in each API process (design §06).

Every feed page of every follower of a celebrity merges that celebrity's newest tweets. Read
from the store for each page, that is a Cassandra query per page (most readers follow one) for
lists that change a few times a minute. Each API process keeps each pull-tier author's newest
KEEP ids for TTL_S instead, and refreshes them with one query for all the authors that expired
(one refresh at a time per author, however many requests ask meanwhile).

The cost is freshness: a celebrity's new tweet reaches readers up to TTL_S later than it would
otherwise, well inside the 5 s steady-state median. Deleted ones are kept in the lists and
need nothing: hydration drops them (a DELETE rewrites the cached tweet object at once), and
counting them keeps "is there more below" right. Pages deeper than KEEP ids go to the store as
before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from targets.feed.store import Tweet

TTL_S = 1.0
KEEP = 60

REFRESHES = Counter("feed_pulled_refreshes_total", "Store reads of pull-tier authors' newest tweets")

Newest = Callable[[list[int], int, int], Awaitable[list[Tweet]]]   # (authors, before, per_author)


class PulledTweets:
    def __init__(self, newest: Newest, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._newest = newest
        self._clock = clock
        self._entries: dict[int, tuple[float, list[int]]] = {}   # author -> (read at, ids newest first)
        self._refreshing: dict[int, asyncio.Future[None]] = {}

    async def ids(self, authors: list[int], before: int, n: int) -> list[int]:
        """Up to `n` ids of each author older than `before` (deleted ones included), newest first."""
        now = self._clock()
        expired = [a for a in authors if a not in self._entries or now - self._entries[a][0] >= TTL_S]
        if expired:
            await self._refresh(expired)
        out: list[int] = []
        deeper: list[int] = []
        for a in authors:
            _, cached = self._entries.get(a, (0.0, []))
            page = [i for i in cached if i < before][:n]
            if len(page) < n and len(cached) >= KEEP:
                deeper.append(a)     # the page runs past what is kept
            else:
                out.extend(page)
        if deeper:
            out.extend(t.tweet_id for t in await self._newest(deeper, before, n))
        return sorted(out, reverse=True)

    async def _refresh(self, authors: list[int]) -> None:
        waiting = [self._refreshing[a] for a in authors if a in self._refreshing]
        mine = [a for a in authors if a not in self._refreshing]
        if mine:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for a in mine:
                self._refreshing[a] = done
            try:
                read_at = self._clock()
                REFRESHES.inc()
                tweets = await self._newest(mine, 2**63 - 1, KEEP)
                by_author: dict[int, list[int]] = {a: [] for a in mine}
                for t in tweets:
                    by_author.setdefault(t.user_id, []).append(t.tweet_id)
                for a, ids in by_author.items():
                    self._entries[a] = (read_at, sorted(ids, reverse=True))
                done.set_result(None)
            except asyncio.CancelledError:
                # this request's deadline ran out (app.REQUEST_DEADLINE_S): the requests waiting
                # on the same refresh get a timeout (an outage: their 503), not a cancellation
                done.set_exception(TimeoutError("the pull-tier refresh was cut short by its request's deadline"))
                done.exception()
                raise
            except BaseException as exc:
                done.set_exception(exc)
                done.exception()   # retrieved here: this caller raises it, any waiter gets it too
                raise
            finally:
                for a in mine:
                    self._refreshing.pop(a, None)
        if waiting:
            await asyncio.gather(*waiting)
