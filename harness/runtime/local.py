"""The `local` runtime: the whole reference stack as supervised processes on 127.0.0.1.

Start order: Toxiproxy first (the proxies must exist before anyone dials through them), then
the stores in parallel (Redis nodes, Kafka, Cassandra), then cluster creation, topics and
schema, then the feed service, nginx, and Prometheus with its exporters. Every wait has a
deadline and a failure names the component and shows the tail of its log. Stopping goes the
other way (the stores' clients, then the stores) and always runs, also when start-up failed
half-way.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.runtime.cassandra import Cassandra
from harness.runtime.component import Component, Context
from harness.runtime.feed import FeedService
from harness.runtime.kafka import Kafka
from harness.runtime.nginx import Nginx
from harness.runtime.process import ComponentError, ManagedProcess
from harness.runtime.prometheus import Prometheus
from harness.runtime.redis_cluster import RedisCluster
from harness.runtime.toxiproxy import Toxiproxy
from harness.topology import Topology

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    role: str
    pid: int | None
    state: str      # "running", "paused", "stopped", "exited(N)"


class PortInUse(ComponentError):
    pass


def check_ports_free(ports: list[int]) -> None:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise PortInUse("ports", f"port {port} on 127.0.0.1 is already in use (another stack? "
                                f"`feedlab down`, or choose --base-port)") from None


class LocalRuntime:
    def __init__(self, *, topo: Topology, stack_dir: Path, target_env: dict[str, str],
                 progress: Progress | None = None) -> None:
        self.topo = topo
        self.stack_dir = stack_dir
        self.progress = progress or (lambda _msg: None)
        ctx = self._context(topo, stack_dir)
        self.toxiproxy = Toxiproxy(ctx)
        self.redis = RedisCluster(ctx)
        self.kafka = Kafka(ctx)
        self.cassandra = Cassandra(ctx)
        self.feed = FeedService(ctx, target_env)
        self.nginx = Nginx(ctx)
        self.prometheus = Prometheus(ctx)
        self.components: list[Component] = [self.toxiproxy, self.redis, self.kafka, self.cassandra, self.feed,
                                             self.nginx, self.prometheus]
        self.started_at: float | None = None

    def _context(self, topo: Topology, stack_dir: Path) -> Context:
        """How components lay themselves out: this machine's programs, as child processes."""
        return Context(topo, stack_dir)

    @property
    def api_url(self) -> str:
        """Where the harness's own probes and read-backs go: nginx."""
        return self.topo.api_url

    @property
    def load_url(self) -> str:
        """Where the load generator sends: nginx, through its own link."""
        return self.topo.load_url

    # --- lifecycle
    def up(self, deadline_s: float = 120) -> None:
        check_ports_free(self.topo.all_ports())
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            for c in self.components:
                c.prepare()
            self._start("toxiproxy", self.toxiproxy, deadline_s)
            self.progress("starting redis x6, kafka, cassandra")
            for c in (self.redis, self.kafka, self.cassandra):
                c.start()
            with ThreadPoolExecutor(3) as pool:
                futures = [pool.submit(c.wait_ready, deadline_s) for c in (self.redis, self.kafka, self.cassandra)]
                for f in futures:
                    f.result()
            self.progress("creating the kafka topic and the cassandra schema")
            self.kafka.create_topics()
            self.cassandra.create_schema()
            self._start("feed api + workers", self.feed, deadline_s)
            self._start("nginx", self.nginx, deadline_s)
            self._start("prometheus + exporters", self.prometheus, deadline_s)
        except BaseException:
            self.down()
            raise
        self.started_at = time.time()
        self.progress(f"stack up in {time.monotonic() - t0:.1f} s")

    def _start(self, what: str, component: Component, deadline_s: float) -> None:
        self.progress(f"starting {what}")
        component.start()
        component.wait_ready(deadline_s)

    def down(self) -> None:
        """Stop the stores' clients (the feed service, nginx, Prometheus and its exporters), then
        the stores and Toxiproxy; each wave's processes at once (a client may still write to a
        store as it stops). One after another took 6.8 s, 4.6 s of it Cassandra's. Every
        process is stopped even if stopping another failed; the first failure is raised."""
        stores = [self.toxiproxy, self.redis, self.kafka, self.cassandra]
        failure: BaseException | None = None
        for wave in ([c for c in self.components if c not in stores], stores):
            procs = [p for c in wave for p in c.procs.values()]
            if not procs:   # (up failed before these were laid out)
                continue
            with ThreadPoolExecutor(len(procs)) as pool:
                for done in [pool.submit(p.stop) for p in procs]:
                    failure = failure or done.exception()
        if failure is not None:
            raise failure

    # --- by name
    def processes(self) -> dict[str, tuple[Component, ManagedProcess]]:
        out: dict[str, tuple[Component, ManagedProcess]] = {}
        for c in self.components:
            for name, proc in c.procs.items():
                out[name] = (c, proc)
        return out

    def _lookup(self, name: str) -> tuple[Component, ManagedProcess]:
        procs = self.processes()
        if name not in procs:
            raise KeyError(f"no component named {name!r}; known: {', '.join(sorted(procs))}")
        return procs[name]

    def kill(self, name: str) -> None:
        self._lookup(name)[1].kill()

    def stop(self, name: str) -> None:
        """SIGTERM, SIGKILL after 15 s (a graceful stop)."""
        self._lookup(name)[1].stop()

    def pause(self, name: str) -> None:
        self._lookup(name)[1].pause()

    def resume(self, name: str) -> None:
        self._lookup(name)[1].resume()

    def restart(self, name: str, deadline_s: float = 90) -> None:
        comp, proc = self._lookup(name)
        proc.stop()
        proc.start()
        comp.wait_process_ready(name, deadline_s)

    def status(self) -> list[ProcessStatus]:
        return [ProcessStatus(name, comp.role, proc.pid, proc.state())
                for name, (comp, proc) in self.processes().items()]

    def states(self) -> dict[str, str]:
        """name -> state, as `status` gives it (chaos.sweep.Processes)."""
        return {s.name: s.state for s in self.status()}

    def log_path(self, name: str) -> Path:
        return self._lookup(name)[1].spec.log
