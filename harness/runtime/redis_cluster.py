"""Redis Cluster: 6 nodes, 3 primaries + 3 replicas, every node behind its own Toxiproxy.

Each node announces its proxy port (`cluster-announce-port`), so CLUSTER SLOTS and MOVED
replies send clients to the proxies, and the cluster is created with the proxy addresses.
Gossip (the cluster bus) stays direct. No persistence: the timeline cache is a cache; a
restarted node rejoins as a replica (its nodes.conf survives) and resyncs from its primary.

Names are stable (`redis-1` .. `redis-6`); roles move with failovers, so chaos asks
`primaries()` for the current ones.
"""

from __future__ import annotations

import functools
import subprocess
import time

import redis

from harness.runtime.component import Component
from harness.runtime.process import ComponentError, ProcessSpec, wait_until
from harness.topology import REDIS_NODE_TIMEOUT_MS


class RedisCluster(Component):
    role = "redis"

    def prepare(self) -> None:
        t = self.topo
        for i, name in enumerate(t.redis_names(), start=1):
            data = self.ctx.data(name)
            argv = [
                "redis-server", "--bind", "127.0.0.1", "--port", str(t.redis_port(i)),
                "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
                "--cluster-node-timeout", str(REDIS_NODE_TIMEOUT_MS),
                "--cluster-port", str(t.redis_bus_port(i)),
                "--cluster-announce-ip", "127.0.0.1", "--cluster-announce-port", str(t.redis_proxy_port(i)),
                "--cluster-announce-bus-port", str(t.redis_bus_port(i)),
                # Keep serving the slots that are covered while another shard fails over.
                "--cluster-require-full-coverage", "no",
                "--save", "", "--appendonly", "no", "--dir", str(data),
                "--maxmemory", "512mb", "--maxmemory-policy", "volatile-lru",
                "--protected-mode", "no", "--daemonize", "no", "--logfile", "",
            ]
            self.procs[name] = self.ctx.spawn(ProcessSpec(name, argv, self.ctx.log(name), cwd=data, image="redis"))

    def _direct(self, name: str) -> redis.Redis:
        i = self.topo.redis_names().index(name) + 1
        return redis.Redis(host="127.0.0.1", port=self.topo.redis_port(i), socket_timeout=2, decode_responses=True)

    def wait_ready(self, deadline_s: float) -> None:
        for name, proc in self.procs.items():
            wait_until(functools.partial(self._pings, name), deadline_s=deadline_s, proc=proc, what="answering PING")
        if self._direct(self.topo.redis_names()[0]).cluster("info").get("cluster_state") != "ok":
            self._create_cluster()
        self.wait_cluster_ok(deadline_s)

    def _create_cluster(self) -> None:
        addrs = [f"127.0.0.1:{self.topo.redis_proxy_port(i)}" for i in range(1, len(self.procs) + 1)]
        out = subprocess.run(
            ["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )
        if out.returncode != 0:
            raise ComponentError("redis-1", "redis-cli --cluster create failed: "
                                 f"{out.stdout[-300:]}{out.stderr[-300:]}")

    def wait_cluster_ok(self, deadline_s: float) -> None:
        """Every node agrees the cluster is ok and every slot has a primary with a replica."""

        def ok() -> bool:
            for name, proc in self.procs.items():
                if not proc.running():
                    return False
                if self._direct(name).cluster("info").get("cluster_state") != "ok":
                    return False
            roles = self.roles()
            return sum(r == "master" for r in roles.values()) == 3 and sum(r == "slave" for r in roles.values()) == 3

        wait_until(ok, deadline_s=deadline_s, proc=None, what="redis cluster_state ok with 3 primaries + 3 replicas")

    def _pings(self, name: str) -> bool:
        return bool(self._direct(name).ping())

    def wait_process_ready(self, name: str, deadline_s: float) -> None:
        """A restarted node is back once it answers, has rejoined (the others see it as a primary
        or a replica again) and sees the cluster ok. The whole cluster may still be missing other
        nodes: callers that need it whole call wait_cluster_ok."""
        def rejoined() -> bool:
            return bool(self._direct(name).ping()) and self.roles().get(name) in ("master", "slave") and \
                self._direct(name).cluster("info").get("cluster_state") == "ok"
        wait_until(rejoined, deadline_s=deadline_s, proc=self.procs[name], what="rejoined the cluster")

    def roles(self) -> dict[str, str]:
        """name → "master" / "slave" / "down", as the running nodes see it."""
        by_port = {self.topo.redis_proxy_port(i): n for i, n in enumerate(self.topo.redis_names(), start=1)}
        for name, proc in self.procs.items():
            if not proc.running() or proc.paused:
                continue
            try:
                lines = self._direct(name).execute_command("CLUSTER", "NODES")
            except redis.RedisError:
                continue
            text = lines if isinstance(lines, str) else "\n".join(
                f"{v.get('node_id')} {k} {v.get('flags')}" for k, v in lines.items())
            roles: dict[str, str] = {}
            for line in text.splitlines():
                parts = line.split()
                port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                flags = parts[2]
                role = "down" if ("fail" in flags and "fail?" not in flags) else (
                    "master" if "master" in flags else "slave")
                if port in by_port:
                    roles[by_port[port]] = role
            return roles
        return {}

    def shard_of(self, key: str) -> list[str]:
        """Names of the nodes serving `key`'s slot: the primary first, then its replicas."""
        by_port = {self.topo.redis_proxy_port(i): n for i, n in enumerate(self.topo.redis_names(), start=1)}
        for name, proc in self.procs.items():
            if not proc.running() or proc.paused:
                continue
            client = self._direct(name)
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            # id addr flags master-id ping pong epoch link slot-range...; replicas show up here even
            # while their link is still syncing (CLUSTER SLOTS leaves those out).
            nodes = [line.split() for line in str(client.execute_command("CLUSTER", "NODES")).splitlines()]
            for node_id, addr, flags, _master, *_rest in nodes:
                ranges = [r.split("-") for r in _rest[4:] if not r.startswith("[")]
                if "master" in flags and any(int(r[0]) <= slot <= int(r[-1]) for r in ranges):
                    replicas = [n[1] for n in nodes if n[3] == node_id]
                    return [by_port[int(a.split("@")[0].rsplit(":", 1)[1])] for a in (addr, *replicas)]
        raise RuntimeError(f"no running node knows the slot of {key!r}")

    def slots_of(self, primary: str) -> list[tuple[int, int]]:
        """The slot ranges `primary` serves, as the running nodes see them (empty if none)."""
        port = {n: self.topo.redis_proxy_port(i) for i, n in enumerate(self.topo.redis_names(), start=1)}[primary]
        for name, proc in self.procs.items():
            if not proc.running() or proc.paused:
                continue
            try:
                nodes = str(self._direct(name).execute_command("CLUSTER", "NODES")).splitlines()
            except redis.RedisError:
                continue
            for line in nodes:
                _id, addr, flags, _master, *rest = line.split()
                if "master" in flags and int(addr.split("@")[0].rsplit(":", 1)[1]) == port:
                    return [(int(r.split("-")[0]), int(r.split("-")[-1])) for r in rest[4:] if not r.startswith("[")]
            return []
        return []

    def replicas_of(self, primary: str) -> list[str]:
        """The nodes replicating `primary`, as the running nodes see it (names)."""
        by_port = {self.topo.redis_proxy_port(i): n for i, n in enumerate(self.topo.redis_names(), start=1)}
        port = {n: p for p, n in by_port.items()}[primary]
        for name, proc in self.procs.items():
            if not proc.running() or proc.paused:
                continue
            try:
                text = str(self._direct(name).execute_command("CLUSTER", "NODES"))
            except redis.RedisError:
                continue
            nodes = [line.split() for line in text.splitlines()]
            ids = {n[0]: int(n[1].split("@")[0].rsplit(":", 1)[1]) for n in nodes}
            primary_id = next((i for i, p in ids.items() if p == port), None)
            return sorted(by_port[ids[n[0]]] for n in nodes if n[3] == primary_id and ids[n[0]] in by_port)
        return []

    def primaries(self) -> list[str]:
        return sorted(n for n, r in self.roles().items() if r == "master")

    def replicas(self) -> list[str]:
        return sorted(n for n, r in self.roles().items() if r == "slave")

    def wait_failover(self, killed: str, deadline_s: float) -> float:
        """After `killed` (a primary) died: wait until another node serves its slots. Returns when."""
        def promoted() -> bool:
            roles = self.roles()
            return roles.get(killed) == "down" and sum(r == "master" for r in roles.values()) == 3 and all(
                self._direct(n).cluster("info").get("cluster_state") == "ok"
                for n, p in self.procs.items() if p.running() and n != killed)
        wait_until(promoted, deadline_s=deadline_s, proc=None, what=f"failover of {killed}")
        return time.time()
