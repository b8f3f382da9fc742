"""One component process as a container (the docker runtime).

The container runs the argv, environment, working directory and log file the local runtime
would give the process, in the component's image and on the host's network, so every address
and port is the one the local runtime uses. Its stack folder is mounted at the same path, so
configuration, data and logs are where the harness looks for them. docker-init is PID 1 and
passes signals on. Kill, graceful stop, pause (the cgroup freezer) and restart (a new container
over the same data) go through the Docker engine, by name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from harness.runtime.process import ComponentError, ManagedProcess, ProcessSpec, cpu_weight


@dataclass(frozen=True)
class Mount:
    source: Path     # on this machine, symbolic links resolved
    target: Path     # in the container: the path the component's argv and the harness use
    mode: str = "rw"


# `sh -c` with the log file as $0 and the argv as "$@": the process's output goes to the same
# log file as in the local runtime, and `exec` makes it docker-init's direct child.
_TO_LOG = 'exec "$@" >>"$0" 2>&1'


class ContainerProcess(ManagedProcess):
    def __init__(self, spec: ProcessSpec, *, client: docker.DockerClient, image: str, container_name: str,
                 labels: dict[str, str], mounts: list[Mount], memory: str) -> None:
        super().__init__(spec)
        self.client = client
        self.image = image
        self.container_name = container_name
        self.labels = labels
        self.mounts = mounts
        self.memory = memory
        self._container: Container | None = None
        self._last_state: dict[str, Any] = {}

    @property
    def container_id(self) -> str | None:
        """The id of its current container (a restart makes a new one); no request to the engine."""
        return self._container.id if self._container is not None else None

    @property
    def pid(self) -> int | None:
        """The process's pid on this machine (docker-init's), while it runs."""
        pid = self._state().get("Pid")
        return int(pid) if pid else None

    def _state(self) -> dict[str, Any]:
        """The engine's State of the current container; after it was removed (by `down`, or
        from outside), a state that says so: not running, and no container to act on."""
        if self._container is None:
            return self._last_state
        try:
            self._container.reload()
            self._last_state = dict(self._container.attrs.get("State") or {})
        except NotFound:
            self._container = None
            self._last_state = {"Status": "removed", "Running": False, "Paused": False, "ExitCode": -1}
        return self._last_state

    def _remove_existing(self) -> None:
        try:
            self.client.containers.get(self.container_name).remove(force=True)
        except NotFound:
            pass

    def start(self) -> None:
        if self.running():
            return
        self._remove_existing()
        self.spec.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spec.log, "ab") as log:
            log.write(f"\n--- feedlab: starting {self.name} at {time.ctime()} in container {self.container_name} "
                      f"({self.image}): {' '.join(self.spec.argv)}\n".encode())
        try:
            self._container = self.client.containers.run(
                self.image, ["sh", "-c", _TO_LOG, str(self.spec.log), *self.spec.argv],
                name=self.container_name, detach=True, init=True, network_mode="host",
                environment=dict(self.spec.env), working_dir=str(self.spec.cwd) if self.spec.cwd else None,
                volumes={str(m.source): {"bind": str(m.target), "mode": m.mode} for m in self.mounts},
                labels=self.labels, mem_limit=self.memory, memswap_limit=self.memory,
                cpu_shares=cpu_weight(self.spec.nice) if self.spec.nice else None)
        except APIError as exc:
            raise ComponentError(self.name, f"its container did not start: {exc}", self.spec.log) from exc
        self._last_state = {}
        self.paused = False

    def running(self) -> bool:
        return bool(self._state().get("Running"))

    def returncode(self) -> int | None:
        state = self._state()
        if not state or state.get("Running"):
            return None
        return int(state.get("ExitCode", 0))

    def state(self) -> str:
        st = self._state()
        if st.get("Running"):
            return "paused" if st.get("Paused") else "running"
        if st.get("Status") == "exited":
            return f"exited({st['ExitCode']}{', out of memory' if st.get('OOMKilled') else ''})"
        return "stopped"

    def _live(self) -> Container | None:
        """The current container while it runs (paused included), else None."""
        running = self.running()
        return self._container if running else None

    def signal(self, sig: int) -> None:
        if (c := self._live()) is not None:
            c.kill(signal=int(sig))

    def kill(self) -> None:
        """SIGKILL (docker kill), paused or not: the container's processes die at once, without
        running again first."""
        if (c := self._live()) is not None:
            try:
                c.kill()
            except APIError:
                if self.running():
                    raise
            c.wait(timeout=10)
        self.paused = False

    def pause(self) -> None:
        """Freeze the container's cgroup; nothing to do when it is not running or already frozen."""
        if (c := self._live()) is not None:
            if not self._last_state.get("Paused"):
                c.pause()
            self.paused = True

    def resume(self) -> None:
        if (c := self._live()) is not None and self._last_state.get("Paused"):
            c.unpause()
        self.paused = False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` (docker stop; the engine refuses to stop a
        frozen container, so it is thawed first)."""
        if (c := self._live()) is not None:
            if self._last_state.get("Paused"):
                c.unpause()
            c.stop(timeout=int(timeout))
            c.wait(timeout=timeout + 10)
        self.paused = False
