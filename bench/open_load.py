"""One step of feedlab's own load process (harness.load.LoadGenerator running
workloads/locustfile.py: open model, latency from each request's intended time) at fixed
arrival rates against any URL, and what it measured: the benchmarks' shared load step."""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import records
from harness.checks.stats import latency_summary
from harness.load import LoadGenerator
from harness.tokens import SharedSecret
from workloads.arrivals import ArrivalPlan
from workloads.graph import Graph

LATE_SHARE_MAX = 0.01


def cores_busy(cpu_percent_samples: list[float]) -> float:
    """Cores a process kept busy: the median of its 1 s CPU samples (start-up spikes do not count)."""
    return statistics.median(cpu_percent_samples) / 100 if cpu_percent_samples else 0.0


@dataclasses.dataclass(frozen=True)
class OpenStep:
    offered: float        # arrivals/s of the plan
    achieved: float       # answered requests/s (a feed arrival may read a second page)
    requests: int
    errors: int           # no answer, or a 5xx
    p50_ms: float
    p99_ms: float         # from the intended send time
    cores: float          # the load process's CPU, median of its 1 s samples
    dropped: int
    late_share: float
    lost: int = 0         # generators lost mid-step (`generators`)

    @property
    def generator_valid(self) -> bool:
        """The generator kept its schedule: nothing dropped, at most 1 % of arrivals late, no generator lost."""
        return self.dropped == 0 and self.late_share <= LATE_SHARE_MAX and not self.lost


def run_open_load(url: str, rates: dict[str, float], seconds: int, run_dir: Path, graph: Graph,
                  token_secret: str, *, generators: int = 0, master_port: int = 0) -> OpenStep:
    """`rates` (arrivals/s per operation of workloads/locustfile.py) for `seconds` against
    `url`, as graph users signed with `token_secret`; the step's files go to `run_dir`. With
    `generators`, a Locust master on `master_port` and that many generators (workloads/distributed.py);
    `cores` is then theirs and the master's together."""
    run_dir.mkdir(parents=True)
    graph.write(run_dir)
    plan = ArrivalPlan.from_phases([{"name": "steady", "duration": seconds, "ramp": 0, "rates": rates}])
    gen = LoadGenerator(run_dir=run_dir, host=url, plan=plan, tokens=SharedSecret(token_secret), seed=1,
                        generators=generators, master_port=master_port)
    try:
        start = gen.start()
        time.sleep(max(0.0, gen.load_end + 3 - time.time()))   # the plan's end, plus the last answers
    finally:
        gen.stop()
    lost = sum(1 for e in records.read_jsonl(run_dir / records.GENERATORS) if e["event"] == "lost")
    by_process: dict[str, list[float]] = {}
    for s in records.read_jsonl(run_dir / records.GENERATOR):
        if start + 2 <= s["t"] <= start + seconds:
            by_process.setdefault(s["process"], []).append(s["cpu_percent"])
    history = list(records.read_jsonl(run_dir / records.HISTORY))
    arrivals = list(records.read_jsonl(run_dir / records.ARRIVALS))
    latency = latency_summary(r["latency_ms"] for r in history)
    return OpenStep(offered=sum(rates.values()), achieved=sum(1 for r in history if r["status"] > 0) / seconds,
                    requests=len(history), errors=sum(1 for r in history if r["error"]),
                    p50_ms=float(latency["p50_ms"] or 0.0), p99_ms=float(latency["p99_ms"] or 0.0),
                    cores=sum(cores_busy(cpu) for cpu in by_process.values()),
                    dropped=sum(a["dropped"] for a in arrivals), lost=lost,
                    late_share=sum(a["late"] for a in arrivals) / max(1, sum(a["due"] for a in arrivals)))
