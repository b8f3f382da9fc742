"""A Redis Cluster client that stops asking a node that just failed (design §10, timeline cache
node failure: the affected reads go to the store at once; nobody else waits).

redis-py's asyncio cluster client answers every connection error or timeout on a node by
marking its whole slot map stale: the next command, to *any* node, re-reads the map under one
lock (CLUSTER SLOTS, and a walk of all 16,384 slots in Python). Until the cluster fails the
dead primary over (seconds), every request that touches its slots fails again and stales the
map again, so every request of the API, on every shard, queues behind map refreshes; measured
in the default campaign's Redis-kill window, both API instances answered nothing for 3 s, nginx
ejected both, and 28-35 % of all feed reads failed.

`NodeGuardedCluster` keeps a short breaker per node: after a connection error or timeout on a
node, commands to it fail at once with `NodeUnavailable` (an outage, so callers read around it
from the store) for `open_s`; then one command probes the node while the others still fail
fast. A failed probe leaves redis-py's own refresh to notice a failover; a good one closes the
breaker. The breaker sits at redis-py's per-node command step (`_execute_command`, the one place
every single command passes with its node): a library breaker (aiobreaker, purgatory) wraps a
call, not the node a cluster client picks inside one, so it would have to be keyed the same way
from outside. Pipelines do not pass there: a client whose pipelines may meet a dead node
(redis-py closes the whole client when a pipeline fails) must be a separate client.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Any

import redis.exceptions
from prometheus_client import Counter
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster

OPEN_S = 0.5   # how long a failed node is not asked; a failover takes seconds, a blip less

SHORT_CIRCUITS = Counter("feed_redis_node_short_circuits_total",
                         "Redis commands failed at once because their node had just failed", ["node"])
NODE_FAILURES = Counter("feed_redis_node_failures_total", "Redis commands that met a connection error or "
                        "timeout, opening the node's breaker", ["node", "error"])


# Set while a command is at its node: redis-py's calls to `aclose` from there are not a close.
_AT_NODE: ContextVar[bool] = ContextVar("at_redis_node", default=False)


class NodeUnavailable(redis.exceptions.ConnectionError):
    """A command not sent: its node failed less than OPEN_S ago (or is being probed)."""


class CommandTableOnce(AsyncCommandsParser):
    """redis-py's table of where each command's keys are, read (COMMAND) once per client.

    redis-py reads it again with every slot map. The table is the server's build, not the
    cluster's state, and reading it is most of a map read's CPU: while a whole shard is down no
    map read lasts (its slots stay unserved) and each node error asks for another. In
    `shard-lost`'s fault window map reads took 15 % of an API process's CPU, two thirds of it
    in this table (py-spy). The node it asks for keys only the server can find (COMMAND
    GETKEYS) still follows each map."""

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if node:
            self.node = node
        if not self.commands:
            await super().initialize()


class NodeGuardedCluster(RedisCluster):
    """redis-py's asyncio RedisCluster with a breaker per node (module docstring)."""

    def __init__(self, *args: Any, open_s: float = OPEN_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_parser = CommandTableOnce()
        self.open_s = open_s
        self._open_until: dict[str, float] = {}
        self._probing: set[str] = set()
        self._map_read: asyncio.Future[Any] | None = None
        self._mapped = False   # a map read has completed (the slots are filled in before the read ends)

    async def initialize(self, *args: Any, **kwargs: Any) -> NodeGuardedCluster:
        """The slot map, read in a task of its own that no request can cancel.

        redis-py re-reads the map inline, in the first command after any node error (~25 ms of
        CPU: CLUSTER SLOTS and COMMAND), and a read that is cancelled (by a request's deadline,
        or a caller's `wait_for`, both short while a node fails over on a busy machine) closes
        every connection of the client: the requests in flight on every healthy node failed with
        it, read around from the store, loaded the machine further, and the next read was
        cancelled too. Here one read runs at a time; a client that has a map goes on routing
        with it meanwhile (a command to the failed node fails fast at its breaker), and one that
        has none yet waits for the first read without being able to cancel it."""
        if not self._initialize:
            return self
        if self._map_read is None or self._map_read.done():
            self._map_read = asyncio.ensure_future(super().initialize(*args, **kwargs))
            self._map_read.add_done_callback(self._map_read_done)
        if not self._mapped:
            await asyncio.shield(self._map_read)
        return self

    def _map_read_done(self, read: asyncio.Future[Any]) -> None:
        """A failure is for the commands that follow to see (they read the map again)."""
        if not read.cancelled() and read.exception() is None:
            self._mapped = True

    def node_open(self, name: str) -> bool:
        """Whether commands to node `name` are failing fast now."""
        return name in self._open_until

    async def _execute_command(self, target_node: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        name = target_node.name
        probe = False
        if name in self._open_until:
            if time.monotonic() < self._open_until[name] or name in self._probing:
                SHORT_CIRCUITS.labels(name).inc()
                raise NodeUnavailable(f"Redis node {name} failed less than {self.open_s} s ago; not asked")
            probe = True
            self._probing.add(name)
        at_node = _AT_NODE.set(True)
        try:
            result = await super()._execute_command(target_node, *args, **kwargs)
        except redis.exceptions.MaxConnectionsError:   # this client's pool, not the node
            raise
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ClusterDownError) as exc:
            NODE_FAILURES.labels(name, type(exc).__name__).inc()
            self._open_until[name] = time.monotonic() + self.open_s
            raise
        else:
            self._open_until.pop(name, None)
            return result
        finally:
            _AT_NODE.reset(at_node)
            if probe:
                self._probing.discard(name)

    async def aclose(self) -> None:
        """Close every connection, unless redis-py asks from a command's error path.

        On a CLUSTERDOWN reply (a restarted node that has not yet seen the cluster whole), and
        after every few MOVED replies, redis-py calls `aclose` to have the map read again: that
        closes every connection of every node, with the commands in flight on them. Those
        failed on healthy nodes ("Connection closed by server", "'NoneType' object has no
        attribute 'writelines'") and opened their breakers, so for a moment every reader went to
        the store: measured in `shard-lost`, where a wiped shard came back. A map read is all
        those callers need."""
        if _AT_NODE.get():
            self._initialize = True
            return
        await super().aclose()

