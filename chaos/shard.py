"""A whole Redis shard lost: its primary and its replica killed together (design §10's row "whole
Redis shard lost"). Nothing is left to fail over to, and the nodes keep no data on disk (no
RDB, no AOF), so when they start again the shard serves its slots empty: every timeline, follow
set and counter it held is gone, to be rebuilt from the store.

invoke: resolve the primary (`redis-primary-N`), record its slots (the availability check's
blast radius) and its replicas, SIGKILL them all. heal: start the primary, then its replicas,
and wait until the cluster is whole again. The nodes are remembered before any signal, so an
invoke that failed half-way is healed like any other.
"""

from __future__ import annotations

import time

from chaos.fault import RedisClusterView, Runtime, resolve_redis_role
from chaos.process import HEAL_DEADLINE_S
from records import FaultWindow


class ShardWipe:
    def __init__(self, target: str, runtime: Runtime, cluster: RedisClusterView, *, name: str = "wipe-shard",
                 heal_deadline_s: float = HEAL_DEADLINE_S) -> None:
        self.name = name
        self.target = target
        self.runtime = runtime
        self.cluster = cluster
        self.heal_deadline_s = heal_deadline_s
        self.window = FaultWindow(name, target=target)
        self._nodes: list[str] = []
        self._healed = False

    def invoke(self) -> None:
        primary = resolve_redis_role(self.target, self.cluster)
        self.window.target = primary
        slots = [list(r) for r in self.cluster.slots_of(primary)]
        self._nodes = [primary, *self.cluster.replicas_of(primary)]
        self.window.start_t = time.time()
        for node in self._nodes:
            self.runtime.kill(node)
        self.window.event("killed", components=self._nodes, signal="SIGKILL", role=self.target, slots=slots)

    def heal(self) -> None:
        if not self._nodes or self._healed:
            return
        self.window.event("restarting", components=self._nodes)
        for node in self._nodes:   # the primary first: it takes its slots back, empty
            self.runtime.restart(node, deadline_s=self.heal_deadline_s)
        self.cluster.wait_cluster_ok(60)
        self._healed = True
        self.window.end_t = time.time()
        self.window.event("healed", roles=self.cluster.roles())
