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
    name: str
    verdict: Verdict
    summary: str                      # one line: the key figure and its bound
    evidence: dict[str, Any] = field(default_factory=dict)


def overall(results: Iterable[CheckResult]) -> Verdict:
    """Any fail fails the run; otherwise any unknown makes it unknown; otherwise pass."""
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.UNKNOWN in verdicts:
        return Verdict.UNKNOWN
    return Verdict.PASS


def exit_code(results: Iterable[CheckResult]) -> int:
    return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.UNKNOWN: 2}[overall(results)]
