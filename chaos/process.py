"""Process faults: kill, stop, pause or restart one component, by name or role.

invoke: resolve the target (`redis-primary-2` is whichever node serves as the second primary
now), record which Redis slots it takes away (a primary's: the availability check's blast
radius), act, and for a Redis primary that was killed or stopped wait until its replica has
been promoted. heal: start it again (kill, stop) or SIGCONT it (pause), then wait until it is
ready, and for a Redis node until the cluster is whole again (3 primaries + 3 replicas).
`restart` does its stop and start in the invoke; its heal only closes the window.

The component is remembered before the signal is sent, so an invoke that failed half-way is
healed like any other.
"""

from __future__ import annotations

import time

from chaos.fault import RedisClusterView, Runtime, resolve_redis_role
from records import FaultWindow

ACTIONS = ("kill", "stop", "pause", "restart")
_DONE = {"kill": "killed", "stop": "stopped", "pause": "paused", "restart": "restarted"}
_SIGNAL = {"kill": "SIGKILL", "stop": "SIGTERM", "pause": "SIGSTOP", "restart": "SIGTERM"}
HEAL_DEADLINE_S = 120.0   # Cassandra takes about a minute to start on this 2-core machine


class ProcessFault:
    def __init__(self, action: str, target: str, runtime: Runtime, cluster: RedisClusterView, *,
                 name: str | None = None, failover_deadline_s: float = 30, heal_deadline_s: float = HEAL_DEADLINE_S
                 ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown process action {action!r} (one of {', '.join(ACTIONS)})")
        self.action = action
        self.name = name or action
        self.target = target
        self.runtime = runtime
        self.cluster = cluster
        self.failover_deadline_s = failover_deadline_s
        self.heal_deadline_s = heal_deadline_s
        self.window = FaultWindow(self.name, target=target)
        self._component: str | None = None
        self._healed = False

    @property
    def _redis(self) -> bool:
        return self._component is not None and self._component.startswith("redis-")

    def invoke(self) -> None:
        component = resolve_redis_role(self.target, self.cluster)
        self.window.target = component
        details: dict[str, object] = {"component": component, "signal": _SIGNAL[self.action]}
        if component != self.target:
            details["role"] = self.target
        primary = component.startswith("redis-") and component in self.cluster.primaries()
        if primary and self.action != "restart":
            # whose data the fault takes away (the availability check's blast radius)
            details["slots"] = [list(r) for r in self.cluster.slots_of(component)]
        self.window.start_t = time.time()
        self._component = component
        if self.action == "kill":
            self.runtime.kill(component)
        elif self.action == "stop":
            self.runtime.stop(component)
        elif self.action == "pause":
            self.runtime.pause(component)
        else:
            self.runtime.restart(component, deadline_s=self.heal_deadline_s)
        self.window.event(_DONE[self.action], **details)
        if primary and self.action in ("kill", "stop"):
            promoted_t = self.cluster.wait_failover(component, self.failover_deadline_s)
            self.window.event("failover-complete", seconds=round(promoted_t - self.window.start_t, 3),
                              roles=self.cluster.roles())

    def heal(self) -> None:
        if self._component is None or self._healed:
            return
        if self.action == "pause":
            self.runtime.resume(self._component)
            self.window.event("resumed", component=self._component)
        elif self.action in ("kill", "stop"):
            self.window.event("restarting", component=self._component)
            self.runtime.restart(self._component, deadline_s=self.heal_deadline_s)
        if self._redis:
            self.cluster.wait_cluster_ok(60)
        self._healed = True
        self.window.end_t = time.time()
        self.window.event("healed", **({"roles": self.cluster.roles()} if self._redis else {}))
