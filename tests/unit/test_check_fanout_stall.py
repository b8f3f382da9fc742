"""The fan-out stall on hand-written runs: worker-1 killed 20 s into the load and started again
15 s later; a canary every second, each seen by its two followers 0.3 s after its ack unless a
test holds it back (a canary on a partition the dead worker held)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import Verdict, fanout_stall
from records import FaultWindow, ProbeRecord

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit

DIED, BACK = T0 + 20.02, T0 + 35.0


def worker_fault(action: str = "kill", died: float = DIED, back: float = BACK, target: str = "worker-1") -> FaultWindow:
    what = {"kill": "killed", "stop": "stopped", "pause": "paused"}[action]
    return FaultWindow(name=action, target=target, start_t=died - 0.02, end_t=back + 1.5,
                       events=[{"t": died, "what": what, "component": target},
                               {"t": back, "what": "restarting" if action != "pause" else "resumed",
                                "component": target},
                               {"t": back + 1.5, "what": "healed"}])


def canaries(seen: dict[int, float | None] | None = None) -> list[ProbeRecord]:
    """A canary acked each second k of the load, seen at T0 + seen[k] (None: never), else 0.3 s after."""
    seen = seen or {}
    out = []
    for k in range(60):
        at = seen.get(k, k + 0.3)
        for follower in (2, 3):
            out.append(ProbeRecord(tweet_id=str(5000 + k), author_id=1, follower_id=follower, ack_t=T0 + k,
                                   seen_t=None if at is None else T0 + at))
    return out


def judge(spec: RunSpec, run_dir: Path, **slo: float):  # type: ignore[no-untyped-def]
    spec.manifest["slo"] = dict(slo)
    return fanout_stall.check(spec.write(run_dir))


def test_canaries_flowing_again_within_the_bound_pass_with_the_worst_wait_named(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault()]
    spec.probes = canaries({21: 22.1})   # the one canary on a dead partition waited 1.1 s
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.PASS and result.gating, result.summary
    (fault,) = result.evidence["faults"]
    # judged: acked from the death until the bound (4 s) before the restart, 21 to 30 s
    assert fault["canaries"] == 10 and fault["judged_s"] == pytest.approx(10.98)
    assert fault["worst_wait_s"] == pytest.approx(1.1) and fault["worst_tweet"] == "5021"
    assert result.evidence["canary_interval_s"] == pytest.approx(1.0)
    assert result.evidence["worst_wait_outside_s"] == pytest.approx(0.3)
    assert "worker-1 killed: its canaries waited at most 1.10 s (10 acked in the first 11.0 s of the 15.0 s it " \
        "was gone) (bound 4 s)" == result.summary


def test_a_stall_as_long_as_kafka_s_session_fails_naming_the_canary_and_follower(
        spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault()]
    # the dead worker's partitions (odd seconds' canaries) handed on only 10 s after the death
    spec.probes = canaries({k: 30.3 for k in range(21, 30, 2)})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.FAIL, result.summary
    (fault,) = result.evidence["faults"]
    assert fault["worst_wait_s"] == pytest.approx(9.3) and fault["over_bound"] == 3   # 21, 23, 25 (27: 3.3 s)
    assert "canary 5021, acked 1.0 s after worker-1 died, reached follower 2 after 9.30 s" in result.summary


def test_a_canary_one_follower_never_saw_waited_forever(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault()]
    spec.probes = [replace(p, seen_t=None) if p.tweet_id == "5024" and p.follower_id == 3 else p
                   for p in canaries()]
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.FAIL
    assert "waited at most forever (never seen)" in result.summary
    assert "canary 5024, acked 4.0 s after worker-1 died, reached follower 3 after forever" in result.summary


def test_a_worker_never_started_again_is_judged_until_the_end_of_the_load(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [FaultWindow(name="kill", target="worker-1", start_t=DIED - 0.02, end_t=None,
                               events=[{"t": DIED, "what": "killed", "component": "worker-1"}])]
    spec.probes = canaries({50: 55.5})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.FAIL and result.evidence["faults"][0]["canaries"] == 35   # 21 to 55 s
    spec.manifest["load_end_t"] = None
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.UNKNOWN and result.summary == "the end of the load was not recorded"


def test_a_canary_another_fault_could_have_held_up_is_left_out(spec: RunSpec, run_dir: Path) -> None:
    # worker-2 killed at 29 s and started again at 30 s: its rejoin holds up the canaries of 25 to 30 s
    spec.faults = [worker_fault(), worker_fault(died=T0 + 29.0, back=T0 + 30.0, target="worker-2")]
    spec.probes = canaries({k: 33.0 for k in range(25, 31)})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.PASS, result.summary
    first, second = result.evidence["faults"]
    # worker-1's: 21 to 30 s, less those from 4 s before worker-2's window (28.98 to 31.5 s)
    assert first["canaries"] == 4 and first["left_to_other_faults"] == 6 and first["worst_wait_s"] == \
        pytest.approx(0.3)
    assert second["judged_s"] == 0 and second["canaries"] == 0   # gone 1 s: too short to judge


def test_two_workers_gone_together_leave_nothing_to_judge_and_say_so(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault(), worker_fault(died=T0 + 22.0, back=T0 + 30.0, target="worker-2")]
    spec.probes = canaries({k: 33.0 for k in range(21, 31)})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.UNKNOWN and result.gating, result.summary
    assert "worker-1 killed: no canary acked in the first 11.0 s of the 15.0 s it was gone outside other " \
        "faults' windows (10 in them)" in result.summary


def test_the_rejoin_after_the_restart_is_not_charged_to_the_death(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault()]
    # acked within the bound before the restart: the restarted worker's joining held them up
    spec.probes = canaries({32: 36.5, 34: 36.5, 36: 38.0})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["faults"][0]["worst_wait_s"] == pytest.approx(0.3)
    assert result.evidence["worst_wait_outside_s"] == pytest.approx(2.0)


def test_the_bound_is_the_scenario_s(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault()]
    spec.probes = canaries({21: 22.1})
    result = judge(spec, run_dir, fanout_stall_s=1.0)
    assert result.verdict is Verdict.FAIL and "(bound 1 s)" in result.summary
    assert result.evidence["faults"][0]["canaries"] == 13   # 21 to 33 s: acked until 1 s before the restart


def test_a_graceful_stop_is_judged_like_a_kill(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault("stop")]
    spec.probes = canaries({22: 27.0})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.FAIL and result.summary.startswith("worker-1 stopped: ")


def test_a_worker_gone_too_briefly_for_a_canary_is_unknown_and_gates(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault(died=T0 + 20.02, back=T0 + 24.5)]   # judged: 20.02 to 20.5 s, no canary acked
    spec.probes = canaries()
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.UNKNOWN and result.gating
    assert "no canary acked in the first 0.5 s of the 4.5 s it was gone" in result.summary


def test_a_worker_gone_no_longer_than_the_bound_is_not_exercised(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [worker_fault(died=T0 + 20.02, back=T0 + 23.5)]
    spec.probes = canaries({21: 29.0})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.UNKNOWN and not result.gating
    assert result.summary == "not exercised: no fan-out worker was gone longer than the bound (4 s)"


@pytest.mark.parametrize("fault", [
    FaultWindow(name="kill-redis-primary", target="redis-2", start_t=T0 + 30, end_t=T0 + 35),
    worker_fault("pause"),                                   # a pause waits for the session, by design
    worker_fault(target="api-1"),
], ids=["redis", "paused-worker", "api"])
def test_no_fan_out_worker_taken_away_is_not_exercised(spec: RunSpec, run_dir: Path, fault: FaultWindow) -> None:
    spec.faults = [fault]
    spec.probes = canaries({k: k + 9.0 for k in range(20, 40)})
    result = judge(spec, run_dir)
    assert result.verdict is Verdict.UNKNOWN and not result.gating
    assert result.summary == "not exercised: no fan-out worker was killed or stopped"
