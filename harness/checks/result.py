"""The outcome of one check: three-valued, with a line for people and figures for machines.

Jepsen's lesson: a check that could not decide says so (`unknown`) instead of guessing. A
timed-out write, a user whose final read stopped early, a checker that crashed: all give
`unknown`, which fails a CI gate (exit code 2) without claiming the target is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

EXAMPLES_MAX = 20  # evidence lists are capped: enough to debug, small enough to read


class Verdict(StrEnum):
    """A `str` enum: compares and serialises as its value."""

    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckResult:
    """A check's verdict, or a gate's (kind "gate": one threshold of the scenario's `gates`)."""

    name: str
    verdict: Verdict
    summary: str                      # one line: the key figure and its bound
    evidence: dict[str, Any] = field(default_factory=dict)
    kind: str = "check"               # "check" | "gate"
    gating: bool = True               # False: shown, not judged (scenario `checks: {name: report}`)
    invalidates_run: bool = False     # a fail means the measurement itself cannot be trusted


def invalid(results: Iterable[CheckResult]) -> bool:
    """The run measured the generator, not the target: no verdict of it can pass."""
    return any(r.invalidates_run and r.verdict is Verdict.FAIL for r in results)


def overall(results: Iterable[CheckResult]) -> Verdict:
    """Among the gating results: any fail fails the run; otherwise any unknown makes it unknown;
    otherwise pass."""
    verdicts = {r.verdict for r in results if r.gating}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.UNKNOWN in verdicts:
        return Verdict.UNKNOWN
    return Verdict.PASS


def exit_code(results: Iterable[CheckResult]) -> int:
    """0 pass, 1 a check or gate failed, 2 undecided, or an invalid run (whatever else said)."""
    results = list(results)
    if invalid(results):
        return 2
    return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.UNKNOWN: 2}[overall(results)]
