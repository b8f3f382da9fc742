"""The machine check: a run whose CPU the hypervisor took away (steal) is invalid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import Verdict, exit_code, machine, run_all_checks
from tests.unit.conftest import T0, RunSpec

pytestmark = pytest.mark.unit


def test_a_little_steal_passes(spec: RunSpec, run_dir: Path) -> None:
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["steal_mean_percent"] == pytest.approx(1.7)


def test_steal_above_the_bound_invalidates_the_run_whatever_else_passed(spec: RunSpec, run_dir: Path) -> None:
    spec.machine = [replace(s, steal_percent=50.0 if 20 <= s.t - T0 < 40 else 2.0) for s in spec.machine]
    run = spec.write(run_dir)
    result = machine.check(run)
    assert result.verdict is Verdict.FAIL and result.invalidates_run
    assert "run invalid" in result.summary and "18.0 % mean" in result.summary
    assert result.evidence["seconds_over_bound"] == 20
    assert exit_code(run_all_checks(run)) == 2


def test_a_stretch_of_steal_invalidates_the_run_though_the_whole_run_s_mean_is_below_the_bound(
        spec: RunSpec, run_dir: Path) -> None:
    # The shape of a deletion-lag run on 2026-12-07: little steal for 34 s, then 8-20 % to the end
    # (7.4 % mean over its 60 s); its feed p99 failed in its last two 10 s windows only.
    spec.machine = [replace(s, steal_percent=16.0 if s.t - T0 >= 34 else 1.0) for s in spec.machine]
    result = machine.check(spec.write(run_dir))
    assert result.evidence["steal_mean_percent"] < 10 and result.evidence["steal_worst_window_percent"] == 16.0
    assert result.verdict is Verdict.FAIL and result.invalidates_run
    assert "16.0 % over its worst 10 s (34 s into the load" in result.summary


def test_one_second_of_steal_does_not_make_a_stretch(spec: RunSpec, run_dir: Path) -> None:
    spec.machine = [replace(s, steal_percent=60.0 if s.t - T0 == 30 else 1.0) for s in spec.machine]
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["steal_worst_window_percent"] == pytest.approx(6.9)


def test_a_stretch_is_judged_only_whole(spec: RunSpec, run_dir: Path) -> None:
    # Steal in the load's last 9 s: no 10 s stretch lies wholly inside it, and each that holds it
    # averages below the bound; a tenth second makes one.
    spec.machine = [replace(s, steal_percent=11.0 if s.t - T0 >= 51 else 0.0) for s in spec.machine]
    assert machine.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.machine = [replace(s, steal_percent=11.0 if s.t - T0 >= 50 else 0.0) for s in spec.machine]
    assert machine.check(spec.write(run_dir / "ten")).verdict is Verdict.FAIL


def test_a_load_shorter_than_a_stretch_is_judged_on_its_mean(spec: RunSpec, run_dir: Path) -> None:
    spec.machine = [replace(s, steal_percent=11.0) for s in spec.machine[:5]]
    assert machine.worst_window(spec.machine, machine.WINDOW_S) == (11.0, T0)


def test_the_bound_comes_from_the_scenario(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"steal_max_percent": 1.0}
    assert machine.check(spec.write(run_dir)).verdict is Verdict.FAIL


def test_steal_outside_the_load_window_does_not_count(spec: RunSpec, run_dir: Path) -> None:
    spec.machine += [replace(spec.machine[0], t=T0 + 70 + s, steal_percent=90.0) for s in range(10)]   # settling
    assert machine.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_without_samples_it_is_unknown_and_does_not_gate(spec: RunSpec, run_dir: Path) -> None:
    spec.machine = []
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def test_the_machine_s_speed_is_shown_not_judged(spec: RunSpec, run_dir: Path) -> None:
    from harness.machine_speed import interpreter_ms

    spec.manifest["interpreter_ms"] = interpreter_ms(repeats=1)
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert f"fixed Python work {spec.manifest['interpreter_ms']:g} ms before the start" in result.summary
    spec.manifest["interpreter_ms"] = 10_000.0   # a very slow machine: said, and still not a verdict
    assert machine.check(spec.write(run_dir / "slow")).verdict is Verdict.PASS
