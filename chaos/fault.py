"""What a fault is (Jepsen's nemesis, Chaos Toolkit's method + rollback).

A fault addresses components by role and name through a Runtime capability, never by PID.
`invoke` breaks something and `heal` repairs it; `heal` must be safe to call at any time,
also when `invoke` failed half-way or never ran, because the campaign always calls it
(Ctrl-C and errors included). Each step appends an event to the fault's window, which the
checkers and the report read from faults.jsonl.
"""

from __future__ import annotations

from typing import Protocol

from records import FaultWindow


class Runtime(Protocol):
    """What faults may do to components, by name (any runtime: local processes, containers)."""

    def kill(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def restart(self, name: str, deadline_s: float = ...) -> None: ...


class RedisClusterView(Protocol):
    """What a Redis fault needs to know: current roles by component name, and failover progress."""

    def primaries(self) -> list[str]: ...
    def replicas(self) -> list[str]: ...
    def roles(self) -> dict[str, str]: ...
    def slots_of(self, primary: str) -> list[tuple[int, int]]: ...
    def replicas_of(self, primary: str) -> list[str]: ...
    def wait_failover(self, killed: str, deadline_s: float) -> float: ...
    def wait_cluster_ok(self, deadline_s: float) -> None: ...



class Links(Protocol):
    """The network between clients and stores (Toxiproxy): links by name."""

    def add_toxic(self, proxy: str, name: str, kind: str, stream: str, toxicity: float = 1.0,
                  **attributes: int) -> None: ...
    def remove_toxic(self, proxy: str, name: str) -> None: ...
    def set_enabled(self, proxy: str, enabled: bool) -> None: ...


def resolve_redis_role(target: str, cluster: RedisClusterView) -> str:
    """`redis-primary-N` / `redis-replica-N` → the node that has that role now (N-th by name);
    any other name is itself."""
    for role, members in (("redis-primary-", "primaries"), ("redis-replica-", "replicas")):
        if target.startswith(role):   # the cluster is asked only for a role (an external target has none)
            index = int(target.removeprefix(role))
            nodes: list[str] = getattr(cluster, members)()
            if not 1 <= index <= len(nodes):
                raise RuntimeError(f"{target} does not exist now (those nodes: {', '.join(nodes) or 'none'})")
            return nodes[index - 1]
    return target


class Fault(Protocol):
    name: str
    window: FaultWindow

    def invoke(self) -> None: ...
    def heal(self) -> None: ...
