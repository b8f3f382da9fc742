"""The newest tweet ids of authors, kept briefly in each API process (design §06 and §10).

Two read paths merge many authors' newest tweets from the store:
- the celebrity merge (§06): every feed page of a pull-tier account's followers merges that
  account's newest tweets;
- the fan-in (§10, "fall back to reading directly from Cassandra while cache rebuilds"): a feed
  whose timeline is missing, or whose cache shard is down, is merged from every followee's
  tweets. That is one query over ~150 partitions per read on the small graph (15-25 ms of
  Cassandra CPU, measured), and while a shard fails over a third of all feed reads take it: on
  2 cores that saturated the machine, both API instances stalled past nginx's timeout and most
  reads of the Redis-kill window failed, on every shard.

Each API process keeps each author's newest KEEP ids for TTL_S instead, and refreshes those
that expired with one query (one refresh at a time per author, however many requests ask
meanwhile): an author in many readers' fan-ins is read from the store about once per TTL_S.

The cost is freshness, bounded so that it never reorders a feed. The lists one read merges may
have been read up to TTL_S apart: a list read earlier can lack a tweet older than one a later
list shows, and a cursor taken from that page would step over it for good. So a read serves
only ids made before the oldest list it merges was read (its horizon): a new tweet reaches a
store-path reader up to TTL_S late (well inside the 5 s steady-state median), never behind a
newer one. The same holds beside ids read elsewhere: a read merging the lists with a pushed
timeline, or reading below a cursor, has them read again first if they are older than the
newest pushed id or the cursor (one store query, and only then; a request that joined another's
query, sent before its id, sends one more). Deleted ones are kept in the
lists and need nothing: hydration drops them (a DELETE rewrites the cached tweet object at
once), and counting them keeps "is there more below" right. Pages deeper than KEEP ids go to
the store as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Counter

from targets.feed.snowflake import first_id_at, timestamp_ms
from targets.feed.store import TweetRef

TTL_S = 1.0
KEEP = 60
NO_CURSOR = 2**63 - 1
EVICT_AFTER_S = 30.0   # lists not read again this long are dropped: memory holds the authors read lately

REFRESHES = Counter("feed_pulled_refreshes_total",
                    "Store reads of authors' newest tweet ids (celebrity merge and fan-in), by why: expired "
                    "(older than TTL_S, or not kept) or behind (fresh, but read before an id merged beside it)",
                    ["why"])

Newest = Callable[[list[int], int, int], Awaitable[Sequence[TweetRef]]]        # (authors, before, per_author)
OldestSince = Callable[[list[int], int, int], Awaitable[Sequence[TweetRef]]]   # (authors, since, per_author)


@dataclasses.dataclass(frozen=True)
class _List:
    read_at: float      # the clock (monotonic) when its query was sent
    read_ms: int        # the wall clock then: every tweet made before it was stored is in `ids`
    ids: list[int]      # newest first


class PulledTweets:
    def __init__(self, newest: Newest, oldest_since: OldestSince | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._newest = newest
        self._oldest_since = oldest_since
        self._clock = clock
        self._wall = wall
        self._lists: dict[int, _List] = {}
        self._refreshing: dict[int, asyncio.Future[None]] = {}
        self._swept_at = clock()

    async def ids(self, authors: list[int], before: int, n: int, *, newer_than: int = 0) -> list[int]:
        """Up to `n` ids of each author older than `before` (deleted ones included), newest first.
        `newer_than`: an id the lists must have been read after (`_fresh`)."""
        pages = await self.by_author(authors, before, n, newer_than=newer_than)
        return sorted((i for page in pages.values() for i in page), reverse=True)

    async def by_author(self, authors: list[int], before: int, n: int, *,
                        newer_than: int = 0) -> dict[int, list[int]]:
        """Each author's newest `n` ids older than `before` and below the horizon (deleted ones
        included), newest first. The lists are read after `before` was made, so that a page
        below a cursor another process gave lacks nothing above its horizon. A cursor from the
        future (no page gave it: a client's own) asks nothing of the lists: below it is a first
        page, which the horizon keeps whole; held to "read after it", every such request would
        read the store again."""
        cursor = before if before < NO_CURSOR and timestamp_ms(before) <= int(self._wall() * 1000) else 0
        await self._fresh(authors, after=max(newer_than, cursor))
        upper = min(before, self._horizon(authors))
        out: dict[int, list[int]] = {}
        deeper: list[int] = []
        for a in authors:
            kept = self._lists[a].ids
            page = [i for i in kept if i < upper][:n]
            if len(page) < n and len(kept) >= KEEP:
                deeper.append(a)     # the page runs past what is kept
            else:
                out[a] = page
        if deeper:
            for t in await self._newest(deeper, upper, n):
                out.setdefault(t.user_id, []).append(t.tweet_id)
        return out

    async def oldest_since(self, authors: list[int], since: int, n: int, *, newer_than: int = 0) -> list[int]:
        """Each author's first `n` ids after `since` and below the horizon (deleted ones
        included), in no particular order. `newer_than` as in `ids`."""
        if self._oldest_since is None:
            raise TypeError("this PulledTweets was made without a store read of tweets after an id")
        await self._fresh(authors, after=newer_than)
        upper = self._horizon(authors)
        out: list[int] = []
        deeper: list[int] = []
        for a in authors:
            kept = self._lists[a].ids
            if len(kept) >= KEEP and kept[-1] > since:
                deeper.append(a)     # more may lie between `since` and the oldest kept
            else:
                out.extend(sorted(i for i in kept if since < i < upper)[:n])
        if deeper:
            out.extend(t.tweet_id for t in await self._oldest_since(deeper, since, n) if t.tweet_id < upper)
        return out

    def _horizon(self, authors: list[int]) -> int:
        """The first id made when the oldest of these authors' lists was read."""
        return first_id_at(min(self._lists[a].read_ms for a in authors)) if authors else 2**63 - 1

    async def _fresh(self, authors: list[int], after: int = 0) -> None:
        """Every author's list read less than TTL_S ago, and after the id `after` was made (0:
        any time). A caller merging the lists with ids read elsewhere passes the newest of
        those: a list read before it could lack a tweet older than it, and a page showing both
        would give a cursor that steps over that tweet (a walk skipped one so, in the
        shard-lost row of the eighteenth verify table: the horizon capped the pulled ids only,
        not the pushed ones merged beside them)."""
        # (an id from the future, a pushed one after the wall clock stepped back say, asks no
        # more than a list read now)
        after_ms = min(timestamp_ms(after), int(self._wall() * 1000) - 1) if after else -1
        now = self._clock()
        if now - self._swept_at > EVICT_AFTER_S:
            self._swept_at = now
            for a in [a for a, kept in self._lists.items() if now - kept.read_at > EVICT_AFTER_S]:
                del self._lists[a]
        expired = [a for a in authors if a not in self._lists or now - self._lists[a].read_at >= TTL_S]
        due = set(expired)
        behind = [a for a in authors if a not in due and self._lists[a].read_ms <= after_ms]
        if expired or behind:
            await self._refresh(expired + behind, "expired" if expired else "behind")
        # a refresh another request had sent may have been sent before `after`: then one of ours
        # (one sent while this one waited was sent after it)
        behind = [a for a in authors if self._lists[a].read_ms <= after_ms]
        if behind:
            await self._refresh(behind, "behind")

    async def _refresh(self, authors: list[int], why: str) -> None:
        waiting = [self._refreshing[a] for a in authors if a in self._refreshing]
        mine = [a for a in authors if a not in self._refreshing]
        if mine:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            for a in mine:
                self._refreshing[a] = done
            try:
                read_at, read_ms = self._clock(), int(self._wall() * 1000)
                REFRESHES.labels(why).inc()
                tweets = await self._newest(mine, 2**63 - 1, KEEP)
                by_author: dict[int, list[int]] = {a: [] for a in mine}
                for t in tweets:
                    by_author.setdefault(t.user_id, []).append(t.tweet_id)
                for a, ids in by_author.items():
                    self._lists[a] = _List(read_at, read_ms, sorted(ids, reverse=True))
                done.set_result(None)
            except asyncio.CancelledError:
                # this request's deadline ran out (app.REQUEST_DEADLINE_S): the requests waiting
                # on the same refresh get a timeout (an outage: their 503), not a cancellation
                done.set_exception(TimeoutError("the refresh of authors' newest tweets was cut short by its "
                                                "request's deadline"))
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
            # shielded: a waiter cut short by its own deadline must not cancel the shared future,
            # which the refresh's owner then could not resolve (InvalidStateError: a 500)
            await asyncio.gather(*(asyncio.shield(f) for f in waiting))
