"""Live progress of a run, one terminal line every few seconds, from the records being written.

    load 00:45/02:00 steady | 61.2 req/s | feed p99 38 ms | fresh p50 0.24 s | errors 0 | faults: kill-redis-primary

It reads only what was appended since the last line (history, probes), so it costs nothing
measurable however long the run.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import orjson

import records
from harness.checks.feed_latency import FEED_OPS
from harness.checks.stats import new_histogram, percentile_ms, record_ms
from workloads.arrivals import ArrivalPlan


class Tail:
    """The records appended to a JSON-lines file since the last call (a torn last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        out = []
        for line in chunk[:end].splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


class LiveProgress:
    def __init__(self, run_dir: Path, plan: ArrivalPlan, load_start: float) -> None:
        self.plan = plan
        self.load_start = load_start
        self.history = Tail(run_dir / records.HISTORY)
        self.probes = Tail(run_dir / records.PROBES)
        self.last_t = load_start

    def line(self, now: float, active_faults: list[str]) -> str:
        requests = [r for r in self.history.new() if not r.get("abandoned")]
        probes = self.probes.new()
        window = max(1e-6, now - self.last_t)
        self.last_t = now
        elapsed = now - self.load_start
        phase = self.plan.phase_at(elapsed)
        feed = [r["latency_ms"] for r in requests if r["op"] in FEED_OPS and r["status"] > 0]
        hist = new_histogram()
        record_ms(hist, feed)
        p99 = percentile_ms(hist, 99) if feed else None
        errors = sum(1 for r in requests if r.get("error") or not 0 < r["status"] < 500)
        fresh = [p["seen_t"] - p["ack_t"] for p in probes if p.get("seen_t") is not None]
        parts = [
            f"load {_clock(elapsed)}/{_clock(self.plan.duration_s)} {phase.name if phase else 'draining'}",
            f"{len(requests) / window:.1f} req/s",
            f"feed p99 {p99:.0f} ms" if p99 is not None else "feed p99 -",
            f"fresh p50 {statistics.median(fresh):.2f} s" if fresh else "fresh p50 -",
            f"errors {errors}",
            f"faults: {', '.join(active_faults)}" if active_faults else "no fault",
        ]
        return " | ".join(parts)
