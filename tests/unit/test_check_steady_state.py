"""The steady-state hypothesis on hand-written runs: the conftest run is in steady state before
its fault (30-35 s) and after it (45-60 s); each test breaks one probe in one window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import Verdict, steady_state
from records import FaultWindow, Request

from .conftest import FAULT_END, FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


def slow_feeds(spec: RunSpec, lo: float, hi: float, latency_ms: float = 900) -> None:
    spec.requests = [replace(r, latency_ms=latency_ms) if r.op.startswith("feed") and lo <= r.t < hi else r
                     for r in spec.requests]


def test_a_target_in_steady_state_before_and_after_passes(spec: RunSpec, run_dir: Path) -> None:
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.gating, result.summary
    assert "before the first fault" in result.summary and "back in it after the last heal" in result.summary
    before, after = result.evidence["before"], result.evidence["after"]
    assert before["feed_reads"] == 280 and before["errors"] == 0 and after["start_t"] == FAULT_END + 10
    assert len(result.evidence["timeline"]) == 6 and result.evidence["timeline"][3]["errors"] > 0


def test_slow_feeds_before_the_first_fault_make_the_run_unknown_not_pass(spec: RunSpec, run_dir: Path) -> None:
    slow_feeds(spec, T0 + 10, T0 + 20)
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and result.gating
    assert result.summary.startswith("not in steady state before the first fault: feed p99 900.")


def test_errors_before_the_first_fault_make_the_run_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.requests += [Request(t=T0 + 12 + i, op="post", latency_ms=5, status=503, error="HTTP 503") for i in range(3)]
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and "3 errors in" in result.summary


def test_a_fault_too_early_to_know_the_steady_state_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow(name="pause", target="kafka", start_t=T0 + 8, end_t=T0 + 12)]
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and result.summary.startswith("cannot tell the steady state")


def test_a_target_not_back_in_steady_state_after_the_last_heal_fails(spec: RunSpec, run_dir: Path) -> None:
    slow_feeds(spec, FAULT_END + 10, T0 + 60)
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "NOT back in it 10 s after the last heal: feed p99 900" in result.summary


def test_canaries_never_seen_after_the_heal_fail_the_freshness_probe(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = [replace(p, seen_t=None) if p.ack_t >= FAULT_END + 10 else p for p in spec.probes]
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "freshness median inf s" in result.summary


def test_a_heal_too_close_to_the_end_of_the_load_is_not_judged_after(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow(name="pause", target="kafka", start_t=FAULT_START, end_t=T0 + 55)]
    slow_feeds(spec, T0 + 55, T0 + 60)
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and "after the last heal not judged" in result.summary


def test_a_fault_never_healed_fails_and_no_fault_is_not_exercised(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow(name="pause", target="kafka", start_t=FAULT_START, end_t=None)]
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "never healed" in result.summary
    spec.faults = []
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def test_verify_tries_again_a_run_unsteady_before_its_fault_and_only_that_kind_of_unknown(
        spec: RunSpec, run_dir: Path) -> None:
    """`feedlab verify` runs an experiment once more when its run tried nothing of the fault: the
    target was off its steady state before it. Not for any other unknown, nor a failure."""
    from harness.checks import CheckResult
    from harness.verify import untried

    steady = steady_state.check(spec.write(run_dir))
    assert untried([steady]) is None
    slow_feeds(spec, T0 + 10, T0 + 20)
    unsteady = steady_state.check(spec.write(run_dir))
    assert untried([unsteady]) == "the target was not in steady state before the first fault"
    failed = CheckResult("engagement", Verdict.FAIL, "a like lost")
    assert untried([unsteady, failed]) is None            # what failed stands
    other_unknown = CheckResult("backfill", Verdict.UNKNOWN, "not exercised")
    assert untried([steady, other_unknown]) is None
    invalid = CheckResult("generator", Verdict.FAIL, "saturated", invalidates_run=True)
    assert untried([steady, invalid]) == "the run is invalid (the machine, not the target, was measured)"


def test_the_after_window_begins_as_long_after_the_heal_as_the_scenario_says(spec: RunSpec, run_dir: Path) -> None:
    """A scenario whose recovery is expected to take longer (a shard that comes back empty) takes
    the probes again later: what the target does before then is not judged by this check."""
    slow_feeds(spec, FAULT_END + 10, FAULT_END + 14)
    assert steady_state.check(spec.write(run_dir)).verdict is Verdict.FAIL
    spec.manifest["slo"] = {"steady_after_s": 15.0}
    result = steady_state.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["after"]["start_t"] == FAULT_END + 15
