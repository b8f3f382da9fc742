"""Scenario files: every built-in one is valid; bad ones are refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workloads.scenario import ScenarioError, builtin, load_file, resolve

pytestmark = pytest.mark.unit

GOOD = {
    "name": "t", "description": "a test scenario",
    "workload": {"kind": "steady", "phases": [{"name": "steady", "duration": "60s", "rates": {"feed": 10, "post": 1}}]},
    "faults": [{"action": "kill-redis-primary", "target": "redis-primary-2", "at": "20s", "heal_after": "10s"}],
}


def write(tmp_path: Path, data: object, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def with_change(path: list[str | int], value: object) -> dict:  # type: ignore[type-arg]
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(builtin()))
def test_every_builtin_scenario_is_valid(name: str) -> None:
    sc = resolve(name)
    assert sc.name == name and sc.workload.duration >= 10


def test_durations_and_shares_take_units(tmp_path: Path) -> None:
    data = with_change(["gates"], {"feed_p99": "150ms", "error_rate": "1%", "freshness_median": 4})
    sc = load_file(write(tmp_path, data))
    assert sc.gates.feed_p99 == pytest.approx(0.15) and sc.gates.error_rate == pytest.approx(0.01)
    assert sc.workload.duration == 60 and sc.faults[0].at == 20 and sc.faults[0].params() == {"primary_index": 2}


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["workload", "phases", 0, "rates", "post"], -1, "s.yaml: workload.phases[0].rates.post: Input should be greater"),
    (["workload", "phases", 0, "rates", "likes"], 3, "workload.phases[0].rates.likes: Extra inputs are not permitted"),
    (["workload", "phases", 0, "duration"], "soon", "workload.phases[0].duration: 'soon' is not a duration"),
    (["workload", "phases", 0, "ramp"], "2m", "workload.phases[0]: ramp (120 s) is longer than the phase (60 s)"),
    (["workload", "phases", 0, "duration"], "5s", "workload: the phases last 5 s in all; at least 10 s"),
    (["workload", "kind"], "marathon", "workload.kind: Input should be 'steady', 'worldcup' or 'celebrity'"),
    (["faults", 0, "target"], "redis-primary-9", "faults[0]: target 'redis-primary-9' is not a component"),
    (["faults", 0, "action"], "kill-the-moon", "faults[0].action: Input should be 'kill-redis-primary'"),
    (["faults", 0, "at"], "90s", "faults[0].at=90s: must fall within the load (0 .. 60 s)"),
    (["gates"], {"p99_feed": "200ms"}, "gates.p99_feed: Extra inputs are not permitted"),
    (["gates"], {"error_rate": "150%"}, "gates.error_rate: Input should be less than or equal to 1"),
    (["graph"], {"size": "huge"}, "graph.size: Input should be 'small', 'default' or 'large'"),
    (["target_env"], {"PATH": "/tmp"}, "only FEED_* settings may be given; not PATH"),
])
def test_a_bad_field_is_named_with_its_problem(tmp_path: Path, path: list[str | int], value: object,
                                               expected: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_file(write(tmp_path, with_change(path, value)))
    assert expected in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = with_change(["workload", "phases", 0, "rates"], {"feed": -1, "post": -2})
    data["faults"][0]["target"] = "api-7"
    with pytest.raises(ScenarioError) as err:
        load_file(write(tmp_path, data))
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("s.yaml: ") for line in lines)


def test_duplicate_phase_names_and_a_workload_without_load_are_refused(tmp_path: Path) -> None:
    data = with_change(["workload", "phases"], [{"name": "a", "duration": 10, "rates": {}},
                                                {"name": "a", "duration": 10, "rates": {}}])
    with pytest.raises(ScenarioError, match="repeated: a"):
        load_file(write(tmp_path, data))
    data["workload"]["phases"][1]["name"] = "b"
    with pytest.raises(ScenarioError, match="there is no load"):
        load_file(write(tmp_path, data))


def test_files_that_are_not_scenarios(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="bad.yaml: not valid YAML"):
        load_file(bad)
    with pytest.raises(ScenarioError, match="a scenario is a mapping of fields, not list"):
        load_file(write(tmp_path, [1, 2]))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_file(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'; built in: .*smoke"):
        resolve("nope")


def test_overrides_stretch_time_scale_rates_and_revalidate(tmp_path: Path) -> None:
    sc = load_file(write(tmp_path, GOOD))
    longer = sc.with_overrides(duration_s=120, rate_scale=2.5, users=5000, seed=9)
    assert longer.workload.duration == 120 and longer.faults[0].at == 40 and longer.faults[0].heal_after == 20
    assert longer.workload.phases[0].rates.feed == 25 and longer.graph.users == 5000 and longer.seed == 9
    assert longer.graph.spec().users == 5000
    with pytest.raises(ScenarioError, match="--rate-scale: must be positive"):
        sc.with_overrides(rate_scale=0)
    with pytest.raises(ScenarioError, match="graph.users: Input should be greater than or equal to 100"):
        sc.with_overrides(users=5)
