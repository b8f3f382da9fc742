from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.checks import Verdict, errors, feed_latency, freshness, generator
from records import ArrivalSample, GeneratorEvent, GeneratorSample, ProbeRecord, Request

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit


def test_good_history_passes_every_check(spec: RunSpec, run_dir: Path) -> None:
    run = spec.write(run_dir)
    for check in (feed_latency.check, freshness.check, errors.check, generator.check):
        result = check(run)
        assert result.verdict is Verdict.PASS, result


def test_slow_feed_requests_outside_faults_fail(spec: RunSpec, run_dir: Path) -> None:
    spec.requests += [Request(t=T0 + 50 + i / 100, op="feed", latency_ms=450, status=200) for i in range(20)]
    result = feed_latency.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["outside_faults"]["p99_ms"] == pytest.approx(450, rel=1e-3)
    assert "200 ms" in result.summary


def test_slow_feeds_inside_a_fault_are_reported_not_judged(spec: RunSpec, run_dir: Path) -> None:
    result = feed_latency.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert result.evidence["inside_faults_p99_ms"] == pytest.approx(2000, rel=1e-3)
    assert result.evidence["whole_run_p99_ms"] == pytest.approx(2000, rel=1e-3)


def test_no_feed_requests_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.requests = [r for r in spec.requests if r.op == "post"]
    assert feed_latency.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def test_gate_from_manifest_overrides_default(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"feed_p99_ms": 10}
    assert feed_latency.check(spec.write(run_dir)).verdict is Verdict.FAIL


def test_stale_canaries_fail_freshness(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = [dataclasses.replace(p, seen_t=p.ack_t + 9.0) for p in spec.probes]
    result = freshness.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["median_s"] == pytest.approx(9.0)


def test_unseen_canaries_count_as_infinitely_stale(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = [dataclasses.replace(p, seen_t=None) if i % 3 else p for i, p in enumerate(spec.probes)]
    result = freshness.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["unseen"] > result.evidence["n"] / 2


def test_no_probes_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = []
    assert freshness.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def test_canary_unseen_inside_fault_does_not_count(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = [ProbeRecord("1", 1, 2, T0 + 31, None)] * 5 + [ProbeRecord("2", 1, 2, T0 + 50, T0 + 51)]
    result = freshness.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert result.evidence["inside_faults_unseen"] == 5


def test_saturated_generator_fails(spec: RunSpec, run_dir: Path) -> None:
    spec.generator += [GeneratorSample(t=T0 + s, process="locust-hot", cpu_percent=97.0) for s in range(60)]
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert "locust-hot" in result.summary
    assert result.evidence["processes"]["locust-hot"]["mean_cpu_percent"] == pytest.approx(97.0)


def test_generator_spike_outside_load_window_is_ignored(spec: RunSpec, run_dir: Path) -> None:
    spec.generator.append(GeneratorSample(t=T0 + 70, process="locust-0", cpu_percent=100.0 * 60))
    assert generator.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_dropped_arrivals_make_the_run_invalid(spec: RunSpec, run_dir: Path) -> None:
    spec.arrivals.append(ArrivalSample(t=T0 + 30, process="locust-0", due=20, sent=19, dropped=1, late=0,
                                       max_lag_ms=2.0, in_flight=1000))
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "1 of 2420 arrivals dropped" in result.summary


def test_a_scheduler_running_late_makes_the_run_invalid(spec: RunSpec, run_dir: Path) -> None:
    spec.arrivals.append(ArrivalSample(t=T0 + 30, process="locust-1", due=100, sent=100, dropped=0, late=40,
                                       max_lag_ms=250.0, in_flight=3))
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "late" in result.summary
    assert result.evidence["max_lag_ms"] == 250.0


def test_without_arrival_records_drops_cannot_be_ruled_out(spec: RunSpec, run_dir: Path) -> None:
    spec.arrivals = []
    assert generator.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def test_no_generator_samples_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.generator = []
    assert generator.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def _distributed(spec: RunSpec) -> None:
    """Two generators of a distributed run, joined, clocks measured, both done."""
    spec.generator = [GeneratorSample(t=T0 + s, process=f"generator-{p}", cpu_percent=30.0)
                      for s in range(60) for p in range(2)]
    spec.generators = [GeneratorEvent(t=T0 - 3, generator=f"generator-{p}", event="joined", detail="vm pid 1")
                       for p in range(2)]
    spec.generators += [GeneratorEvent(t=T0 - 3, generator=f"generator-{p}", event="clock", detail="+0.2 ms ± 0.3 ms",
                                       clock_offset_s=0.0002, clock_error_s=0.0003) for p in range(2)]
    spec.generators.append(GeneratorEvent(t=T0 - 2, generator="master", event="start", load_start_t=T0))
    spec.generators += [GeneratorEvent(t=T0 + 61, generator=f"generator-{p}", event="done") for p in range(2)]


def test_a_distributed_run_whose_generators_all_finished_passes(spec: RunSpec, run_dir: Path) -> None:
    _distributed(spec)
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["generators"]["generator-1"]["event"] == "done"


def test_a_generator_lost_mid_run_makes_the_run_invalid(spec: RunSpec, run_dir: Path) -> None:
    _distributed(spec)
    spec.generators = [e for e in spec.generators if not (e.generator == "generator-1" and e.event == "done")]
    spec.generators.append(GeneratorEvent(t=T0 + 23, generator="generator-1", event="lost",
                                          detail="no heartbeat for 3 s"))
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.invalidates_run
    assert "generator-1 lost at +23 s (no heartbeat for 3 s)" in result.summary


def test_a_generator_whose_clock_is_off_makes_the_run_invalid(spec: RunSpec, run_dir: Path) -> None:
    _distributed(spec)
    spec.generators.append(GeneratorEvent(t=T0 - 3, generator="generator-0", event="clock",
                                          detail="+250.0 ms ± 2.0 ms from the master's", clock_offset_s=0.25,
                                          clock_error_s=0.002))
    result = generator.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "generator-0's clock is +250.0 ms" in result.summary
    # within the bound once the measure's own error is allowed for
    spec.generators[-1] = GeneratorEvent(t=T0 - 3, generator="generator-0", event="clock", detail="",
                                         clock_offset_s=0.15, clock_error_s=0.06)
    assert generator.check(spec.write(run_dir)).verdict is Verdict.PASS
