"""The sweep check on hand-written runs: clean, a leftover found (repaired or not), none recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import Verdict, run_all_checks, sweep

from .conftest import RunSpec

pytestmark = pytest.mark.unit


def test_a_clean_sweep_passes(spec: RunSpec, run_dir: Path) -> None:
    result = sweep.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and "toxiproxy: 8 proxies" in result.summary


def test_a_leftover_fails_the_run_even_when_the_sweep_repaired_it(spec: RunSpec, run_dir: Path) -> None:
    assert spec.sweep is not None
    spec.sweep["findings"] = [
        {"what": "toxiproxy", "broken": "toxic lag (latency) on redis-2", "repaired": True, "error": None},
        {"what": "process", "broken": "worker-1 exited(-9)", "repaired": False, "error": "ComponentError: no"}]
    results = run_all_checks(spec.write(run_dir))
    got = next(r for r in results if r.name == "sweep")
    assert got.verdict is Verdict.FAIL and got.gating
    assert "toxic lag (latency) on redis-2 (repaired)" in got.summary
    assert "worker-1 exited(-9) (not repaired: ComponentError: no)" in got.summary


def test_faults_without_a_sweep_are_unknown_and_no_faults_nothing_to_sweep(spec: RunSpec, run_dir: Path) -> None:
    spec.sweep = None
    assert sweep.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN
    spec.faults = []
    result = sweep.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def test_a_fault_that_could_not_be_invoked_fails_the_run_though_the_sweep_was_clean(spec: RunSpec,
                                                                                    run_dir: Path) -> None:
    """The schedule keeps going when an invoke raises (the heal still runs); the run must not
    pass as if its fault had happened."""
    spec.faults[0].events.append({"t": spec.faults[0].start_t, "what": "invoke-failed",
                                  "error": "the target's Redis cluster is not reachable"})
    spec.manifest["chaos_errors"] = ["latency @ generator->target: the target's Redis cluster is not reachable"]
    got = sweep.check(spec.write(run_dir))
    assert got.verdict is Verdict.FAIL
    assert "could not be invoked or healed" in got.summary and "not reachable" in got.summary
