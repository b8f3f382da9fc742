"""A run's verdict, recomputed from its directory alone (`feedlab report`, `feedlab gate`):
every check, every gate of its manifest and, if it was compared with a baseline, that
comparison's stored verdict (the baseline may be gone). It combines `gates` and `compare`, and
neither imports it: the comparison reads figures through `gates`, so `gates` cannot reach back
into `compare` without a cycle."""

from __future__ import annotations

from harness import compare
from harness.checks import run_all_checks
from harness.checks.result import CheckResult
from harness.gates import judge_all
from harness.rundata import RunData


def judge_run(run: RunData) -> list[CheckResult]:
    """What decides the run's exit code: its checks, its gates, its stored comparison."""
    checks = run_all_checks(run)
    saved = compare.load(run.run_dir)
    return checks + judge_all(run, checks) + ([compare.stored_result(saved)] if saved else [])
