"""`feedlab verify` end to end on one row of the design's table: the clean target passes it, with
the evidence named. (The whole table takes about 30 minutes on this machine.) The row's defect,
`disable-breaker-fallback`, fails its checker on the real stack in
tests/campaign/test_checker_power.py, through the same `--defect` parsing `verify` uses; a failing
row's verdict, evidence and exit code are tests/unit/test_verify.py's. Each other row's checker is
proven on the real stack by test_checker_power.py and the stack tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.verify import VERIFY
from tests.campaign.conftest import feedlab

pytestmark = pytest.mark.campaign


def test_a_row_of_the_design_s_table_passes_on_the_clean_target(tmp_path: Path) -> None:
    out = tmp_path / "clean"
    run = feedlab("verify", "--only", "ranking-degradation", "--base-port", "22000", "--out", str(out))
    output = run.stdout + run.stderr
    (row,) = json.loads((out / VERIFY).read_text())["rows"]
    assert run.returncode == 0 and row["verdict"] == "pass", output[-3000:]
    assert row["row"] == "Ranking model degradation" and "Ranking model degradation" in output
    assert row["evidence"][0].startswith("ranking_fallback: PASS: ") and "answered while the ranker failed" in \
        row["evidence"][0]

