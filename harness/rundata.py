"""A run directory loaded into memory: the input of every check and of the report.

Loading is strict about what it cannot do without (the manifest) and lenient about what a cut
run may not have written yet (every JSON-lines file may be missing: it reads as empty). A
record that does not match its schema is an error naming the file and line, not a silent skip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import records
from records import (
    Ack,
    Action,
    ArrivalSample,
    ContainerSample,
    FaultWindow,
    FinalRead,
    FollowChange,
    GeneratorEvent,
    GeneratorSample,
    MachineSample,
    Manifest,
    Observation,
    ProbeRecord,
    Request,
    Signal,
    StreamSpan,
)
from workloads.graph import Graph

DEFAULT_FAULT_GRACE_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class Slo:
    """The bounds the checks judge (manifest "slo"; "gates" in runs before per-window gates);
    a missing key takes the default."""

    feed_p99_ms: float = 200.0
    freshness_median_s: float = 5.0
    error_rate_max: float = 0.0001
    fault_error_seconds_max: int = 30
    generator_cpu_max_percent: float = 90.0
    steal_max_percent: float = 10.0
    deletion_lag_s: float = 60.0
    counts_converge_s: float = 10.0
    backfill_s: float = 10.0
    cache_node_served_min: float = 0.999
    recovery_s: float = 30.0
    steady_after_s: float = DEFAULT_FAULT_GRACE_S
    sse_delivered_min: float = 0.99
    sse_delay_p99_s: float = 10.0
    fanout_stall_s: float = 4.0

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> Slo:
        given = manifest.slo
        if given is None and isinstance(manifest.gates, dict):
            given = manifest.gates
        given = given or {}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in given.items() if k in known and v is not None})


@dataclass
class RunData:
    run_dir: Path
    manifest: Manifest
    requests: list[Request] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    probes: list[ProbeRecord] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    final_reads: list[FinalRead] = field(default_factory=list)
    generator: list[GeneratorSample] = field(default_factory=list)
    generators: list[GeneratorEvent] = field(default_factory=list)   # a distributed run's (--generators)
    containers: list[ContainerSample] = field(default_factory=list)  # the docker runtime's (--runtime docker)
    arrivals: list[ArrivalSample] = field(default_factory=list)
    machine: list[MachineSample] = field(default_factory=list)
    sweep: dict[str, Any] | None = None   # the heal sweep's result (None: none recorded)
    observations: list[Observation] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    graph_changes: list[FollowChange] = field(default_factory=list)   # the flips only (follow_flips), by time
    streams: list[StreamSpan] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    target_metrics: dict[str, Any] = field(default_factory=dict)   # name -> {promql, unit, series}
    graph: Graph | None = None

    @property
    def slo(self) -> Slo:
        return Slo.from_manifest(self.manifest)

    @property
    def timeline_cap(self) -> int:
        return self.manifest.timeline_cap

    @property
    def partial(self) -> bool:
        return self.manifest.partial

    @property
    def load_start_t(self) -> float | None:
        """The start of load, else the first recorded request (None for an empty run)."""
        start = self.manifest.load_start_t
        if start is not None:
            return float(start)
        return min((r.t for r in self.requests), default=None)

    @property
    def load_end_t(self) -> float | None:
        end = self.manifest.load_end_t
        return None if end is None else float(end)

    def fault_intervals(
        self, grace_s: float = DEFAULT_FAULT_GRACE_S
    ) -> list[tuple[FaultWindow, float, float]]:
        """Each fault window with the interval it covers: [start, end + grace].

        A window never healed (end_t None) lasts until the end of load, or forever when load
        did not end either (a cut run).
        """
        out = []
        for w in self.faults:
            end = w.end_t if w.end_t is not None else (self.load_end_t or math.inf)
            out.append((w, w.start, max(end, w.start) + grace_s))
        return out

    def in_fault(self, t: float, grace_s: float = DEFAULT_FAULT_GRACE_S) -> bool:
        """True when `t` is inside a fault window or within `grace_s` of recovery after it."""
        return any(lo <= t <= hi for _, lo, hi in self.fault_intervals(grace_s))

    def fault_predicate(self, grace_s: float = DEFAULT_FAULT_GRACE_S) -> Callable[[float], bool]:
        """`in_fault` with the intervals computed once, for loops over a whole history."""
        spans = [(lo, hi) for _, lo, hi in self.fault_intervals(grace_s)]
        return lambda t: any(lo <= t <= hi for lo, hi in spans)

    def in_flight_predicate(self, grace_s: float = DEFAULT_FAULT_GRACE_S) -> Callable[[Request], bool]:
        """Whether a request was in flight during a fault window or its grace: due before the
        span ended and answered after it began. A read due 40 ms before a Cassandra pause that
        waited it out and got a 503 is the fault's, not steady state's."""
        spans = [(lo, hi) for _, lo, hi in self.fault_intervals(grace_s)]
        return lambda r: any(r.t <= hi and r.t + r.latency_ms / 1000 >= lo for lo, hi in spans)


def parse_records(rows: Iterable[dict[str, Any]], cls: Callable[..., T], where: Path) -> list[T]:
    """JSON-lines rows as `cls` records (fields it does not know are ignored)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    out = []
    for n, rec in enumerate(rows, start=1):
        try:
            out.append(cls(**{k: v for k, v in rec.items() if k in known}))
        except TypeError as exc:
            raise ValueError(f"{where}: record {n} does not match {cls.__name__}: {exc}") from exc
    return out


def _load(path: Path, cls: Callable[..., T]) -> list[T]:
    return parse_records(records.read_jsonl(path), cls, path)


def follow_flips(graph: Graph | None, changes: Iterable[FollowChange]) -> list[FollowChange]:
    """The acknowledged follows and unfollows that changed whether a pair follows, in time order:
    the workload records every one it made, and a follow of an account already followed (seeded,
    or followed again) changes nothing. Without the seeded graph, all of them."""
    ordered = sorted(changes, key=lambda c: c.t)
    if graph is None:
        return ordered
    state: dict[tuple[int, int], bool] = {}
    flips: list[FollowChange] = []
    for c in ordered:
        pair = (c.follower, c.followee)
        if state.get(pair, graph.follows(*pair)) != c.following:
            state[pair] = c.following
            flips.append(c)
    return flips


def measured(requests: Iterable[Request]) -> list[Request]:
    """The requests whose outcome measures the target: all but those the client abandoned on
    purpose (records.Request.abandoned)."""
    return [r for r in requests if not r.abandoned]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read JSON: {exc}") from exc


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; only manifest.json is required."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / records.MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: missing; {run_dir} is not a feedlab run directory")
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise ValueError(f"{manifest_path}: expected a JSON object")
    graph_path = run_dir / records.GRAPH
    graph = None
    if graph_path.is_file():
        try:
            graph = Graph.read(run_dir)
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{graph_path}: not a feedlab graph: {exc!r}") from exc
    return RunData(
        run_dir=run_dir,
        manifest=Manifest.from_json(manifest),
        requests=measured(_load(run_dir / records.HISTORY, Request)),
        acks=_load(run_dir / records.LEDGER, Ack),
        probes=_load(run_dir / records.PROBES, ProbeRecord),
        faults=[w for w in _load(run_dir / records.FAULTS, FaultWindow) if w.start_t is not None],
        final_reads=_load(run_dir / records.FINAL_READS, FinalRead),
        generator=_load(run_dir / records.GENERATOR, GeneratorSample),
        generators=_load(run_dir / records.GENERATORS, GeneratorEvent),
        containers=_load(run_dir / records.CONTAINERS, ContainerSample),
        arrivals=_load(run_dir / records.ARRIVALS, ArrivalSample),
        machine=_load(run_dir / records.MACHINE, MachineSample),
        observations=_load(run_dir / records.OBSERVATIONS, Observation),
        actions=_load(run_dir / records.ACTIONS, Action),
        graph_changes=follow_flips(graph, _load(run_dir / records.GRAPH_CHANGES, FollowChange)),
        streams=_load(run_dir / records.STREAMS, StreamSpan),
        signals=_load(run_dir / records.SIGNALS, Signal),
        target_metrics=read_json(run_dir / records.TARGET_METRICS) if (run_dir / records.TARGET_METRICS).is_file()
        else {},
        graph=graph,
        sweep=read_json(run_dir / records.SWEEP) if (run_dir / records.SWEEP).is_file() else None,
    )


def split_by_fault(
    items: Iterable[T], time_of: Callable[[T], float], in_fault: Callable[[float], bool]
) -> tuple[list[T], list[T]]:
    """(outside, inside) fault windows, by the time `time_of` gives each item."""
    outside: list[T] = []
    inside: list[T] = []
    for item in items:
        (inside if in_fault(time_of(item)) else outside).append(item)
    return outside, inside
