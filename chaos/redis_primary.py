"""Kill a Redis Cluster primary (design §10: timeline cache node failure).

invoke: SIGKILL the N-th current primary (`redis-primary-N`, counted among the primaries at
invoke time, by name order), then wait until its replica has been promoted and the cluster is
ok again. heal: restart the killed node; it rejoins as a replica of the promoted one, and the
heal ends once the cluster is whole (3 primaries + 3 replicas) again.
"""

from __future__ import annotations

import time

from chaos.fault import RedisClusterView, Runtime, Window


class KillRedisPrimary:
    name = "kill-redis-primary"

    def __init__(self, runtime: Runtime, cluster: RedisClusterView, *, primary_index: int = 1,
                 failover_deadline_s: float = 30) -> None:
        if primary_index < 1:
            raise ValueError("primary_index is 1-based")
        self.runtime = runtime
        self.cluster = cluster
        self.primary_index = primary_index
        self.failover_deadline_s = failover_deadline_s
        self.window = Window(self.name)
        self._killed: str | None = None
        self._healed = False

    def invoke(self) -> None:
        primaries = self.cluster.primaries()
        if len(primaries) < self.primary_index:
            raise RuntimeError(f"redis-primary-{self.primary_index} does not exist (primaries: {primaries})")
        target = primaries[self.primary_index - 1]
        # which users' data the fault takes away (the availability check's blast radius)
        slots = self.cluster.slots_of(target)
        self.window.target = target
        self.window.start_t = time.time()
        self.runtime.kill(target)
        self._killed = target
        self.window.event("killed", component=target, signal="SIGKILL", slots=[list(r) for r in slots])
        promoted_t = self.cluster.wait_failover(target, self.failover_deadline_s)
        self.window.event("failover-complete", seconds=round(promoted_t - self.window.start_t, 3),
                          roles=self.cluster.roles())

    def heal(self) -> None:
        if self._killed is None or self._healed:
            return
        self.window.event("restarting", component=self._killed)
        self.runtime.restart(self._killed, deadline_s=60)
        self.cluster.wait_cluster_ok(60)
        self._healed = True
        self.window.end_t = time.time()
        self.window.event("healed", roles=self.cluster.roles())
