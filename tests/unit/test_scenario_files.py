"""Scenario files: every built-in one is valid; bad ones are refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from workloads.scenario import ScenarioError, builtin, load_file, resolve, validate

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
    data = with_change(["slo"], {"feed_p99": "150ms", "error_rate": "1%", "freshness_median": 4})
    sc = load_file(write(tmp_path, data))
    assert sc.slo.feed_p99 == pytest.approx(0.15) and sc.slo.error_rate == pytest.approx(0.01)
    assert sc.workload.duration == 60 and sc.faults[0].at == 20 and sc.faults[0].target == "redis-primary-2"
    assert (sc.workload.canaries.every, sc.workload.canaries.followers) == (3.0, 3)   # the probe's defaults
    data["workload"]["canaries"] = {"every": "1500ms", "followers": 1}
    assert load_file(write(tmp_path, data)).workload.canaries.every == pytest.approx(1.5)


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["workload", "phases", 0, "rates", "post"], -1, "s.yaml: workload.phases[0].rates.post: Input should be greater"),
    (["workload", "phases", 0, "rates", "likes"], 3, "workload.phases[0].rates.likes: Extra inputs are not permitted"),
    (["workload", "phases", 0, "duration"], "soon", "workload.phases[0].duration: 'soon' is not a duration"),
    (["workload", "phases", 0, "ramp"], "2m", "workload.phases[0]: ramp (120 s) is longer than the phase (60 s)"),
    (["workload", "phases", 0, "duration"], "5s", "workload: the phases last 5 s in all; at least 10 s"),
    (["workload", "kind"], "marathon", "workload.kind: Input should be 'steady', 'worldcup' or 'celebrity'"),
    (["faults", 0, "target"], "redis-primary-9", "faults[0].target: 'redis-primary-9' is not something"),
    (["faults", 0, "action"], "kill-the-moon", "faults[0].action: unknown fault 'kill-the-moon' (`feedlab faults`"),
    (["faults", 0, "at"], "90s", "faults[0].at=90s: must fall within the load (0 .. 60 s)"),
    (["slo"], {"p99_feed": "200ms"}, "slo.p99_feed: Extra inputs are not permitted"),
    (["slo"], {"error_rate": "150%"}, "slo.error_rate: Input should be less than or equal to 1"),
    (["gates"], {"fed": {"steady": "p99 < 1s"}},
     "gates.fed.steady: unknown metric 'fed' (one of feed, ranked, walk, delta"),
    (["gates"], {"feed": {"later": "p99 < 1s"}}, "gates.feed.later: unknown window 'later'"),
    (["gates"], {"feed": {"steady": "p98 < 1s"}}, "feed.steady: 'p98' is not an aggregate of feed (one of p50"),
    (["gates"], {"feed": {"steady": "p99 < 200"}}, "feed.steady: 'p99 < 200': feed p99 is a duration; give a unit"),
    (["gates"], {"errors": {"run": ["rate < 1%", "rate < 150%"]}}, "errors.run[1]: 'rate < 150%': a share is at most"),
    (["gates"], {"kafka_lag": {"run": "max < 5s"}}, "kafka_lag max is a plain number; no unit"),
    (["gates"], {"feed": {"run": "p99 is fine"}}, "'p99 is fine' is not a gate expression (AGGREGATE OP VALUE"),
    (["gates"], {"hit_ratio": {"run": {"expr": "mean > 0.9", "abort_on_fail": True}}},
     "hit_ratio.run: abort_on_fail: hit_ratio is read from Prometheus after the load"),
    (["gates"], {"feed": {"phase:spike": "p99 < 1s"}}, "gates.feed.phase:spike: no workload phase named 'spike'"),
    (["checks"], {"generator": "report"}, "checks.generator: cannot be report-only"),
    (["checks"], {"latency": "report"}, "checks.latency: unknown check (one of generator"),
    (["graph"], {"size": "huge"}, "graph.size: Input should be 'small', 'default' or 'large'"),
    (["target_env"], {"PATH": "/tmp"}, "only FEED_* settings may be given; not PATH"),
    (["workload", "canaries"], {"every": "100ms"},
     "workload.canaries.every: Input should be greater than or equal to 0.5"),
    (["workload", "canaries"], {"followers": 0}, "workload.canaries.followers: Input should be greater than or equal"),
    (["workload", "canaries"], {"each": "1s"}, "workload.canaries.each: Extra inputs are not permitted"),
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


def test_gates_on_fault_windows_need_a_fault(tmp_path: Path) -> None:
    data = with_change(["gates"], {"feed": {"recovery": "p99 < 1s"}})
    del data["faults"]
    with pytest.raises(ScenarioError, match="gates.feed.recovery: the scenario schedules no fault"):
        load_file(write(tmp_path, data))


def test_gates_survive_overrides_and_name_what_they_judge(tmp_path: Path) -> None:
    data = with_change(["gates"], {"feed": {"steady": "p99 < 200ms", "fault": ["p99<5s", {"expr": "max < 1m",
                                                                                          "abort_on_fail": True}]},
                                   "errors": {"steady": "rate < 0.01%"}, "freshness": {"phase:steady": "median < 5s"}})
    sc = load_file(write(tmp_path, data))   # (the file's keys come out sorted)
    assert [g.name for g in sc.gates] == ["errors[steady] rate < 0.01%", "feed[fault] p99<5s", "feed[fault] max < 1m",
                                          "feed[steady] p99 < 200ms", "freshness[phase:steady] median < 5s"]
    assert [g.threshold for g in sc.gates] == pytest.approx([0.0001, 5.0, 60.0, 0.2, 5.0])
    assert [g.abort_on_fail for g in sc.gates] == [False, False, True, False, False]
    assert sc.with_overrides(duration_s=120).gates == sc.gates


def test_the_check_names_are_the_harness_checks() -> None:
    from harness.checks import CHECKS, REPORT_BY_DEFAULT
    from workloads.scenario import CHECK_NAMES
    from workloads.scenario import REPORT_BY_DEFAULT as REPORT_BY_DEFAULT_NAMES

    assert set(CHECK_NAMES) == set(CHECKS)
    assert set(REPORT_BY_DEFAULT_NAMES) == REPORT_BY_DEFAULT


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


def test_the_readme_example_scenario_is_valid() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = next(block for block in readme.split("```yaml\n")[1:] if block.startswith("name: worldcup-failover"))
    sc = validate(yaml.safe_load(example.split("```")[0]), "README.md")
    assert {g.window for g in sc.gates} >= {"steady", "fault", "recovery", "phase:spike", "phase:recovery"}
