"""The live progress line reads only what was appended since the last one."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.progress import LiveProgress
from records import HISTORY, PROBES, JsonlWriter, ProbeRecord, Request
from workloads.arrivals import ArrivalPlan

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0
PLAN = ArrivalPlan.from_phases([{"name": "steady", "duration": 60, "rates": {"feed": 10}},
                                {"name": "spike", "duration": 60, "rates": {"feed": 50}}])


def test_each_line_covers_what_came_since_the_last(tmp_path: Path) -> None:
    progress = LiveProgress(tmp_path, PLAN, T0)
    with JsonlWriter(tmp_path / HISTORY) as h, JsonlWriter(tmp_path / PROBES) as p:
        for i in range(50):
            h.write(Request(t=T0 + i * 0.1, op="feed", latency_ms=10.0 + i, status=200))
        h.write(Request(t=T0 + 4, op="post", latency_ms=5.0, status=0, error="timeout"))
        p.write(ProbeRecord(tweet_id="1", author_id=1, follower_id=2, ack_t=T0 + 1, seen_t=T0 + 1.5))
    line = progress.line(T0 + 5, ["kill-redis-primary @ redis-2"])
    assert line.startswith("load 00:05/02:00 steady | 10.2 req/s | feed p99 59 ms | fresh p50 0.50 s | errors 1")
    assert line.endswith("faults: kill-redis-primary @ redis-2")
    with JsonlWriter(tmp_path / HISTORY) as h:
        h.write(Request(t=T0 + 70, op="feed", latency_ms=7.0, status=200))
    line = progress.line(T0 + 70, [])
    assert "spike" in line and "feed p99 7 ms" in line and "errors 0" in line and line.endswith("no fault")
