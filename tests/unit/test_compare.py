"""A run against a baseline: what regressed, what only moved within tolerance or the noise
floor, and what cannot be compared."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from harness import compare
from harness.checks import Verdict
from harness.checks.feed_latency import FEED_OPS
from harness.rundata import RunData
from harness.verdict import judge_run
from records import SUMMARY, GeneratorSample

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit


def slower(spec: RunSpec, factor: float, op: str = "feed") -> RunSpec:
    ops = FEED_OPS if op == "feed" else {op}
    spec.requests = [replace(r, latency_ms=r.latency_ms * factor) if r.op in ops else r for r in spec.requests]
    return spec


def pair(tmp_path: Path, candidate: RunSpec) -> tuple[RunData, RunData]:
    return RunSpec().write(tmp_path / "a"), candidate.write(tmp_path / "b")


def by_figure(deltas: list[compare.Delta]) -> dict[str, compare.Delta]:
    return {d.figure: d for d in deltas}


def test_a_slower_feed_regresses_and_the_rest_stays_the_same(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, slower(RunSpec(), 1.5))        # feeds 20 -> 30 ms, 2 -> 3 s in the fault
    deltas = by_figure(compare.compare(base, cand))
    assert deltas["feed.p99.steady"].verdict == "regressed" and deltas["feed.p99.steady"].change_pct == \
        pytest.approx(0.5, abs=0.01)
    assert deltas["feed.p99.fault"].verdict == "regressed"
    assert deltas["post.p99.steady"].verdict == "same"
    assert deltas["freshness.median.steady"].verdict == "same"
    result = compare.result(list(deltas.values()), "a")
    assert result.verdict is Verdict.FAIL and result.kind == "baseline"
    assert "feed.p99.steady 20.0 ms → 30.0 ms +50%" in result.summary


def test_tolerances_per_figure_and_the_noise_floor(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, slower(RunSpec(), 1.2, op="post"))   # posts 30 -> 36 ms: +20 %, +6 ms
    assert by_figure(compare.compare(base, cand))["post.p99.steady"].verdict == "regressed"
    loose = {"tolerance": 0.1, "figures": {"post.p99.steady": 0.25}}
    assert by_figure(compare.compare(base, cand, loose))["post.p99.steady"].verdict == "same"
    base, cand = pair(tmp_path / "floor", slower(RunSpec(), 1.1, op="post"))   # +3 ms: under the 5 ms floor
    assert by_figure(compare.compare(base, cand, {"tolerance": 0.01}))["post.p99.steady"].verdict == "same"


def test_a_faster_run_improves_and_passes(tmp_path: Path) -> None:
    base, cand = pair(tmp_path, slower(RunSpec(), 0.5))
    deltas = compare.compare(base, cand)
    assert by_figure(deltas)["feed.p99.fault"].verdict == "improved"
    assert compare.result(deltas, "a").verdict is Verdict.PASS


def test_figures_only_one_run_has_are_listed_not_judged(tmp_path: Path) -> None:
    baseline = RunSpec()
    baseline.target_metrics = {"kafka_consumer_lag": {"series": [{"labels": {}, "points": [[T0 + 1, 5.0]]}]}}
    candidate = RunSpec()
    candidate.target_metrics = {}                                                  # Prometheus not read
    base, cand = baseline.write(tmp_path / "a"), candidate.write(tmp_path / "b")
    deltas = by_figure(compare.compare(base, cand))
    assert deltas["kafka_lag.max.run"].verdict == "only in baseline"
    assert compare.result(list(deltas.values()), "a").verdict is Verdict.PASS


def test_the_comparison_is_stored_judged_again_and_shown(tmp_path: Path) -> None:
    candidate = slower(RunSpec(), 3.0)
    candidate.probes = [replace(p, seen_t=None) for p in candidate.probes]   # infinite freshness: +inf %
    base, cand = pair(tmp_path, candidate)
    out = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base.run_dir), str(cand.run_dir)],
                         capture_output=True, text=True, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "feed.p99.steady" in out.stdout and "regressed" in out.stdout
    stored = json.loads((cand.run_dir / compare.COMPARISON).read_text())
    assert stored["baseline_run"] == "unit-run" and stored["result"]["verdict"] == "fail"
    results = judge_run(cand)                                   # `feedlab report` keeps the verdict
    assert [r.verdict for r in results if r.kind == "baseline"] == [Verdict.FAIL]
    summary = json.loads((cand.run_dir / SUMMARY).read_text())
    assert summary["baseline"]["verdict"] == "fail" and summary["exit_code"] == 1
    html = (cand.run_dir / "report.html").read_text()
    assert 'class="delta-regressed"' in html and "Against the baseline" in html
    assert stored["deltas"][[d["figure"] for d in stored["deltas"]].index("freshness.median.steady")][
        "candidate"] == "inf"


def a_saturated_generator(spec: RunSpec) -> None:
    spec.generator += [GeneratorSample(t=T0 + s, process="locust-hot", cpu_percent=99.0) for s in range(60)]


def stolen_cpu(spec: RunSpec) -> None:
    spec.machine = [replace(s, steal_percent=30.0 if 20 <= s.t - T0 < 30 else 1.0) for s in spec.machine]


@pytest.mark.parametrize("unmeasured", [a_saturated_generator, stolen_cpu])
def test_an_invalid_run_is_not_compared(tmp_path: Path, unmeasured: Callable[[RunSpec], None]) -> None:
    candidate = RunSpec()
    unmeasured(candidate)
    base, cand = pair(tmp_path, candidate)
    out = subprocess.run([sys.executable, "-m", "harness.cli", "compare", str(base.run_dir), str(cand.run_dir)],
                         capture_output=True, text=True, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "not compared: this run is invalid" in out.stdout
