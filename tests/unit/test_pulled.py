"""The pull-tier id cache's single refresh per author, when the request that runs it is cut
short by its deadline: the requests waiting on the same refresh get a timeout (an outage, their
503), not an InvalidStateError (a 500, and a connection nginx counted against the instance)."""

from __future__ import annotations

import asyncio

import pytest

from targets.feed.outage import is_outage
from targets.feed.pulled import PulledTweets
from targets.feed.store import Tweet

pytestmark = pytest.mark.unit


def test_a_refresh_cut_short_gives_its_waiters_a_timeout() -> None:
    async def hung_store(_authors: list[int], _before: int, _n: int) -> list[Tweet]:
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
