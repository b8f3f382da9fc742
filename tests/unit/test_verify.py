"""`feedlab verify`'s experiments and its verdict, without a stack: every row of the design's
failure-mode table is an experiment or says what it waits for; the exit code is the table's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.checks.result import CheckResult, Verdict
from harness.verify import (
    DESIGN_ROWS,
    VERIFY,
    WAITING,
    Row,
    chosen_experiments,
    exit_code,
    row_evidence,
    table_order,
    write_verify,
)
from workloads.scenario import ScenarioError, experiments, load_file, validate

pytestmark = pytest.mark.unit


def test_every_row_of_the_design_s_table_is_an_experiment_or_waits_for_something() -> None:
    rows = {load_file(p).experiment.row for p in experiments().values()}  # type: ignore[union-attr]
    assert set(DESIGN_ROWS) <= rows | set(WAITING), set(DESIGN_ROWS) - rows - set(WAITING)
    assert not rows & set(WAITING)


@pytest.mark.parametrize("name", sorted(experiments()))
def test_each_experiment_is_valid_judged_and_faulted(name: str) -> None:
    sc = load_file(experiments()[name])
    assert sc.experiment is not None and sc.name == name
    assert sc.faults or sc.workload.kind.value == "worldcup", "an experiment breaks something"


def test_an_experiment_names_only_checks_that_exist() -> None:
    data = yaml.safe_load(experiments()["kafka-pause"].read_text())
    data["experiment"]["judged_by"] = ["nothing_lost", "vibes"]
    with pytest.raises(ScenarioError, match=r"experiment.judged_by: unknown check\(s\) vibes"):
        validate(data, "x.yaml")


def test_the_exit_code_is_the_table_s() -> None:
    def rows(*verdicts: str) -> list[Row]:
        return [Row(f"row {i}", f"e{i}", v) for i, v in enumerate(verdicts)]

    assert exit_code(rows("pass", "pass", "waits")) == 0
    assert exit_code(rows("pass", "fail", "invalid")) == 1
    assert exit_code(rows("pass", "unknown")) == 2 and exit_code(rows("pass", "invalid")) == 2
    assert exit_code(rows("pass", "error")) == 2
    assert exit_code(rows("waits")) == 2   # nothing tried proves nothing


def test_a_row_s_evidence_leads_with_its_own_checks_then_names_every_other_gating_miss() -> None:
    """(The row failing with its defect on the real stack: tests/campaign/test_checker_power.py runs
    `disable-breaker-fallback`, and tests/campaign/test_verify.py the clean row end to end.)"""
    sc = load_file(experiments()["ranking-degradation"])
    assert sc.experiment is not None and sc.experiment.judged_by == ["ranking_fallback"]
    results = [CheckResult("nothing_lost", Verdict.PASS, "0 lost"),
               CheckResult("errors", Verdict.FAIL, "worst fault 40 error-seconds (bound <= 30)"),
               CheckResult("sse", Verdict.FAIL, "80 % delivered", gating=False),
               CheckResult("ranking_fallback", Verdict.FAIL, "12 ranked reads failed (HTTP [503])"),
               CheckResult("pagination", Verdict.UNKNOWN, "no walk")]
    assert row_evidence(sc, results) == ["ranking_fallback: FAIL: 12 ranked reads failed (HTTP [503])",
                                      "errors: FAIL: worst fault 40 error-seconds (bound <= 30)",
                                      "pagination: UNKNOWN: no walk"]


def test_verify_s_defects_reach_every_experiment_s_target_and_its_table(tmp_path: Path) -> None:
    defects = {"FEED_DEFECT_DISABLE_BREAKER_FALLBACK": "1"}
    chosen = chosen_experiments([], defects)
    assert sorted(sc.name for sc in chosen) == sorted(experiments())
    assert [table_order(sc.experiment.row) for sc in chosen] == sorted(  # type: ignore[union-attr]
        table_order(sc.experiment.row) for sc in chosen)  # type: ignore[union-attr]
    assert all(defects.items() <= sc.target_env.items() for sc in chosen)
    (only,) = chosen_experiments(["ranking-degradation"], defects)
    assert only.name == "ranking-degradation" and defects.items() <= only.target_env.items()
    write_verify(tmp_path, [Row("Ranking model degradation", "ranking-degradation", "fail")], defects)
    table = json.loads((tmp_path / VERIFY).read_text())
    assert table["defects"] == defects and table["exit_code"] == 1


def test_the_table_keeps_the_design_s_order_then_the_extra_rows() -> None:
    assert [table_order(r) for r in DESIGN_ROWS] == list(range(len(DESIGN_ROWS)))
    assert table_order("Kafka broker pause") == len(DESIGN_ROWS)


def test_only_takes_names_repeated_or_with_commas_and_names_the_unknown_ones() -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    out = CliRunner().invoke(app, ["verify", "--only", "kafka-pause, shard-lost", "--only", "nope,unfollow", "--only",
                                   "vibes"], env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert "--only nope, vibes: no such experiment" in out.output
