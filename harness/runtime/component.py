"""The shape every component of the local runtime has."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.paths import cache_dir, tool
from harness.runtime import java
from harness.runtime.process import ManagedProcess, ProcessSpec
from harness.topology import Topology

CONF = Path(__file__).parent / "conf"


@dataclass(frozen=True)
class Layout:
    """Where a component's programs and files are, as its process sees them: on this machine
    (the local runtime), in feedlab's images (the docker runtime, compose/images/), or in the
    official upstream images (compose/upstream/)."""

    java_path: str | None    # None: this machine's JDK 17, looked for when a component needs it
    kafka_jars: Path
    cassandra_jars: Path
    jmx_jars: Path | None    # the Prometheus JMX exporter agent's folder; None: no agent, no JVM metrics
    conf: Path               # harness/runtime/conf
    python: str              # with the target's dependencies; targets/ importable
    toxiproxy: str
    jamm_jar: str | None = None   # Cassandra's jamm agent's file name; None: as fetched on this machine

    @property
    def java(self) -> str:
        return self.java_path or java.java17()

    def jamm(self) -> str:
        """Cassandra's memory-measuring agent."""
        return str(self.cassandra_jars / (self.jamm_jar or java.jar("cassandra", "jamm").name))

    def jmx_agent(self, port: int) -> list[str]:
        """The JVM flag that serves the JVM's metrics to Prometheus on `port` (none without the agent)."""
        if self.jmx_jars is None:
            return []
        agent = self.jmx_jars / java.jar("jmx", "jmx_prometheus_javaagent").name
        return [f"-javaagent:{agent}=127.0.0.1:{port}:{self.conf / 'jmx-exporter.yaml'}"]


def host_layout() -> Layout:
    jars = cache_dir() / "jars"
    return Layout(java_path=None, kafka_jars=jars / "kafka", cassandra_jars=jars / "cassandra", jmx_jars=jars / "jmx",
                  conf=CONF, python=sys.executable, toxiproxy=str(tool("toxiproxy-server")))


_IMAGE_JARS = Path("/opt/feedlab/jars")
IMAGE_LAYOUT = Layout(java_path="/usr/lib/jvm/java-17-openjdk-amd64/bin/java", kafka_jars=_IMAGE_JARS / "kafka",
                      cassandra_jars=_IMAGE_JARS / "cassandra", jmx_jars=_IMAGE_JARS / "jmx",
                      conf=Path("/opt/feedlab/conf"), python="/opt/feedlab/venv/bin/python",
                      toxiproxy="/opt/feedlab/bin/toxiproxy-server")


@dataclass(frozen=True)
class Context:
    """What a component needs to lay itself out: the topology, its run directory, where its
    programs are, and how a process is started (a child process, or a container)."""

    topo: Topology
    stack_dir: Path          # <run dir>/stack: one sub-folder of data and logs per component
    layout: Layout = field(default_factory=host_layout)
    spawn: Callable[[ProcessSpec], ManagedProcess] = ManagedProcess

    def data(self, name: str) -> Path:
        path = self.stack_dir / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, name: str) -> Path:
        path = self.stack_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{name}.log"


class Component:
    """A group of processes with one start-up sequence (e.g. six Redis nodes forming a cluster).

    Subclasses fill `procs` in `prepare()`, may override `start()`, and implement `wait_ready()`
    (block until usable, raising ComponentError naming the culprit) and `wait_process_ready()`
    (the same for one restarted member).
    """

    role = "component"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.topo = ctx.topo
        self.procs: dict[str, ManagedProcess] = {}

    def prepare(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        for proc in self.procs.values():
            proc.start()

    def wait_ready(self, deadline_s: float) -> None:
        raise NotImplementedError

    def wait_process_ready(self, name: str, deadline_s: float) -> None:
        self.wait_ready(deadline_s)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
