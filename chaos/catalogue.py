"""The fault catalogue: every fault feedlab can inject, what it can target and its parameters.

A description only (no runtime is needed to read it): `feedlab faults` prints it, scenario
validation judges a scenario's `faults:` against it (`feedlab validate FILE`), and
`chaos.build` turns one entry into a fault object for a running stack.

Targets are named, never PIDs:
- components: `redis-1` .. `redis-6`, `kafka`, `cassandra`, `api-N`, `worker-N`, `nginx`,
  `prometheus`, `toxiproxy`;
- roles, resolved when the fault is invoked: `redis-primary-N` (the N-th of the current
  primaries, by name) and `redis-replica-N`;
- links (Toxiproxy proxies between the clients and one store node): `redis-N` (or a role),
  `kafka`, `cassandra` name every client's link to that node (the API's, the workers', and the
  shared one the harness and the Redis replication use); `api->NODE` and `worker->NODE` name
  one client role's link only (harness/topology.py, CLIENT_ROLES); `nginx->api-N` is the
  balancer's link to one API instance and `generator->nginx` the load generator's to the
  balancer (the harness's probes and read-backs do not use it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.topology import CLIENT_ROLES, REDIS_NODES, Topology

_DEFAULT = Topology()
REDIS_SHARDS = REDIS_NODES // 2
EXTERNAL_LINK = "generator->target"   # the one link to a target the harness did not start (TARGET_LINK)


@dataclass(frozen=True)
class Targets:
    """A set of target names: a pattern and how to say it to a person."""

    pattern: str
    help: str

    def match(self, name: str) -> bool:
        return re.fullmatch(self.pattern, name) is not None


_REDIS = rf"redis-[1-{REDIS_NODES}]|redis-(?:primary|replica)-[1-{REDIS_SHARDS}]"
_REDIS_HELP = f"redis-1 .. redis-{REDIS_NODES}, redis-primary-1 .. -{REDIS_SHARDS}, redis-replica-1 .. -{REDIS_SHARDS}"
COMPONENTS = Targets(
    rf"{_REDIS}|kafka|cassandra|api-[1-{_DEFAULT.api_instances}]|worker-[1-{_DEFAULT.fanout_workers}]"
    r"|nginx|prometheus|toxiproxy",
    f"{_REDIS_HELP}, kafka, cassandra, api-1 .. api-{_DEFAULT.api_instances}, "
    f"worker-1 .. worker-{_DEFAULT.fanout_workers}, nginx, prometheus, toxiproxy")
NODES = Targets(rf"{_REDIS}|kafka|cassandra", f"{_REDIS_HELP}, kafka or cassandra (every client's link to it)")
LINKS = Targets(rf"(?:(?:{'|'.join(CLIENT_ROLES)})->)?(?:{_REDIS}|kafka|cassandra)"
                rf"|nginx->api-[1-{_DEFAULT.api_instances}]|generator->nginx|{re.escape(EXTERNAL_LINK)}",
                f"{_REDIS_HELP}, kafka or cassandra (every client's link to it), or one client role's link to it: "
                f"{', '.join(f'{r}->NODE' for r in CLIENT_ROLES)} (api->redis-primary-1, worker->kafka), "
                f"and in front nginx->api-1 .. nginx->api-{_DEFAULT.api_instances} (the balancer's link to an "
                "instance), generator->nginx (the load generator's: client-side faults), and with --target only "
                f"{EXTERNAL_LINK} (the load generator's link to your service)")
REDIS_PRIMARY = Targets(rf"redis-primary-[1-{REDIS_SHARDS}]", f"redis-primary-1 .. redis-primary-{REDIS_SHARDS}")
RANKER = Targets("ranker", "ranker")


@dataclass(frozen=True)
class Param:
    name: str
    help: str
    default: float | str
    low: float | None = None     # numbers: the bounds, inclusive
    high: float | None = None
    choices: tuple[str, ...] = ()   # strings: the values allowed

    def check(self, value: Any) -> str | None:
        """None if `value` is acceptable, else what is wrong with it."""
        if self.choices:
            if value not in self.choices:
                return f"must be one of {', '.join(self.choices)}, not {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, not {value!r}"
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            return f"must be within [{_num(self.low)}, {_num(self.high)}], not {_num(value)}"
        if isinstance(self.default, int) and not float(value).is_integer():
            return f"must be a whole number, not {_num(value)}"
        return None

    def describe(self) -> str:
        if self.choices:
            return f"{self.name}={self.default} ({' | '.join(self.choices)}): {self.help}"
        return f"{self.name}={_num(self.default)} [{_num(self.low)} .. {_num(self.high)}]: {self.help}"


def _num(value: float | str | None) -> str:
    if value is None or isinstance(value, str) or not float(value).is_integer():
        return str(value)
    return f"{int(value):_}" if abs(value) >= 10_000 else str(int(value))


STREAM = Param("stream", "the direction: to the store (upstream) or its replies (downstream)", "downstream",
               choices=("downstream", "upstream"))
TOXICITY = Param("toxicity", "the share of connections the toxic applies to", 1.0, 0.0, 1.0)
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class FaultKind:
    name: str
    family: str          # "process", "network" or "target"
    summary: str
    heal: str
    targets: Targets
    params: tuple[Param, ...] = ()

    def problems(self, target: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """(field, problem) for a target and parameters this kind cannot take."""
        out = []
        if not self.targets.match(target):
            out.append(("target", f"{target!r} is not something {self.name} can act on (expected {self.targets.help})"))
        known = {p.name: p for p in self.params}
        for key, value in params.items():
            if key not in known:
                allowed = ", ".join(known) or "none"
                out.append((f"params.{key}", f"{self.name} has no parameter {key!r} (its parameters: {allowed})"))
            elif (why := known[key].check(value)) is not None:
                out.append((f"params.{key}", why))
        return out

    def with_defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        return {p.name: params.get(p.name, p.default) for p in self.params}


def _process(name: str, summary: str, heal: str, targets: Targets = COMPONENTS) -> FaultKind:
    return FaultKind(name, "process", summary, heal, targets)


def _toxic(name: str, summary: str, *params: Param) -> FaultKind:
    return FaultKind(name, "network", summary, "the toxic removed", LINKS, (*params, STREAM, TOXICITY))


KINDS: tuple[FaultKind, ...] = (
    _process("kill", "SIGKILL the component (a Redis primary: its replica is promoted, the invoke waits for it)",
             "started again and ready (a Redis node rejoins, as a replica if it was failed over)"),
    _process("stop", "SIGTERM, a graceful stop (SIGKILL after 15 s)", "started again and ready"),
    _process("pause", "SIGSTOP: the process hangs, its sockets stay open", "SIGCONT, then ready"),
    _process("restart", "a graceful stop and a start; the invoke waits until it is ready",
             "nothing more (the fault window ends at the heal time)"),
    _process("kill-redis-primary", "kill on a Redis primary (design §10: timeline cache node failure)",
             "as kill", REDIS_PRIMARY),
    FaultKind("wipe-shard", "process", "SIGKILL a Redis primary and its replica together (design §10: a whole "
              "shard lost): nothing to fail over to, and the nodes keep nothing on disk",
              "both started again, empty; the cluster whole (the shard's data is rebuilt from the store)",
              REDIS_PRIMARY),
    _toxic("latency", "delay every chunk of data",
           Param("latency", "added delay, ms", 100, 0, _DAY_MS),
           Param("jitter", "± this much at random, ms", 0, 0, _DAY_MS)),
    _toxic("bandwidth", "cap the throughput", Param("rate", "KB/s", 100, 0, 10**9)),
    _toxic("slow_close", "delay the close of a connection", Param("delay", "ms", 1000, 0, _DAY_MS)),
    _toxic("timeout", "stop all data; close the connection after `timeout` ms (0: never)",
           Param("timeout", "ms", 0, 0, _DAY_MS)),
    _toxic("reset_peer", "reset connections (TCP RST) after `timeout` ms", Param("timeout", "ms", 0, 0, _DAY_MS)),
    _toxic("slicer", "cut data into small pieces with delays between them",
           Param("average_size", "bytes", 64, 1, 10**9), Param("size_variation", "bytes", 32, 0, 10**9),
           Param("delay", "µs between pieces", 10, 0, 10**9)),
    _toxic("limit_data", "close the connection after `bytes` bytes", Param("bytes", "bytes", 1024, 0, 10**12)),
    FaultKind("down", "network", "the link refuses and drops every connection (Toxiproxy disables the proxy)",
              "the link enabled again", LINKS),
    FaultKind("partition", "network", "every link to a node down: no client reaches it (the Redis cluster bus "
              "is not proxied, so the cluster itself still sees the node)", "every link enabled again", NODES),
    FaultKind("degrade-ranker", "target", "the ranking model fails (design §10): every ranking call errors",
              "the model answers again", RANKER,
              (Param("fail_share", "the share of ranking calls that fail", 1.0, 0.0, 1.0),)),
)
CATALOGUE: dict[str, FaultKind] = {k.name: k for k in KINDS}


def kind(name: str) -> FaultKind:
    if name not in CATALOGUE:
        raise KeyError(f"unknown fault {name!r} (one of {', '.join(CATALOGUE)})")
    return CATALOGUE[name]


def runtime_problems(faults: Iterable[tuple[str, str]], *, external: bool) -> list[str]:
    """What a scenario's faults ((action, target), in order) ask that the runtime cannot do. A
    target the harness did not start (--target) has no process or store link of feedlab's to
    act on: only network faults on its one link; the reference stack has no such link."""
    problems = []
    for i, (action, target) in enumerate(faults):
        where = f"faults[{i}] ({action} on {target})"
        if external and (CATALOGUE[action].family != "network" or target != EXTERNAL_LINK):
            problems.append(f"{where}: with --target feedlab owns no process or store link of the service; "
                            f"only network faults on {EXTERNAL_LINK} (the load generator's link to it) can run")
        elif not external and target == EXTERNAL_LINK:
            problems.append(f"{where}: {EXTERNAL_LINK} exists only with --target; the reference stack's "
                            "front door is generator->nginx")
    return problems
