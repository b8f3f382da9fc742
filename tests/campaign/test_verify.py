"""`feedlab verify` end to end on one row of the design's table: the clean target passes it, and
the defect that row exists for fails it with the evidence named. (The whole table takes about
35 minutes on this machine; each other row's checker is proven on the real stack by
tests/campaign/test_checker_power.py and the stack tests.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.verify import VERIFY
from tests.campaign.conftest import feedlab

pytestmark = pytest.mark.campaign


def verify(out: Path, *args: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    run = feedlab("verify", "--only", "ranking-degradation", "--base-port", "22000", "--out", str(out), *args)
    table = json.loads((out / VERIFY).read_text())
    return run.returncode, run.stdout + run.stderr, table


def test_a_row_of_the_design_s_table_passes_on_the_clean_target_and_fails_with_its_defect(tmp_path: Path) -> None:
    code, output, table = verify(tmp_path / "clean")
    (row,) = table["rows"]
    assert code == 0 and row["verdict"] == "pass", output[-3000:]
    assert row["row"] == "Ranking model degradation" and "Ranking model degradation" in output
    assert row["evidence"][0].startswith("ranking_fallback: PASS: ") and "answered while the ranker failed" in \
        row["evidence"][0]

    code, output, table = verify(tmp_path / "defect", "--defect", "disable-breaker-fallback")
    (row,) = table["rows"]
    if row["verdict"] == "invalid":   # the machine, twice: nothing was measured (said, not hidden)
        pytest.fail(f"both runs of the row were invalid: {row['evidence']}")
    assert code == 1 and row["verdict"] == "fail", output[-3000:]
    assert row["evidence"][0].startswith("ranking_fallback: FAIL: ") and "failed (HTTP [503]" in row["evidence"][0]
    assert table["defects"] == {"FEED_DEFECT_DISABLE_BREAKER_FALLBACK": "1"}
