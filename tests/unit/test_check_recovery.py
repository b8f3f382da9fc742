"""Recovery on hand-written runs: the conftest run's fault is 30-35 s into a 60 s load, its
canaries are seen 1 s after their ack every 2 s; each test writes the Kafka lag it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.checks import Verdict, recovery
from records import FaultWindow

from .conftest import FAULT_END, FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


def lag(fanout: Callable[[float], float]) -> dict[str, Any]:
    """target_metrics.json's consumer lag: `fanout(seconds into the load)` for one group, 1 for another."""
    return {recovery.LAG_SERIES: {"promql": "sum by (group) (feed_kafka_consumer_lag)", "unit": "messages",
                                  "series": [{"labels": {"group": "fanout"},
                                              "points": [[T0 + s, fanout(s)] for s in range(61)]},
                                             {"labels": {"group": "counters"},
                                              "points": [[T0 + s, 1.0] for s in range(61)]}]}}


def test_lag_and_freshness_back_within_the_bound_pass_with_the_later_of_the_two(
        spec: RunSpec, run_dir: Path) -> None:
    spec.target_metrics = lag(lambda s: 40.0 if 30 <= s < 39 else (s % 3))   # 0-2 before: the floor, 10
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    group = result.evidence["groups"][0]
    assert result.evidence["lag_steady_levels"] == {"counters": 10.0, "fanout": 10.0}   # LAG_FLOOR
    assert group["lag_back_by_group_s"] == {"counters": 0.0, "fanout": 4.0}
    assert group["lag_back_s"] == 4.0 and group["freshness_back_s"] == 1.0 and group["recovery_s"] == 4.0
    assert "kill-redis-primary @ redis-2: back 4.0 s after the heal (Kafka lag 4.0 s, fanout, freshness 1.0 s)" \
        in result.summary


def test_a_lag_that_builds_after_the_heal_and_stays_fails_past_the_bound(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"recovery_s": 10}
    spec.target_metrics = lag(lambda s: 0.0 if s < 37 else 5.0 * (s - 36))   # back at the heal, then a worker stalls
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL, result.summary
    assert "Kafka lag not back in the 25 s after the heal" in result.summary


def test_canaries_not_seen_in_time_after_the_heal_fail(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"recovery_s": 10}
    spec.target_metrics = lag(lambda s: 0.0)
    spec.probes = [replace(p, seen_t=T0 + 56) if FAULT_END <= p.ack_t < T0 + 50 else p
                   for p in spec.probes]
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL, result.summary
    group = result.evidence["groups"][0]
    assert group["freshness_back_s"] == 15.0 and group["stale_canaries_after_heal"][0]["freshness_s"] == 20.0


def test_without_the_target_s_lag_metrics_the_recovery_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["target_metrics_error"] = "ConnectError: prometheus unreachable"
    spec.target_metrics = {}
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and result.gating
    assert "cannot tell the Kafka lag's recovery: ConnectError: prometheus unreachable" in result.summary
    # what it can say is freshness's, and nothing about a lag it never saw
    assert "freshness back" in result.summary and "Kafka lag not back" not in result.summary


def test_a_heal_too_close_to_the_end_of_the_load_cannot_be_told(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow(name="pause", target="kafka", start_t=FAULT_START, end_t=T0 + 50)]
    spec.target_metrics = lag(lambda s: 0.0 if s < 30 else 50.0)
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN, result.summary
    assert "not back in the 10 s after the heal" in result.summary


def test_overlapping_faults_are_judged_from_their_last_heal(spec: RunSpec, run_dir: Path) -> None:
    spec.faults.append(FaultWindow(name="pause", target="worker-1", start_t=FAULT_START + 2, end_t=T0 + 40))
    spec.target_metrics = lag(lambda s: 30.0 if 30 <= s < 42 else 0.0)
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    (group,) = result.evidence["groups"]
    assert group["faults"] == ["kill-redis-primary @ redis-2", "pause @ worker-1"]
    assert group["heal_t"] == T0 + 40 and group["lag_back_s"] == 2.0


def test_a_run_without_faults_is_not_exercised(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = []
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def test_a_next_fault_that_comes_before_the_lag_is_back_does_not_hide_a_recovery_within_the_bound(
        spec: RunSpec, run_dir: Path) -> None:
    spec.faults.append(FaultWindow(name="degrade-ranker", target="ranker", start_t=T0 + 40, end_t=T0 + 45))
    spec.target_metrics = lag(lambda s: 40.0 if 30 <= s < 43 else 0.0)   # back 8 s after the heal, mid-ranker
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    first = result.evidence["groups"][0]
    assert first["lag_back_s"] == 8.0 and first["next_fault_after_s"] == 5.0
    spec.target_metrics = lag(lambda s: 40.0 if s >= 30 else 0.0)          # never back: the ranker may be why
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and "the next fault 5 s after it" in result.summary, result.summary


def test_a_lane_that_commits_in_batches_is_back_when_it_swings_around_its_level_again(
        spec: RunSpec, run_dir: Path) -> None:
    """The counter lane's lag is a sawtooth (it commits at checkpoints): a smoke run's went to 44
    after the heal against a pre-fault maximum of 34 and never counted as back."""
    def sawtooth(s: float) -> float:
        if 30 <= s < 38:
            return 200.0                      # the backlog of the fault, drained 3 s after the heal
        peak = 30.0 if s < 30 else 40.0       # after the heal: above the pre-fault maximum now and then
        return peak if s % 4 == 0 else 5.0

    spec.target_metrics = lag(sawtooth)
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["lag_steady_levels"]["fanout"] == 30.0
    assert result.evidence["groups"][0]["lag_back_by_group_s"]["fanout"] == 3.0


def test_a_lane_whose_lag_stays_over_its_level_on_average_is_not_back(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"recovery_s": 10}
    spec.target_metrics = lag(lambda s: (30.0 if s % 4 == 0 else 5.0) if s < 30 else 35.0)   # under 1.5 x, above
    result = recovery.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL, result.summary
