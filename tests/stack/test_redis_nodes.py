"""The API's Redis Cluster client on the real cluster: a slot-map re-read that a request's
deadline cuts short must not close the connections every other request is using."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from targets.feed.redis_nodes import NodeGuardedCluster
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack


async def open_after_a_cut_short_map_read(client: RedisCluster) -> tuple[int, int]:
    """Connections to every node, then a map re-read (what redis-py does inline in the first
    command after any node error) cancelled while it waits for its first reply: (open before,
    open after)."""
    for i in range(30):   # one after the other (redis-py 8.1's fresh client races many at once)
        await client.set(f"spread:{i}", "1")   # a connection to every primary
    before = sum(c.is_connected for n in client.get_nodes() for c in n._connections)
    client._initialize = True              # what a command that met a failed node leaves behind
    read = asyncio.ensure_future(client.initialize())
    for _ in range(10_000):                # under way: its lock taken, waiting for CLUSTER SLOTS
        if read.done() or (client._lock is not None and client._lock.locked()):
            break
        await asyncio.sleep(0.0001)
    read.cancel()                          # what a request's deadline does to it
    await asyncio.gather(read, return_exceptions=True)
    await asyncio.sleep(0.2)
    after = sum(c.is_connected for n in client.get_nodes() for c in n._connections)
    await client.aclose()
    return before, after


def nodes(stack: Stack) -> list[ClusterNode]:
    return [ClusterNode("127.0.0.1", stack.topo.redis_proxy_port(i))
            for i in range(1, len(stack.topo.redis_names()) + 1)]


def test_a_cut_short_map_read_closes_no_connection(stack: Stack) -> None:
    before, after = asyncio.run(open_after_a_cut_short_map_read(
        NodeGuardedCluster(startup_nodes=nodes(stack), decode_responses=True, require_full_coverage=False)))
    assert before >= 3 and after >= before, (before, after)


def test_redis_py_s_own_client_closes_them_all(stack: Stack) -> None:
    """What the guarded client is for: the stock client disconnects every connection of every
    node when its map read is cancelled, the ones requests are using included (if this starts
    failing, redis-py changed it and the override can be looked at again)."""
    before, after = asyncio.run(open_after_a_cut_short_map_read(
        RedisCluster(startup_nodes=nodes(stack), decode_responses=True, require_full_coverage=False)))
    assert before >= 3 and after == 0, (before, after)
