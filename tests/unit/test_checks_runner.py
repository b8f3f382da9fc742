from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks import CHECKS, CheckResult, Verdict, exit_code, overall, run_all_checks
from harness.rundata import RunData, load_run
from records import MANIFEST, FaultWindow

from .conftest import FAULT_END, FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


def test_all_checks_pass_on_the_good_run(spec: RunSpec, run_dir: Path) -> None:
    results = run_all_checks(spec.write(run_dir))
    assert [r.name for r in results] == list(CHECKS)
    assert overall(results) is Verdict.PASS, results
    assert exit_code(results) == 0


def test_a_crashing_checker_is_unknown_not_a_crash(spec: RunSpec, run_dir: Path) -> None:
    def broken(run: RunData) -> CheckResult:
        raise ZeroDivisionError("division by zero in checker")

    results = run_all_checks(spec.write(run_dir), {"broken": broken, **CHECKS})
    assert results[0].name == "broken"
    assert results[0].verdict is Verdict.UNKNOWN
    assert "ZeroDivisionError" in results[0].summary
    assert "division by zero" in results[0].evidence["error"]
    assert len(results) == len(CHECKS) + 1
    assert exit_code(results) == 2


@pytest.mark.parametrize("verdicts, expected, code", [
    ([Verdict.PASS, Verdict.PASS], Verdict.PASS, 0),
    ([Verdict.PASS, Verdict.UNKNOWN], Verdict.UNKNOWN, 2),
    ([Verdict.UNKNOWN, Verdict.FAIL], Verdict.FAIL, 1),
])
def test_overall_and_exit_code(verdicts: list[Verdict], expected: Verdict, code: int) -> None:
    results = [CheckResult(f"c{i}", v, "s", {}) for i, v in enumerate(verdicts)]
    assert overall(results) is expected
    assert exit_code(results) == code


def test_missing_manifest_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path / MANIFEST)):
        load_run(tmp_path)


def test_only_the_manifest_is_required(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"run_id": "x"}))
    run = load_run(tmp_path)
    assert run.requests == [] and run.graph is None and run.timeline_cap == 800
    assert run.slo.feed_p99_ms == 200
    assert {r.verdict for r in run_all_checks(run)} == {Verdict.UNKNOWN}


def test_a_malformed_record_names_file_and_line(spec: RunSpec, run_dir: Path) -> None:
    spec.write(run_dir)
    with open(run_dir / "ledger.jsonl", "a") as fh:
        fh.write('{"tweet_id": "1"}\n')
    with pytest.raises(ValueError, match=r"ledger.jsonl: record 7 does not match Ack"):
        load_run(run_dir)


def test_in_fault_covers_window_and_grace(spec: RunSpec, run_dir: Path) -> None:
    run = spec.write(run_dir)
    assert not run.in_fault(FAULT_START - 0.01)
    assert run.in_fault(FAULT_START) and run.in_fault(FAULT_END + 9.9)
    assert not run.in_fault(FAULT_END + 10.1)
    assert run.in_fault(FAULT_END + 1, grace_s=2) and not run.in_fault(FAULT_END + 3, grace_s=2)


def test_unhealed_window_lasts_to_load_end_or_forever(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow("pause", "cassandra-1", T0 + 50, None)]
    run = spec.write(run_dir)
    assert run.in_fault(T0 + 69) and not run.in_fault(T0 + 71)
    run.manifest.load_end_t = None
    assert run.in_fault(T0 + 10_000)
