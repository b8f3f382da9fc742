"""The `docker` runtime: the same reference stack as the local runtime, each process in a
container of its component's image (harness/runtime/images.py), on the host's network.

Everything but how a process starts is the local runtime's: the topology and ports, the start
order, readiness, faults by name, the chaos sweep. Containers carry labels (`feedlab.stack`: the
base port; `feedlab.owner`: this runtime's id) and are always removed: by `down()` (normal end,
Ctrl-C, SIGTERM, a failed start), and, if the owning process dies without it (a crash, SIGKILL),
by a reaper process that watches it (harness/runtime/reaper.py). A later `up` on the same
ports also removes what a dead owner left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import psutil
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from harness.paths import cache_dir
from harness.runtime.component import IMAGE_LAYOUT, Context
from harness.runtime.container import ContainerProcess, Mount
from harness.runtime.container_stats import ContainerSampler
from harness.runtime.docker_engine import connect
from harness.runtime.images import Images, describe
from harness.runtime.local import LocalRuntime, Progress
from harness.runtime.process import ProcessSpec
from harness.topology import Topology

LABEL_STACK = "feedlab.stack"
LABEL_OWNER = "feedlab.owner"
LABEL_OWNER_PID = "feedlab.owner-pid"
LABEL_OWNER_START = "feedlab.owner-start"   # the owner's start time: a reused pid is another process
LABEL_COMPONENT = "feedlab.component"

# Memory limit per image: what the process uses at its peak in a campaign, with room (each
# JVM's heap is fixed by its flags; Redis's maxmemory is 512 MB). No CPU limit: a CFS quota
# stops a process for the rest of its 100 ms period once it has used its share, a source of tail
# latency on a 2-core machine, and the local runtime, which the docker one is compared with, has
# none. (The default campaign's feed p99 outside faults, one run each: 260.6 ms with a quota
# per container, 215.2 ms without; 118.5 ms with processes. This machine's spread between runs
# is wide: the README has the figures over several runs.)
MEMORY_LIMITS: dict[str, str] = {
    "redis": "768m",
    "kafka": "1g",
    "cassandra": "1536m",
    "feed": "1536m",
    "nginx": "256m",
    "toxiproxy": "512m",
    "prometheus": "512m",
    "exporters": "128m",
}


def remove_containers(client: docker.DockerClient, labels: dict[str, str],
                      only: Callable[[Container], bool] = lambda _c: True) -> int:
    """Remove (force) every container carrying these labels that `only` accepts; returns how many.
    One that goes away meanwhile (removed by someone else, or being removed: 409) is not counted."""
    n = 0
    for c in client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": [f"{k}={v}" for k, v in labels.items()]}):
        if only(c):
            try:
                c.remove(force=True)
                n += 1
            except NotFound:
                pass
            except APIError as e:
                if e.status_code != 409:
                    raise
    return n


def _owner_start(pid: int) -> str:
    return f"{psutil.Process(pid).create_time():.2f}"


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that started a container still runs (the same process: its pid and
    its start time); one we may not inspect counts as alive."""
    try:
        return _owner_start(int(labels.get(LABEL_OWNER_PID, ""))) == labels.get(LABEL_OWNER_START)
    except (ValueError, psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def remove_orphans(client: docker.DockerClient, stack: str) -> int:
    """Remove the containers of `stack` (a base port) whose owning process is gone."""
    return remove_containers(client, {LABEL_STACK: stack}, lambda c: not owner_alive(c.labels))


class DockerRuntime(LocalRuntime):
    def __init__(self, *, topo: Topology, stack_dir: Path, target_env: dict[str, str],
                 progress: Progress | None = None, samples: Path | None = None) -> None:
        """`samples`: where to write each container's CPU and memory once a second while the
        stack is up (records.CONTAINERS in a run directory), or nowhere."""
        say = progress or (lambda _m: None)
        self.client = connect(say)
        self.images = Images(self.client, progress=lambda m: say(f"images: {m}"))
        self.owner = uuid.uuid4().hex[:12]
        self.stack = str(topo.base_port)
        self._reaper: subprocess.Popen[bytes] | None = None
        self._reaper_pipe: int | None = None
        self._sampler = ContainerSampler(samples, self._container_ids) if samples is not None else None
        # Absolute and without symbolic links: the path argv, logs and the mount all use.
        super().__init__(topo=topo, stack_dir=stack_dir.resolve(), target_env=target_env, progress=progress)

    def _context(self, topo: Topology, stack_dir: Path) -> Context:
        return Context(topo, stack_dir, IMAGE_LAYOUT, self._spawn)

    def _spawn(self, spec: ProcessSpec) -> ContainerProcess:
        mounts = [Mount(self.stack_dir, self.stack_dir)]
        if spec.image == "cassandra":
            # `nodetool import` hands it the graph's SSTables by path (as the harness spells it),
            # and Cassandra refuses a folder it may not write to, even with --copy-data (which
            # leaves the files there).
            graphs = cache_dir() / "graphs"
            mounts.append(Mount(graphs.resolve(), graphs.absolute()))
        return ContainerProcess(
            spec, client=self.client, image=self.images.tag(spec.image),
            container_name=f"feedlab-{self.stack}-{spec.name}",
            labels={LABEL_STACK: self.stack, LABEL_OWNER: self.owner, LABEL_OWNER_PID: str(os.getpid()),
                    LABEL_OWNER_START: _owner_start(os.getpid()), LABEL_COMPONENT: spec.name},
            mounts=mounts, memory=MEMORY_LIMITS[spec.image])

    def up(self, deadline_s: float = 120) -> None:
        built = self.images.ensure()
        self.progress(f"images: {describe(built)}")
        (cache_dir() / "graphs").mkdir(parents=True, exist_ok=True)
        gone = remove_orphans(self.client, self.stack)
        if gone:
            self.progress(f"removed {gone} containers a dead run left on these ports")
        self._start_reaper()
        super().up(deadline_s)
        if self._sampler is not None:
            self._sampler.start()

    def _container_ids(self) -> dict[str, str]:
        return {name: cid for name, (_c, proc) in self.processes().items()
                if isinstance(proc, ContainerProcess) and (cid := proc.container_id)}

    def _start_reaper(self) -> None:
        """The reaper holds the read end of a pipe whose write end only this process holds: when
        this process ends, however it ends (a zombie included), the kernel closes it and the
        reaper reads end-of-file."""
        log = self.stack_dir / "logs" / "reaper.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        read_end, self._reaper_pipe = os.pipe()
        try:
            with open(log, "ab") as out:
                self._reaper = subprocess.Popen(
                    [sys.executable, "-m", "harness.runtime.reaper", "--watch-fd", str(read_end),
                     "--label", f"{LABEL_OWNER}={self.owner}"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                    pass_fds=(read_end,))
        finally:
            os.close(read_end)

    def down(self) -> None:
        """Stop every component, then remove every container of this runtime; safe to call
        again. The reaper then finds nothing left, and ends."""
        if self._sampler is not None:
            self._sampler.stop()
        try:
            super().down()
        finally:
            remove_containers(self.client, {LABEL_OWNER: self.owner})
            if self._reaper_pipe is not None:
                os.close(self._reaper_pipe)
                self._reaper_pipe = None
            if self._reaper is not None:
                self._reaper.wait(timeout=30)
                self._reaper = None
