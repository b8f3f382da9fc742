"""A tiny, healthy run written by hand; each test breaks exactly one thing in it.

The run: 60 s of load from T0, a feed request every 0.1 s (20 ms) and a post every second, one
fault ("kill-redis-primary", 30-35 s) with slow feeds and a few 5xx inside it, which the gate
allows. Graph: authors 1 and 2 are push tier (followers [2, 3] and [3]), author 9 is a
celebrity (pull tier, threshold 5). Final reads show every acked tweet where it belongs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import records
from harness.rundata import RunData, load_run
from records import (
    Ack,
    Action,
    ArrivalSample,
    FaultWindow,
    FinalRead,
    FollowChange,
    GeneratorEvent,
    GeneratorSample,
    MachineSample,
    Observation,
    ProbeRecord,
    Request,
    Signal,
    StreamSpan,
)

T0 = 1_700_000_000.0
FAULT_START, FAULT_END = T0 + 30, T0 + 35


def _requests() -> list[Request]:
    out = []
    for i in range(600):
        t = T0 + i * 0.1
        inside = FAULT_START <= t <= FAULT_END
        status = 503 if inside and i % 20 == 0 else 200
        out.append(Request(t=t, op="feed" if i % 2 else "feed_page", latency_ms=2000 if inside else 20,
                           status=status))
    out += [Request(t=T0 + s + 0.05, op="post", latency_ms=30, status=201) for s in range(60)]
    return out


def _acks() -> list[Ack]:
    # author 1: tweets 1001-1003, author 2: 1004-1005, celebrity 9: 1006
    authors = [1, 1, 1, 2, 2, 9]
    return [Ack(tweet_id=str(1001 + i), author_id=a, ack_t=T0 + 5 + i) for i, a in enumerate(authors)]


@dataclass
class RunSpec:
    manifest: dict[str, Any] = field(default_factory=lambda: {
        "run_id": "unit-run", "scenario": "unit", "git_sha": "abc123", "seed": 7, "graph_hash": "h",
        "started_t": T0 - 5, "ended_t": T0 + 90, "load_start_t": T0, "load_end_t": T0 + 60,
        "settle_end_t": T0 + 80, "partial": False, "timeline_cap": 800, "config": {}, "slo": {},
    })
    graph: dict[str, Any] | None = field(default_factory=lambda: {
        "seed": 7, "users": 10, "hash": "h", "push_threshold": 2, "pull_threshold": 5,
        "followers": {"1": [2, 3], "2": [3], "9": [1, 2, 3, 4, 5]},
    })
    requests: list[Request] = field(default_factory=_requests)
    acks: list[Ack] = field(default_factory=_acks)
    probes: list[ProbeRecord] = field(default_factory=lambda: [
        ProbeRecord(tweet_id=str(2000 + i), author_id=1, follower_id=2, ack_t=T0 + 2 * i,
                    seen_t=None if T0 + 2 * i == FAULT_START else T0 + 2 * i + 1.0)
        for i in range(30)
    ])
    faults: list[FaultWindow] = field(default_factory=lambda: [
        FaultWindow(name="kill-redis-primary", target="redis-2", start_t=FAULT_START, end_t=FAULT_END),
    ])
    final_reads: list[FinalRead] = field(default_factory=lambda: [
        FinalRead(kind="author", user_id=1, tweet_ids=["1003", "1002", "1001"]),
        FinalRead(kind="author", user_id=2, tweet_ids=["1005", "1004"]),
        FinalRead(kind="author", user_id=9, tweet_ids=["1006"]),
        FinalRead(kind="timeline", user_id=2, tweet_ids=["1006", "1003", "1002", "1001"]),
        FinalRead(kind="timeline", user_id=3, tweet_ids=["1006", "1005", "1004", "1003", "1002", "1001"]),
    ])
    generator: list[GeneratorSample] = field(default_factory=lambda: [
        GeneratorSample(t=T0 + s, process=f"locust-{p}", cpu_percent=40.0 + 10 * p)
        for s in range(60) for p in range(2)
    ])
    arrivals: list[ArrivalSample] = field(default_factory=lambda: [
        ArrivalSample(t=T0 + s, process=f"locust-{p}", due=20, sent=20, dropped=0, late=0, max_lag_ms=3.0,
                      in_flight=2)
        for s in range(60) for p in range(2)
    ])
    generators: list[GeneratorEvent] = field(default_factory=list)   # a distributed run's
    machine: list[MachineSample] = field(default_factory=lambda: [
        MachineSample(t=T0 + s, busy_percent=60.0, steal_percent=1.0 if s % 10 else 8.0) for s in range(60)
    ])

    observations: list[Observation] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    graph_changes: list[FollowChange] = field(default_factory=list)
    streams: list[StreamSpan] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)

    # as target_metrics.json: the fan-out's Kafka lag, 0 to 2 messages all along
    target_metrics: dict[str, Any] = field(default_factory=lambda: {"kafka_consumer_lag": {
        "promql": "sum by (group) (feed_kafka_consumer_lag)", "unit": "messages", "what": "Kafka consumer lag",
        "series": [{"labels": {"group": "fanout"}, "points": [[T0 + s, float(s % 3)] for s in range(61)]}]}})
    # the heal sweep after the faults (None: not recorded)
    sweep: dict[str, Any] | None = field(default_factory=lambda: {
        "t": T0 + 62, "clean": True, "looked_at": ["toxiproxy: 8 proxies", "processes: 20"], "seconds": 0.2,
        "findings": []})

    def write(self, run_dir: Path) -> RunData:
        run_dir.mkdir(parents=True, exist_ok=True)
        records.write_json(run_dir / records.MANIFEST, self.manifest)
        if self.target_metrics:
            records.write_json(run_dir / records.TARGET_METRICS, self.target_metrics)
        if self.graph is not None:
            records.write_json(run_dir / records.GRAPH, self.graph)
        (run_dir / records.SWEEP).unlink(missing_ok=True)
        if self.sweep is not None:
            records.write_json(run_dir / records.SWEEP, self.sweep)
        for name, items in ((records.HISTORY, self.requests), (records.LEDGER, self.acks),
                            (records.PROBES, self.probes), (records.FAULTS, self.faults),
                            (records.FINAL_READS, self.final_reads), (records.GENERATOR, self.generator),
                            (records.ARRIVALS, self.arrivals), (records.MACHINE, self.machine),
                            (records.GENERATORS, self.generators),
                            (records.OBSERVATIONS, self.observations), (records.ACTIONS, self.actions),
                            (records.GRAPH_CHANGES, self.graph_changes), (records.STREAMS, self.streams),
                            (records.SIGNALS, self.signals)):
            (run_dir / name).unlink(missing_ok=True)   # written again: the records as they are now
            with records.JsonlWriter(run_dir / name) as writer:
                for item in items:
                    writer.write(item)
        return load_run(run_dir)


@pytest.fixture
def spec() -> RunSpec:
    return RunSpec()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
