"""The pull-tier id cache's single refresh per author, when the request that runs it is cut
short by its deadline: the requests waiting on the same refresh get a timeout (an outage, their
503), not an InvalidStateError (a 500, and a connection nginx counted against the instance)."""

from __future__ import annotations

import asyncio

import pytest

from targets.feed.outage import is_outage
from targets.feed.pulled import EVICT_AFTER_S, KEEP, PulledTweets
from targets.feed.snowflake import first_id_at
from targets.feed.store import TweetRef

pytestmark = pytest.mark.unit


def test_a_refresh_cut_short_gives_its_waiters_a_timeout() -> None:
    async def hung_store(_authors: list[int], _before: int, _n: int) -> list[TweetRef]:
        await asyncio.sleep(3600)   # a paused Cassandra
        return []

    async def scenario() -> tuple[object, object]:
        pulled = PulledTweets(hung_store)
        owner = asyncio.create_task(pulled.ids([9], 2**63 - 1, 20))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(pulled.ids([9], 2**63 - 1, 20))
        await asyncio.sleep(0.01)
        owner.cancel()   # what asyncio.timeout does to the request at its deadline
        results = await asyncio.gather(owner, waiter, return_exceptions=True)
        return results[0], results[1]

    owner, waiter = asyncio.run(scenario())
    assert isinstance(owner, asyncio.CancelledError)
    assert isinstance(waiter, TimeoutError) and is_outage(waiter), repr(waiter)


def test_a_waiter_cut_short_leaves_the_refresh_to_its_owner() -> None:
    """Seen in cassandra-pause: a request waiting on another's refresh hit its deadline; its
    cancellation cancelled the shared future, and the owner's result then raised
    InvalidStateError (a 500 for a feed read)."""
    async def scenario() -> list[int]:
        answer = asyncio.Event()

        async def slow_store(authors: list[int], _before: int, _n: int) -> list[TweetRef]:
            await answer.wait()   # a paused Cassandra, resumed
            return [TweetRef(7, a, False) for a in authors]

        pulled = PulledTweets(slow_store)
        owner = asyncio.create_task(pulled.ids([9], 2**63 - 1, 20))
        await asyncio.sleep(0.01)
        waiter = asyncio.create_task(pulled.ids([9], 2**63 - 1, 20))
        await asyncio.sleep(0.01)
        waiter.cancel()           # its request's deadline
        await asyncio.gather(waiter, return_exceptions=True)
        answer.set()
        return await owner

    assert asyncio.run(scenario()) == [7]


class Authors:
    """Authors' tweets as the store would answer (ids newest first per author), and the reads."""

    def __init__(self, tweets: dict[int, list[int]]) -> None:
        self.tweets = tweets
        self.reads: list[tuple[str, list[int]]] = []

    async def newest(self, authors: list[int], before: int, n: int) -> list[TweetRef]:
        self.reads.append(("newest", authors))
        return [TweetRef(i, a, False) for a in authors
                for i in sorted((i for i in self.tweets.get(a, []) if i < before), reverse=True)[:n]]

    async def oldest_since(self, authors: list[int], since: int, n: int) -> list[TweetRef]:
        self.reads.append(("since", authors))
        return [TweetRef(i, a, False) for a in authors
                for i in sorted(i for i in self.tweets.get(a, []) if i > since)[:n]]


class Clocks:
    def __init__(self) -> None:
        self.t = 100.0                     # monotonic
        self.wall_ms = 1_796_000_000_000   # wall clock, milliseconds

    def advance(self, s: float) -> None:
        self.t += s
        self.wall_ms += int(s * 1000)


def made_at(ms: int, seq: int = 0) -> int:
    return first_id_at(ms) + seq


def test_a_read_serves_nothing_newer_than_the_oldest_list_it_merges() -> None:
    """Author 1's list is read; 0.6 s later author 2 (new to this process) is read with a tweet
    made 0.1 s before: a list of author 1 read then could hold a tweet of its own made between
    the two reads, so author 2's newer tweet waits until both lists are that fresh."""
    clocks = Clocks()
    t0 = clocks.wall_ms
    store = Authors({1: [made_at(t0 - 500)], 2: [made_at(t0 - 900)]})
    pulled = PulledTweets(store.newest, store.oldest_since, clock=lambda: clocks.t, wall=lambda: clocks.wall_ms / 1000)

    async def scenario() -> tuple[dict[int, list[int]], dict[int, list[int]], list[int], dict[int, list[int]]]:
        await pulled.by_author([1], 2**63 - 1, 20)
        clocks.advance(0.6)
        store.tweets[2].append(made_at(t0 + 500))
        store.tweets[1].append(made_at(t0 + 300))   # made after author 1's list was read
        early = await pulled.by_author([1, 2], 2**63 - 1, 20)
        deeper = await pulled.by_author([1, 2], made_at(t0 - 600), 20)
        delta = await pulled.oldest_since([1, 2], made_at(t0 - 1000), 20)
        clocks.advance(0.5)   # author 1's list expires and is read again
        later = await pulled.by_author([1, 2], 2**63 - 1, 20)
        return early, deeper, sorted(delta), later

    early, deeper, delta, later = asyncio.run(scenario())
    assert early == {1: [made_at(t0 - 500)], 2: [made_at(t0 - 900)]}   # neither t0+300 nor t0+500 yet
    assert deeper == {1: [], 2: [made_at(t0 - 900)]}
    assert delta == sorted([made_at(t0 - 500), made_at(t0 - 900)])
    assert later == {1: [made_at(t0 + 300), made_at(t0 - 500)], 2: [made_at(t0 + 500), made_at(t0 - 900)]}


def test_a_page_or_delta_past_the_kept_ids_reads_the_store_and_old_lists_are_dropped() -> None:
    clocks = Clocks()
    t0 = clocks.wall_ms
    prolific = [made_at(t0 - 10_000 + k) for k in range(KEEP + 10)]
    store = Authors({1: prolific, 2: [made_at(t0 - 20_000)]})
    pulled = PulledTweets(store.newest, store.oldest_since, clock=lambda: clocks.t, wall=lambda: clocks.wall_ms / 1000)

    async def scenario() -> tuple[dict[int, list[int]], list[int], int]:
        page = await pulled.by_author([1, 2], sorted(prolific)[15], 20)   # below the newest KEEP of author 1
        delta = await pulled.oldest_since([1, 2], made_at(t0 - 30_000), 5)
        clocks.advance(EVICT_AFTER_S + 1)
        await pulled.by_author([2], 2**63 - 1, 20)
        return page, sorted(delta), len(pulled._lists)

    page, delta, kept = asyncio.run(scenario())
    assert page[1] == sorted(prolific, reverse=True)[KEEP + 10 - 15:][:20] and page[2] == [made_at(t0 - 20_000)]
    assert delta == sorted(sorted(prolific)[:5] + [made_at(t0 - 20_000)])
    assert [r for r, _ in store.reads] == ["newest", "newest", "since", "newest"]
    assert kept == 1   # author 1's list, unread for EVICT_AFTER_S, was dropped


def test_lists_older_than_a_pushed_id_or_a_cursor_beside_them_are_read_again() -> None:
    """The eighteenth verify table's skip: a page showed a pushed tweet newer than a pull-tier
    tweet that this process's list, read before it, lacked; the next page's cursor stepped
    over it. A list older than the newest id merged beside it, or than the cursor a page is
    read below, is read again first; a list fresh enough is not."""
    clocks = Clocks()
    t0 = clocks.wall_ms
    store = Authors({1: [made_at(t0 - 500)]})
    pulled = PulledTweets(store.newest, store.oldest_since, clock=lambda: clocks.t, wall=lambda: clocks.wall_ms / 1000)

    async def scenario() -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        await pulled.ids([1], 2**63 - 1, 20)                      # author 1's list, read at t0
        clocks.advance(0.4)
        store.tweets[1].append(made_at(t0 + 100))                 # the pull-tier tweet
        pushed = made_at(t0 + 300)                                # a pushed tweet made after it
        unaware = await pulled.ids([1], 2**63 - 1, 20)            # (no pushed id beside it: the list stands)
        older = await pulled.ids([1], 2**63 - 1, 20, newer_than=made_at(t0 - 100))
        beside = await pulled.ids([1], 2**63 - 1, 20, newer_than=pushed)
        clocks.advance(0.4)
        store.tweets[1].append(made_at(t0 + 600))
        below = await pulled.ids([1], made_at(t0 + 700), 20)      # a cursor another process gave
        delta = await pulled.oldest_since([1], made_at(t0 - 1000), 20, newer_than=made_at(t0 + 750))
        for _ in range(3):   # a cursor from the future (a client's own), sent again and again
            clocks.advance(0.01)
            await pulled.ids([1], made_at(t0 + 3_600_000), 20)
        return unaware, older, beside, below, sorted(delta)

    unaware, older, beside, below, delta = asyncio.run(scenario())
    assert unaware == older == [made_at(t0 - 500)]
    assert beside == [made_at(t0 + 100), made_at(t0 - 500)]
    assert below == [made_at(t0 + 600), made_at(t0 + 100), made_at(t0 - 500)]
    assert delta == [made_at(t0 - 500), made_at(t0 + 100), made_at(t0 + 600)]
    # read at t0, again beside the pushed id, again below the cursor; the delta's list (read at
    # t0 + 800 ms) was fresh enough, and so was it for the cursor from the future: that asks
    # for a first page, not for a read after it (which would be a read for every request)
    assert [r for r, _ in store.reads] == ["newest"] * 3
