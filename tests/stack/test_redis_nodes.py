"""The API's Redis Cluster client on the real cluster: neither a slot-map re-read that a request's
deadline cuts short nor a node answering CLUSTERDOWN may close the connections every other
request is using."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from targets.feed.outage import is_outage
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


WAIT_S = 3   # how long each blocking read waits on its healthy node


def node_of(client: RedisCluster, key: str) -> ClusterNode:
    node = client.get_node_from_key(key)
    assert node is not None, key
    return node


async def reads_through_a_clusterdown(client: RedisCluster) -> tuple[list[tuple[object, float]], BaseException | None]:
    """Blocking reads in flight on every other primary while one primary answers CLUSTERDOWN for
    a slot it stopped serving (what a restarted node says until it sees the cluster whole): what
    each of those reads ended with and after how long, and what the read of the unserved slot
    ended with."""
    for i in range(30):
        await client.set(f"spread:{i}", "1")   # a connection to every primary
    down_key = "clusterdown:probe"
    owner = node_of(client, down_key)
    keys: list[str] = []
    for i in range(1000):                      # two keys on each other primary
        node = node_of(client, f"inflight:{i}").name
        if node != owner.name and sum(node_of(client, k).name == node for k in keys) < 2:
            keys.append(f"inflight:{i}")
    for k in keys:
        await client.delete(k)

    async def blocking_read(key: str) -> tuple[object, float]:
        t0 = time.monotonic()
        try:
            got: object = await client.blpop([key], timeout=WAIT_S)
        except redis.exceptions.RedisError as exc:
            got = exc
        return got, time.monotonic() - t0

    admin = redis.Redis(host=owner.host, port=int(owner.port))
    slot = key_slot(down_key.encode())
    admin.execute_command("CLUSTER", "DELSLOTS", slot)
    try:
        reads = [asyncio.ensure_future(blocking_read(k)) for k in keys]
        await asyncio.sleep(0.3)               # each waiting on a connection of its own
        down: BaseException | None = None
        try:
            await client.get(down_key)
        except redis.exceptions.RedisError as exc:
            down = exc
        ended = list(await asyncio.gather(*reads))
    finally:
        admin.execute_command("CLUSTER", "ADDSLOTS", slot)
        admin.close()
    await client.aclose()
    return ended, down


def test_a_node_saying_clusterdown_costs_no_other_node_a_request(whole: Stack) -> None:
    client = NodeGuardedCluster(startup_nodes=nodes(whole), decode_responses=True, require_full_coverage=False)
    ended, down = asyncio.run(reads_through_a_clusterdown(client))
    assert down is not None and is_outage(down), down   # read around from the store
    assert len(ended) >= 4
    # each read waited out its time on its own connection, once: none cut, none sent again
    assert all(got is None and WAIT_S - 0.1 < took < WAIT_S + 0.3 for got, took in ended), ended


def test_redis_py_s_own_client_cuts_them_all_on_clusterdown(whole: Stack) -> None:
    """What the override of `aclose` is for: on a CLUSTERDOWN reply the stock client closes every
    connection of every node, the reads in flight on healthy nodes included (they fail, or are
    sent again and wait again)."""
    ended, down = asyncio.run(reads_through_a_clusterdown(
        RedisCluster(startup_nodes=nodes(whole), decode_responses=True, require_full_coverage=False)))
    assert down is not None and is_outage(down), down
    assert all(got is not None or took > WAIT_S + 0.3 for got, took in ended), ended


def command_tables_sent(stack: Stack) -> int:
    """COMMAND calls every Redis node has answered."""
    total = 0
    for node in nodes(stack):
        with redis.Redis(host=node.host, port=int(node.port)) as direct:
            total += int(direct.info("commandstats").get("cmdstat_command", {}).get("calls", 0))
    return total


async def read_the_map(client: RedisCluster, times: int) -> None:
    """A first map read, then `times` more, as after `times` node errors."""
    await client.initialize()
    for _ in range(times):
        client._initialize = True
        await client.initialize()
        if isinstance(client, NodeGuardedCluster) and client._map_read is not None:
            await client._map_read   # it reads in a task of its own
    await client.aclose()


@pytest.mark.parametrize(("client_class", "tables"), [(NodeGuardedCluster, 1), (RedisCluster, 6)])
def test_the_guarded_client_reads_the_command_table_once_however_often_it_reads_the_map(
        stack: Stack, client_class: type[RedisCluster], tables: int) -> None:
    """While a whole shard is down every node error asks for a map read, and parsing COMMAND's
    reply was most of each; the stock client (the second case) reads it with every map."""
    before = command_tables_sent(stack)
    asyncio.run(read_the_map(client_class(startup_nodes=nodes(stack), decode_responses=True,
                                          require_full_coverage=False), times=5))
    assert command_tables_sent(stack) - before == tables
