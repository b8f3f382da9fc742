"""The heal sweep (chaos/sweep.py): after the last heal, nothing a fault can break was found
broken. A run whose sweep found a leftover (a toxic, a paused or dead process, a cluster not
whole, a chaos setting still on), repaired or not, fails: a fault outlived its window, so the
run measured it where it did not mean to. A run with faults and no sweep recorded is unknown;
one without faults has nothing to sweep.

It also fails a run in which a fault could not be invoked or healed (the schedule's errors,
manifest `chaos_errors`, and the fault windows' `invoke-failed` / `heal-failed` events): such a
run did not test what it meant to, or left its fault to the sweep."""

from __future__ import annotations

from harness.checks.result import CheckResult, Verdict
from harness.checks.served import not_exercised
from harness.rundata import RunData

NAME = "sweep"


def check(run: RunData) -> CheckResult:
    failed = [f"{w.name} @ {w.target}: {e['what']}: {e.get('error')}" for w in run.faults for e in w.events
              if e.get("what") in ("invoke-failed", "heal-failed")]
    errors = list(run.manifest.chaos_errors)
    if failed or errors:
        return CheckResult(NAME, Verdict.FAIL, "a fault could not be invoked or healed: "
                           + "; ".join(failed or errors), {"fault_events": failed, "chaos_errors": errors,
                                                           "sweep": run.sweep})
    if run.sweep is None:
        if not run.faults:
            return not_exercised(NAME, "no fault in this run")
        return CheckResult(NAME, Verdict.UNKNOWN, "no heal sweep recorded: whether every fault healed is unknown",
                           {})
    findings = run.sweep.get("findings") or []
    looked = "; ".join(run.sweep.get("looked_at") or [])
    if not findings:
        return CheckResult(NAME, Verdict.PASS, f"nothing left broken after the heals ({looked})", run.sweep)
    described = "; ".join(f"{f['broken']} ({'repaired' if f['repaired'] else 'not repaired: ' + str(f['error'])})"
                          for f in findings)
    return CheckResult(NAME, Verdict.FAIL, f"left broken after the heals: {described}", run.sweep)
