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
    # The shape of a deletion-lag run on 2026-12-07: little steal for 34 s, then 8-20 % to the end;
    # its feed p99 failed in its after-heal window only.
    spec.machine = [replace(s, steal_percent=16.0 if s.t - T0 >= 34 else 1.0) for s in spec.machine]
    result = machine.check(spec.write(run_dir))
    assert result.evidence["steal_mean_percent"] == pytest.approx(7.5)
    assert result.evidence["steal_worst_window_percent"] == 16.0
    assert result.verdict is Verdict.FAIL and result.invalidates_run
    assert "7.5 % mean, 16.0 % over its worst 10 s (33-43 s into the load), 16 % in its worst second" in result.summary


def test_a_single_second_of_heavy_steal_does_not_make_a_stretch(spec: RunSpec, run_dir: Path) -> None:
    spec.machine = [replace(s, steal_percent=60.0 if s.t - T0 == 30 else 1.0) for s in spec.machine]
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["steal_worst_window_percent"] == pytest.approx(6.9)


def test_a_stretch_is_judged_only_whole(spec: RunSpec, run_dir: Path) -> None:
    # Steal in the load's last 9 s: no whole 10 s lies inside it, and each that holds it averages
    # under the bound (9.9 %); a tenth second makes one (11 %).
    spec.machine = [replace(s, steal_percent=11.0 if s.t - T0 >= 51 else 0.0) for s in spec.machine]
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["steal_worst_window_percent"] == pytest.approx(9.9)
    spec.machine = [replace(s, steal_percent=11.0 if s.t - T0 >= 50 else 0.0) for s in spec.machine]
    assert machine.check(spec.write(run_dir / "ten")).verdict is Verdict.FAIL


def test_a_late_sample_weighs_as_much_as_the_time_it_covers(spec: RunSpec, run_dir: Path) -> None:
    # The sampler stalled from 30 s to 35 s: its sample at 35 s covers those 5 s, at 20 % steal.
    # Counted once it would leave the stretch at (5 x 1 + 20) / 6 = 4.2 %; it is (5 x 1 + 5 x 20) / 10.
    spec.machine = [replace(s, steal_percent=20.0 if s.t - T0 == 35 else 1.0)
                    for s in spec.machine if not 30 < s.t - T0 < 35]
    result = machine.check(spec.write(run_dir))
    assert result.evidence["steal_worst_window_percent"] == pytest.approx(10.5)
    assert result.verdict is Verdict.FAIL and "(25-35 s into the load)" in result.summary


def test_a_load_shorter_than_a_stretch_is_judged_on_its_mean(spec: RunSpec, run_dir: Path) -> None:
    first = spec.machine[:5]
    spec.machine = [replace(s, steal_percent=p) for s, p in zip(first, [20.0, 5.0, 5.0, 5.0, 5.0], strict=True)]
    result = machine.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert "8.0 % mean, the load is shorter than 10 s: its mean judged" in result.summary
    spec.machine = [replace(s, steal_percent=p) for s, p in zip(first, [25.0, 10.0, 10.0, 10.0, 10.0], strict=True)]
    assert machine.check(spec.write(run_dir / "more")).verdict is Verdict.FAIL


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
