"""Checkers: pure functions from a recorded run to a three-valued verdict.

Each module holds one check, `check(run) -> CheckResult`, and documents what it counts as an
anomaly. `run_all_checks` runs them all; a checker that raises gives `unknown` with its error,
so one broken checker never hides the others or crashes the report.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace

from harness.checks import (
    availability,
    backfill,
    celebrity_merge,
    deletion,
    duplicates,
    engagement,
    errors,
    fanout_stall,
    feed_latency,
    freshness,
    generator,
    machine,
    nothing_lost,
    pagination,
    ranking,
    recovery,
    sse,
    steady_state,
    sweep,
    unfollow,
)
from harness.checks.result import CheckResult, Verdict, exit_code, invalid, overall
from harness.rundata import RunData

Check = Callable[[RunData], CheckResult]

CHECKS: Mapping[str, Check] = {
    generator.NAME: generator.check,        # first: a saturated generator invalidates the rest
    machine.NAME: machine.check,            # likewise a machine whose CPU was stolen
    sweep.NAME: sweep.check,                # a fault left behind spoils what was measured
    steady_state.NAME: steady_state.check,  # a target broken before the faults says nothing of them
    feed_latency.NAME: feed_latency.check,
    freshness.NAME: freshness.check,
    errors.NAME: errors.check,
    availability.NAME: availability.check,
    recovery.NAME: recovery.check,
    fanout_stall.NAME: fanout_stall.check,
    nothing_lost.NAME: nothing_lost.check,
    deletion.NAME: deletion.check,
    unfollow.NAME: unfollow.check,
    duplicates.NAME: duplicates.check,
    engagement.NAME: engagement.check,
    pagination.NAME: pagination.check,
    backfill.NAME: backfill.check,
    celebrity_merge.NAME: celebrity_merge.check,
    ranking.NAME: ranking.check,
    sse.NAME: sse.check,
}
# Checks that only report unless the scenario says `gate` (workloads.scenario.REPORT_BY_DEFAULT)
REPORT_BY_DEFAULT = frozenset({sse.NAME})
# Checks that cannot judge without the target's metrics: shown, not judged, when a run never
# had them (an external target without --metrics-url), rather than making every such run unknown.
NEED_TARGET_METRICS = frozenset({recovery.NAME})

__all__ = ["CHECKS", "Check", "CheckResult", "Verdict", "exit_code", "invalid", "overall", "run_all_checks"]


def run_all_checks(run: RunData, checks: Mapping[str, Check] = CHECKS) -> list[CheckResult]:
    """Every check; those the scenario made report-only (manifest "checks"), and those that
    report by default unless it made them gate, do not gate."""
    uses = run.manifest.checks
    report_only = {name for name in checks if uses.get(name, "report" if name in REPORT_BY_DEFAULT else "gate")
                   == "report"}
    results = []
    for name, check in checks.items():
        try:
            result = check(run)
        except Exception as exc:  # noqa: BLE001 - a crashed checker is a verdict, not a crash
            result = CheckResult(
                name, Verdict.UNKNOWN, f"checker crashed: {type(exc).__name__}: {exc}",
                {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)},
            )
        if run.manifest.metrics_absent and name in NEED_TARGET_METRICS and result.verdict is Verdict.UNKNOWN:
            result = replace(result, gating=False)
        results.append(replace(result, gating=False) if name in report_only and not result.invalidates_run
                       else result)
    return results
