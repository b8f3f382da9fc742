from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import Verdict, errors
from records import Request

from .conftest import FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


def test_errors_inside_fault_within_budget_pass(spec: RunSpec, run_dir: Path) -> None:
    result = errors.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert result.evidence["errors_outside_faults"] == 0
    assert result.evidence["error_seconds_per_fault"][0]["error_seconds"] == 3


@pytest.mark.parametrize("status, error", [(500, None), (503, None), (0, "timeout"), (200, "bad body")])
def test_one_error_outside_a_fault_fails(
    spec: RunSpec, run_dir: Path, status: int, error: str | None
) -> None:
    spec.requests.append(Request(t=T0 + 55.5, op="feed", latency_ms=5, status=status, error=error))
    result = errors.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["errors_outside_faults"] == 1
    assert result.evidence["examples_outside_faults"][0]["status"] == status


def test_a_request_in_flight_when_the_fault_began_is_the_fault_s(spec: RunSpec, run_dir: Path) -> None:
    """Due 40 ms before a pause, it waited out the API's 2.5 s deadline: a fault error."""
    spec.requests.append(Request(t=FAULT_START - 0.04, op="delta", latency_ms=2513, status=503))
    result = errors.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["errors_outside_faults"] == 0, result.summary
    spec.requests[-1] = Request(t=FAULT_START - 0.04, op="delta", latency_ms=30, status=503)   # answered before
    assert errors.check(spec.write(run_dir)).evidence["errors_outside_faults"] == 1


def test_client_errors_are_not_availability_errors(spec: RunSpec, run_dir: Path) -> None:
    spec.requests.append(Request(t=T0 + 55.5, op="post", latency_ms=5, status=422))
    assert errors.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_fault_erroring_longer_than_budget_fails(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"fault_error_seconds_max": 2}
    result = errors.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert "worst fault 3 error-seconds" in result.summary


def test_unhealed_fault_extends_to_load_end(spec: RunSpec, run_dir: Path) -> None:
    spec.faults[0] = spec.faults[0].__class__("partition", "kafka-1", FAULT_START, None)
    spec.requests.append(Request(t=T0 + 59, op="feed", latency_ms=5, status=0, error="timeout"))
    result = errors.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert result.evidence["errors_inside_faults"] == 4


def test_no_requests_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.requests = []
    assert errors.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN
