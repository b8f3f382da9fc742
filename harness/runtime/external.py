"""The `external` runtime: a feed service the harness did not start, at a URL the user gives.

The harness starts nothing of the target. It starts only a Toxiproxy of its own on 127.0.0.1
with one proxy, the load generator's link to the service (`generator->target`), so that
client-side network faults still work; its probes and read-backs reach the service directly,
as they reach nginx in the local runtime. Process faults are refused before anything starts:
the harness owns no process of the target (chaos.catalogue, `external_problems`).

What it cannot see without the service's cooperation it says so: the target's metrics come
from a Prometheus URL when one is given, and the checks and gates that need them are shown
unknown and not judged otherwise (harness/gates.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from chaos.fault import RedisClusterView
from chaos.ranker import RuntimeConfig
from harness.runtime.component import Context
from harness.runtime.local import ProcessStatus, check_ports_free
from harness.runtime.process import ComponentError, ManagedProcess
from harness.runtime.toxiproxy import Toxiproxy
from harness.safety import TargetUrl
from harness.tokens import TokenSource
from harness.topology import TARGET_LINK, Topology

Progress = Callable[[str], None]
REACH_TIMEOUT_S = 10.0


class _Absent:
    """What an external target does not expose to the harness: any use says so."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{self._what} is not reachable: the target runs outside feedlab (--target)")


NO_CLUSTER = cast(RedisClusterView, _Absent("the target's Redis cluster"))
NO_CONFIG = cast(RuntimeConfig, _Absent("the target's runtime configuration"))


@dataclass(frozen=True)
class ExternalTarget:
    """The user's feed service: where it is, how to act as its users, where its metrics are."""

    url: TargetUrl
    tokens: TokenSource
    metrics_url: str | None = None

    def describe(self) -> dict[str, object]:
        """For the manifest: never the tokens or the secret."""
        return {"url": self.url.url, "given": self.url.given, "loopback": self.url.loopback,
                "tokens": self.tokens.describe(),
                "metrics_url": self.metrics_url}


class TargetToxiproxy(Toxiproxy):
    """Toxiproxy with one proxy: the load generator's link to the external service."""

    def __init__(self, ctx: Context, target: TargetUrl) -> None:
        super().__init__(ctx)
        self.target = target

    def proxies(self) -> list[dict[str, object]]:
        return [{"name": TARGET_LINK, "listen": f"127.0.0.1:{self.topo.generator_link_port}",
                 "upstream": self.target.netloc, "enabled": True}]


class ProcessFaultRefused(ComponentError):
    def __init__(self, op: str, name: str) -> None:
        super().__init__(name, f"cannot {op} {name}: the target runs outside feedlab (--target); only its "
                               f"link {TARGET_LINK.replace('-to-', '->')} can be faulted")


class ExternalRuntime:
    def __init__(self, *, topo: Topology, stack_dir: Path, target: ExternalTarget,
                 progress: Progress | None = None) -> None:
        self.topo = topo
        self.target = target
        self.progress = progress or (lambda _msg: None)
        self.toxiproxy = TargetToxiproxy(Context(topo, stack_dir), target.url)

    @property
    def api_url(self) -> str:
        """Where the harness's own probes and read-backs go: the service itself."""
        return self.target.url.url

    @property
    def load_url(self) -> str:
        """Where the load generator sends: through the harness's proxy to the service."""
        return self.target.url.through(f"127.0.0.1:{self.topo.generator_link_port}")

    def up(self, deadline_s: float = 60) -> None:
        check_ports_free([self.topo.toxiproxy_port, self.topo.generator_link_port])
        self.progress(f"checking that the target at {self.api_url} answers")
        answer = reach(self.api_url)
        self.progress(f"target answers ({answer}); starting toxiproxy in front of it")
        self.toxiproxy.prepare()
        try:
            self.toxiproxy.start()
            self.toxiproxy.wait_ready(deadline_s)
            reach(self.load_url)
        except BaseException:
            self.down()
            raise
        self.progress(f"load goes through {self.load_url} (link {TARGET_LINK})")

    def down(self) -> None:
        self.toxiproxy.stop()

    # --- the processes it owns: the proxy only
    def processes(self) -> dict[str, ManagedProcess]:
        return dict(self.toxiproxy.procs)

    def kill(self, name: str) -> None:
        raise ProcessFaultRefused("kill", name)

    def stop(self, name: str) -> None:
        raise ProcessFaultRefused("stop", name)

    def pause(self, name: str) -> None:
        raise ProcessFaultRefused("pause", name)

    def resume(self, name: str) -> None:
        raise ProcessFaultRefused("resume", name)

    def restart(self, name: str, deadline_s: float = 90) -> None:
        if name != self.toxiproxy.name:
            raise ProcessFaultRefused("restart", name)
        proc = self.toxiproxy.procs[name]
        proc.stop()
        proc.start()
        self.toxiproxy.wait_ready(deadline_s)

    def status(self) -> list[ProcessStatus]:
        return [ProcessStatus(name, self.toxiproxy.role, proc.pid, proc.state())
                for name, proc in self.toxiproxy.procs.items()]

    def states(self) -> dict[str, str]:
        return {s.name: s.state for s in self.status()}


def reach(url: str) -> str:
    """Prove something answers HTTP at `url` (any status: an unauthenticated read gets a 401)."""
    probe = f"{url}/v1/feed?limit=1"
    try:
        r = httpx.get(probe, timeout=REACH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise ComponentError("target", f"nothing answers HTTP at {probe}: {type(exc).__name__}: {exc}") from None
    return f"HTTP {r.status_code} to an unauthenticated GET /v1/feed"
