"""The Docker engine the docker runtime talks to: the one DOCKER_HOST or the default socket
names, or, when none answers, one this machine starts.

bin/setup installs Debian's `docker.io` (dockerd, containerd, runc). A machine where no engine
runs (CI, a fresh sandbox) gets one started here, detached like a system service so that it
outlives the command that started it: host networking only (`--bridge=none`, no iptables
rules), because every feedlab container uses the host's loopback, as the local runtime's
processes do. Its log is `<cache>/docker/dockerd.log`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import docker
from docker.errors import DockerException

from harness.paths import cache_dir

DEFAULT_SOCKET = "/var/run/docker.sock"
START_DEADLINE_S = 60


class EngineError(RuntimeError):
    pass


def connect(progress: Callable[[str], None] = lambda _m: None, *, start: bool = True) -> docker.DockerClient:
    """A client of a running engine; starts one when none answers and `start` allows it."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException as exc:
        first = exc
    if os.environ.get("DOCKER_HOST"):
        raise EngineError(f"the Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer: {first}")
    if not start:
        raise EngineError(f"no Docker engine answers at {DEFAULT_SOCKET}: {first}")
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if dockerd is None:
        raise EngineError("no Docker engine answers and dockerd is not installed (bin/setup installs docker.io)")
    if os.geteuid() != 0:
        raise EngineError(f"no Docker engine answers at {DEFAULT_SOCKET}, and starting dockerd needs root")
    log = cache_dir() / "docker" / "dockerd.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress(f"starting dockerd (log: {log})")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [dockerd, "--host", f"unix://{DEFAULT_SOCKET}", "--bridge=none", "--iptables=false",
             "--ip6tables=false"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    end = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise EngineError(f"dockerd exited with code {proc.returncode} at start; see {log}:\n{_tail(log)}")
        try:
            client = docker.DockerClient(base_url=f"unix://{DEFAULT_SOCKET}", timeout=120)
            client.ping()
            progress(f"dockerd ready (pid {proc.pid})")
            return client
        except DockerException:
            time.sleep(0.5)
    raise EngineError(f"dockerd did not answer within {START_DEADLINE_S} s; see {log}:\n{_tail(log)}")


def _tail(path: os.PathLike[str], lines: int = 10) -> str:
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read()[-4000:].decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
