"""The shape every component of the local runtime has."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from harness.runtime.process import ManagedProcess
from harness.topology import Topology


@dataclass(frozen=True)
class Context:
    """What a component needs to lay itself out: the topology and its run directory."""

    topo: Topology
    stack_dir: Path          # <run dir>/stack: one sub-folder of data and logs per component

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
