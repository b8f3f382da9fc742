"""CPU and memory of each container of the docker runtime, once a second, for the report's lane.

Read from the containers' cgroups (v1: cpuacct.usage and memory.usage_in_bytes under
`/sys/fs/cgroup/<controller>/docker/<id>`; v2: cpu.stat and memory.current under the
`docker-<id>.scope`), with memory counted as `docker stats` counts it (usage less the inactive
file cache). Not through the engine's stats stream: that is one streaming request per container
that dockerd answers every second, CPU spent on the machine under test; reading two files per
container costs next to nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from records import ContainerSample, JsonlWriter

CGROUP = Path("/sys/fs/cgroup")
INTERVAL_S = 1.0


@dataclass(frozen=True)
class CgroupFiles:
    cpu: Path
    cpu_v2: bool             # cpu.stat's usage_usec (v2) or cpuacct.usage in ns (v1)
    memory: Path
    memory_stat: Path


def cgroup_files(container_id: str, parent: str = "/docker") -> CgroupFiles | None:
    """Where a container's counters are, or None when neither layout has them."""
    parent = parent.strip("/") or "docker"
    v1 = CgroupFiles(CGROUP / "cpuacct" / parent / container_id / "cpuacct.usage", False,
                     CGROUP / "memory" / parent / container_id / "memory.usage_in_bytes",
                     CGROUP / "memory" / parent / container_id / "memory.stat")
    if v1.cpu.exists():
        return v1
    scope = CGROUP / "system.slice" / f"docker-{container_id}.scope"
    v2 = CgroupFiles(scope / "cpu.stat", True, scope / "memory.current", scope / "memory.stat")
    return v2 if v2.cpu.exists() else None


def _cpu_seconds(files: CgroupFiles) -> float:
    if files.cpu_v2:
        for line in files.cpu.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
        raise ValueError(f"no usage_usec in {files.cpu}")
    return int(files.cpu.read_text()) / 1e9


def _memory_bytes(files: CgroupFiles) -> int:
    usage = int(files.memory.read_text())
    inactive_key = "inactive_file" if files.cpu_v2 else "total_inactive_file"
    for line in files.memory_stat.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == inactive_key:
            return max(0, usage - int(value))
    return usage


class ContainerSampler:
    """Samples `containers()` (name → container id, asked again every round: a restarted
    component is a new container) into a JSONL file until stopped."""

    def __init__(self, path: Path, containers: Callable[[], dict[str, str]]) -> None:
        self.path = path
        self.containers = containers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="container-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:     # started
            self._thread.join(timeout=5)

    def _run(self) -> None:
        last: dict[str, tuple[str, float, float]] = {}    # name -> (id, time, cpu seconds)
        with JsonlWriter(self.path) as out:
            while not self._stop.wait(INTERVAL_S):
                try:
                    current = self.containers()
                except Exception:  # noqa: BLE001 - the engine busy or gone for a moment: next round
                    continue
                now = time.time()
                for name, cid in current.items():
                    files = cgroup_files(cid)
                    if files is None:
                        continue
                    try:
                        cpu, memory = _cpu_seconds(files), _memory_bytes(files)
                    except (OSError, ValueError):
                        continue     # the container ended between the listing and the read
                    prev = last.get(name)
                    last[name] = (cid, now, cpu)
                    if prev is None or prev[0] != cid or now <= prev[1]:
                        continue
                    out.write(ContainerSample(t=round(now, 3), container=name,
                                              cpu_percent=round(100 * (cpu - prev[2]) / (now - prev[1]), 1),
                                              memory_bytes=memory))
