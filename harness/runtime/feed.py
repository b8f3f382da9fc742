"""The reference target's own processes: N API instances (uvicorn) and N fan-out workers."""

from __future__ import annotations

import httpx

from harness.runtime.component import Component, port_open
from harness.runtime.process import ProcessSpec, wait_until
from harness.topology import KAFKA_HEARTBEAT_MS, KAFKA_SESSION_TIMEOUT_MS

# The design runs the fan-out workers as a cluster of their own, autoscaled on Kafka lag, apart
# from the read API servers (its production architecture). Here they share 2 cores with
# everything, and a write spike's fan-out took the reads' CPU: the live-event experiment's spike
# feed p99 missed its 200 ms gate in 4 of 6 verify tables with the workers at nice 10. So they
# run at the lowest priority: the read path goes first when every core is busy, and the fan-out
# takes what is left, its backlog waiting in Kafka. That trades freshness in a spike (the §10
# row's own harm) for read latency. At 19 rather than 10, the spike's feed p99 was 91.3 ms
# against 132.7 ms, the lag drained as fast (README, Performance).
WORKER_NICE = 19


class FeedService(Component):
    role = "feed"

    def __init__(self, ctx, target_env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.target_env = target_env

    def env(self, role: str | None = None) -> dict[str, str]:
        """The target's settings: through `role`'s own links to the stores (`api`, `worker`:
        topology.CLIENT_ROLES), or the shared ones (a test's extra process)."""
        t = self.topo
        return {
            "FEED_CASSANDRA": f"127.0.0.1:{t.cassandra_proxy_port if role is None else t.cassandra_link_port(role)}",
            "FEED_REDIS": ",".join(t.redis_proxy_addresses() if role is None else t.redis_link_addresses(role)),
            "FEED_KAFKA": f"127.0.0.1:{t.kafka_proxy_port if role is None else t.kafka_link_port(role)}",
            "FEED_KAFKA_SESSION_TIMEOUT_MS": str(KAFKA_SESSION_TIMEOUT_MS),
            "FEED_KAFKA_HEARTBEAT_MS": str(KAFKA_HEARTBEAT_MS),
            **self.target_env,
        }

    def prepare(self) -> None:
        t = self.topo
        env = self.env("api")
        for i, name in enumerate(t.api_names(), start=1):
            argv = [self.ctx.layout.python, "-m", "uvicorn", "--factory", "targets.feed.app:create_app",
                    "--host", "127.0.0.1", "--port", str(t.api_port(i)), "--loop", "uvloop", "--http", "httptools",
                    "--no-access-log", "--log-level", "warning", "--backlog", "4096", "--timeout-keep-alive", "30"]
            self.procs[name] = self.ctx.spawn(ProcessSpec(
                name, argv, self.ctx.log(name), env={**env, "FEED_MACHINE_ID": str(i)}, image="feed"))
        env = self.env("worker")
        for i, name in enumerate(t.worker_names(), start=1):
            argv = [self.ctx.layout.python, "-m", "targets.feed.worker"]
            self.procs[name] = self.ctx.spawn(ProcessSpec(
                name, argv, self.ctx.log(name), env={**env, "FEED_METRICS_PORT": str(t.worker_metrics_port(i))},
                image="feed", nice=WORKER_NICE))

    def _ready(self, name: str) -> bool:
        t = self.topo
        if name.startswith("api-"):
            i = int(name.split("-")[1])
            return httpx.get(f"http://127.0.0.1:{t.api_port(i)}/healthz", timeout=1).status_code == 200
        i = int(name.split("-")[1])
        return port_open(t.worker_metrics_port(i))

    def wait_process_ready(self, name: str, deadline_s: float) -> None:
        wait_until(lambda: self._ready(name), deadline_s=deadline_s, proc=self.procs[name], what="healthy")

    def wait_ready(self, deadline_s: float) -> None:
        for name in self.procs:
            self.wait_process_ready(name, deadline_s)
