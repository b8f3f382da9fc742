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
    (the local runtime) or in its image (the docker runtime, compose/images/)."""

    java_path: str | None    # None: this machine's JDK 17, looked for when a component needs it
    jars: Path               # holds cassandra/, kafka/, jmx/
    conf: Path               # harness/runtime/conf
    python: str              # with the target's dependencies; targets/ importable
    toxiproxy: str

    @property
    def java(self) -> str:
        return self.java_path or java.java17()

    def jar(self, name: str, prefix: str) -> str:
        """The jar of `name` whose file name starts with `prefix` (found among this machine's)."""
        return str(self.jars / name / java.jar(name, prefix).name)

    def jmx_agent(self, port: int) -> str:
        rules = self.conf / "jmx-exporter.yaml"
        return f"-javaagent:{self.jar('jmx', 'jmx_prometheus_javaagent')}=127.0.0.1:{port}:{rules}"


def host_layout() -> Layout:
    return Layout(java_path=None, jars=cache_dir() / "jars", conf=CONF, python=sys.executable,
                  toxiproxy=str(tool("toxiproxy-server")))


IMAGE_LAYOUT = Layout(java_path="/usr/lib/jvm/java-17-openjdk-amd64/bin/java", jars=Path("/opt/feedlab/jars"),
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
