"""The heal sweep: after every fault's heal, prove that nothing is left broken.

Each fault heals itself; the sweep does not trust that. It looks at everything a fault can
break and repairs what it finds, so that the stack is whole whatever happened (an invoke that
failed half-way, a heal that raised, a harness bug). What it found is the verdict: a run whose
sweep found anything broken, repaired or not, cannot pass (the `sweep` check), because some
fault outlived its window and the run measured it.

Looked at:
- Toxiproxy: every proxy enabled, no toxic on any (repair: enable, remove the toxic);
- processes: none paused, none exited (repair: resume; restart);
- the Redis cluster: every slot served, every node in it (waited for);
- the target's runtime configuration: no chaos setting left on (repair: reset it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from chaos.fault import RedisClusterView
from chaos.ranker import FAIL_SHARE

# Runtime-config settings faults may set, with their healthy values.
CHAOS_CONFIG = {FAIL_SHARE: "0"}


class Toxics(Protocol):
    def list_proxies(self) -> dict[str, dict[str, Any]]: ...
    def set_enabled(self, proxy: str, enabled: bool) -> None: ...
    def remove_toxic(self, proxy: str, name: str) -> None: ...


class Processes(Protocol):
    def states(self) -> dict[str, str]: ...   # name -> "running" / "paused" / "stopped" / "exited(N)"
    def resume(self, name: str) -> None: ...
    def restart(self, name: str, deadline_s: float = 90) -> None: ...


class Config(Protocol):
    def get_all(self) -> dict[str, str]: ...
    def set(self, name: str, value: str) -> None: ...


@dataclasses.dataclass
class Finding:
    what: str          # "toxiproxy", "process", "redis", "config"
    broken: str        # what was found, e.g. "redis-2 paused"
    repaired: bool
    error: str | None = None


@dataclasses.dataclass
class SweepResult:
    t: float
    looked_at: list[str]
    findings: list[Finding]
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "clean": self.clean, "looked_at": self.looked_at, "seconds": round(self.seconds, 3),
                "findings": [dataclasses.asdict(f) for f in self.findings]}


def _repair(findings: list[Finding], what: str, broken: str, fix: Callable[[], None]) -> None:
    try:
        fix()
        findings.append(Finding(what, broken, repaired=True))
    except Exception as exc:  # noqa: BLE001 - a failed repair is a finding, and the sweep goes on
        findings.append(Finding(what, broken, repaired=False, error=f"{type(exc).__name__}: {exc}"))


def sweep(toxics: Toxics, processes: Processes, cluster: RedisClusterView | None, config: Config | None,
          *, deadline_s: float = 60) -> SweepResult:
    start = time.monotonic()
    findings: list[Finding] = []
    looked_at: list[str] = []
    try:
        proxies = toxics.list_proxies()
        looked_at.append(f"toxiproxy: {len(proxies)} proxies")
        for name, proxy in sorted(proxies.items()):
            if not proxy.get("enabled", True):
                _repair(findings, "toxiproxy", f"proxy {name} disabled", partial(toxics.set_enabled, name, True))
            for toxic in proxy.get("toxics") or []:
                _repair(findings, "toxiproxy", f"toxic {toxic.get('name')} ({toxic.get('type')}) on {name}",
                        partial(toxics.remove_toxic, name, str(toxic.get("name"))))
    except Exception as exc:  # noqa: BLE001
        findings.append(Finding("toxiproxy", "Toxiproxy's API did not answer", False, f"{type(exc).__name__}: {exc}"))
    states = processes.states()
    looked_at.append(f"processes: {len(states)}")
    for name, state in sorted(states.items()):
        if state == "paused":
            _repair(findings, "process", f"{name} paused", partial(processes.resume, name))
        elif state != "running":
            _repair(findings, "process", f"{name} {state}", partial(processes.restart, name, deadline_s))
    if cluster is not None:   # None: a target the harness did not start (nothing of it was faulted)
        looked_at.append("redis cluster state")
        try:
            cluster.wait_cluster_ok(deadline_s)
        except Exception as exc:  # noqa: BLE001
            findings.append(Finding("redis", "the cluster is not whole", False, f"{type(exc).__name__}: {exc}"))
    if config is None:
        return SweepResult(time.time(), looked_at, findings, time.monotonic() - start)
    try:
        current = config.get_all()
        looked_at.append(f"runtime config: {', '.join(sorted(CHAOS_CONFIG))}")
        for name, healthy in CHAOS_CONFIG.items():
            if current.get(name, healthy) not in (healthy, str(float(healthy))):
                _repair(findings, "config", f"{name} = {current[name]}",
                        partial(config.set, name, healthy))
    except Exception as exc:  # noqa: BLE001
        findings.append(Finding("config", "runtime config unreadable", False, f"{type(exc).__name__}: {exc}"))
    return SweepResult(time.time(), looked_at, findings, time.monotonic() - start)
