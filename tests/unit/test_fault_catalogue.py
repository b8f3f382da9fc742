"""The fault catalogue, the schedule's clocks and the two commands that read them without a
stack (`feedlab faults`, `feedlab validate`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from chaos.catalogue import CATALOGUE, KINDS
from chaos.schedule import FaultSchedule, start_times
from harness.cli import app
from records import FaultWindow
from workloads.scenario import Fault, ScenarioError, builtin, validate

pytestmark = pytest.mark.unit

SCENARIO = {
    "name": "t", "description": "a test scenario",
    "workload": {"kind": "steady", "phases": [{"name": "steady", "duration": "60s", "rates": {"feed": 10}}]},
}
TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")


def with_faults(*faults: dict[str, object]) -> dict[str, object]:
    return {**SCENARIO, "faults": list(faults)}


def test_the_catalogue_has_every_fault_the_design_s_chaos_model_names() -> None:
    assert {"kill", "stop", "pause", "restart", "down", "partition", *TOXICS} <= set(CATALOGUE)
    for name in TOXICS:   # each toxic can be aimed at either direction, at a share of connections
        assert {"stream", "toxicity"} <= {p.name for p in CATALOGUE[name].params}, name


@pytest.mark.parametrize("k", KINDS, ids=lambda k: k.name)
def test_every_fault_s_defaults_are_valid_parameters(k: object) -> None:
    assert not k.problems(next(t for t in ("redis-primary-1", "ranker", "kafka") if k.targets.match(t)),  # type: ignore[attr-defined]
                          k.with_defaults({}))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("action", "target"), [
    ("kill", "redis-3"), ("kill", "redis-replica-2"), ("pause", "kafka"), ("stop", "cassandra"), ("kill", "worker-2"),
    ("restart", "api-1"), ("kill", "nginx"), ("kill", "prometheus"), ("latency", "redis-primary-2"),
    ("down", "cassandra"), ("partition", "redis-primary-1"), ("degrade-ranker", "ranker"),
    ("latency", "api->redis-2"), ("down", "worker->kafka"), ("timeout", "nginx->api-2"),
    ("reset_peer", "generator->nginx"),
])
def test_targets_by_name_and_by_role_are_accepted(action: str, target: str) -> None:
    assert not CATALOGUE[action].problems(target, {})


@pytest.mark.parametrize(("fault", "expected"), [
    ({"action": "kill", "target": "redis-7"}, "faults[0].target: 'redis-7' is not something kill can act on"),
    ({"action": "kill", "target": "12345"}, "faults[0].target: '12345' is not something kill"),   # never a PID
    ({"action": "latency", "target": "api-1"}, "faults[0].target: 'api-1' is not something latency"),
    ({"action": "down", "target": "nginx->api-3"}, "faults[0].target: 'nginx->api-3' is not something down"),
    ({"action": "down", "target": "generator->api-1"}, "faults[0].target: 'generator->api-1' is not something"),
    ({"action": "partition", "target": "nginx->api-1"}, "faults[0].target: 'nginx->api-1' is not something"),
    ({"action": "latency", "target": "kafka", "params": {"latency": -5}},
     "faults[0].params.latency: must be within [0, 86_400_000], not -5"),
    ({"action": "latency", "target": "kafka", "params": {"latncy": 5}},
     "faults[0].params.latncy: latency has no parameter 'latncy' (its parameters: latency, jitter, stream, toxicity)"),
    ({"action": "timeout", "target": "kafka", "params": {"stream": "sideways"}},
     "faults[0].params.stream: must be one of downstream, upstream, not 'sideways'"),
    ({"action": "slicer", "target": "kafka", "params": {"toxicity": 1.5}},
     "faults[0].params.toxicity: must be within [0, 1], not 1.5"),
    ({"action": "limit_data", "target": "kafka", "params": {"bytes": 10.5}},
     "faults[0].params.bytes: must be a whole number, not 10.5"),
    ({"action": "kill", "target": "kafka", "params": {"signal": "HUP"}},
     "faults[0].params.signal: kill has no parameter 'signal' (its parameters: none)"),
    ({"action": "pause", "target": "kafka", "every": "5s"}, "faults[0].every: 5s must be longer than heal_after"),
    ({"action": "pause", "target": "kafka", "seed": 3}, "faults[0].seed: random gaps need `every`"),
])
def test_a_bad_fault_is_refused_with_its_field_named(fault: dict[str, object], expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        validate(with_faults({"at": "10s", "heal_after": "5s", **fault}), "s.yaml")
    assert f"s.yaml: {expected}" in str(err.value)


def test_every_problem_of_a_fault_is_named_not_only_the_first() -> None:
    with pytest.raises(ScenarioError) as err:
        validate(with_faults({"action": "latency", "target": "api-1", "at": "10s", "heal_after": "5s",
                              "params": {"latency": -1, "color": "red"}}), "s.yaml")
    lines = str(err.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "faults[0].target", "faults[0].params.latency", "faults[0].params.color"], lines


def plan(**fields: object) -> Fault:
    return Fault.model_validate({"action": "pause", "target": "kafka", "at": 10, "heal_after": 5, **fields})


def test_start_times_once_repeated_and_random_with_a_seed() -> None:
    assert start_times(plan(), until=60) == [10]
    assert start_times(plan(every=20), until=60) == [10, 30, 50]
    one, again = start_times(plan(every=20, seed=7), until=600), start_times(plan(every=20, seed=7), until=600)
    assert one == again and one != start_times(plan(every=20, seed=8), until=600)
    gaps = [b - a for a, b in zip(one, one[1:], strict=False)]
    assert min(gaps) >= 5 and max(one) < 600 and 15 < sum(gaps) / len(gaps) < 25, gaps


class Recorded:
    """A fault of our own protocol that only records what it was asked to do."""

    def __init__(self, name: str, log: list[str], *, fail_invoke: bool = False) -> None:
        self.name = name
        self.window = FaultWindow(name, target=name)
        self.log = log
        self.fail_invoke = fail_invoke

    def invoke(self) -> None:
        self.window.start_t = time.time()
        self.log.append(f"invoke {self.name}")
        self.window.event("done")
        if self.fail_invoke:
            raise RuntimeError("half-way")

    def heal(self) -> None:
        self.log.append(f"heal {self.name}")
        self.window.end_t = time.time()


def test_faults_overlap_each_on_its_own_clock_and_all_are_healed() -> None:
    log: list[str] = []
    made = iter([Recorded("a", log), Recorded("b", log, fail_invoke=True), Recorded("a2", log)])
    # a: at 0 s for 2 s, again at 2.5 s; b: at 0.5 s for 30 s (healed by heal_all at ~3.2 s)
    planned = [plan(at=0, heal_after=2, every=2.5), plan(at=0.5, heal_after=30)]
    schedule = FaultSchedule(planned, lambda _p: next(made), load_start=time.time(), load_duration=3,
                             say=lambda _m: None)
    schedule.start()
    time.sleep(1.2)
    assert sorted(schedule.active()) == ["a @ a", "b @ b"]
    time.sleep(2.0)
    schedule.heal_all()
    assert log.index("invoke b") < log.index("heal a"), log   # b began while a was still broken
    assert sorted(log) == ["heal a", "heal a2", "heal b", "invoke a", "invoke a2", "invoke b"], log
    assert [w.name for w in schedule.windows()] == ["a", "b", "a2"]
    assert all(w.end_t is not None for w in schedule.windows()) and not schedule.active()
    assert schedule.errors == ["b @ kafka: half-way"]
    assert threading.active_count() < 20


def test_feedlab_faults_lists_every_fault_with_its_parameters() -> None:
    out = CliRunner().invoke(app, ["faults"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for k in KINDS:
        assert f"{k.name}  ({k.family})" in out.output, k.name
    assert "latency=100 [0 .. 86_400_000]" in out.output and "redis-primary-1" in out.output


def test_feedlab_validate_names_every_problem_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_faults({"action": "pause", "target": "kafak", "at": "90s", "heal_after": "5s"})))
    out = CliRunner().invoke(app, ["validate", str(bad), *map(str, builtin().values())], env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert "bad.yaml: faults[0].target: 'kafak' is not something pause can act on" in out.output
    for name in builtin():
        assert f"{name}.yaml: valid: {name}," in out.output
    good = CliRunner().invoke(app, ["validate", str(builtin()["smoke"])])
    assert good.exit_code == 0 and "kill-redis-primary@redis-primary-1" in good.output
