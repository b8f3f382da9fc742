"""`feedlab verify`: every failure mode of the design's table (§10) as an experiment.

Each experiment (workloads/experiments/*.yaml) is a scenario with an `experiment:` block: the
row it tries, what the design says should happen, and the checks whose evidence the table
shows. It runs as any campaign does (its own stack, the default mix, its faults, every check and
gate), into one directory per experiment under the verify directory; its verdict is the run's.
A run made invalid by the machine (the generator saturated, CPU stolen) measured nothing and is
run once more, as the test suite does; its second verdict stands. So is a run left unknown
because the target was not in steady state before its first fault (Chaos Toolkit stops an
experiment there): its faults were not tried on a steady target. The first attempt's verdict
and why stay in the row's evidence, and its run directory is kept. Rows the reference stack
cannot try yet are listed as waiting, with what they wait for; they do not decide the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.campaign import RunContext, run_campaign
from harness.checks import CheckResult, Verdict, invalid, overall
from harness.checks.steady_state import unsteady_before
from harness.runtime.process import ComponentError
from harness.topology import Topology
from records import write_json
from workloads.scenario import Scenario, experiments, load_file

VERIFY = "verify.json"
# the design's table, in its order; the extra experiments (faults of every component) follow
DESIGN_ROWS = (
    "Timeline cache node failure", "Fan-out backlog after worker crash", "Duplicate tweet from retry",
    "User follows celebrity; backfill delay", "Celebrity tweet during live event",
    "Cross-region timeline inconsistency", "Tweet deletion lag in timelines", "User unfollows an account",
    "Counter divergence (like counts)", "Ranking model degradation",
)


def table_order(row: str) -> int:
    return DESIGN_ROWS.index(row) if row in DESIGN_ROWS else len(DESIGN_ROWS)
# §10 rows (and extra experiments) that cannot be tried on this topology yet
WAITING = {
    "Cross-region timeline inconsistency": "a multi-region topology: the reference stack is one region",
}


def chosen_experiments(names: list[str], target_env: dict[str, str]) -> list[Scenario]:
    """The experiments named (every one when none is), each run with `target_env` (the target's
    defect switches), in the table's order. Names are checked by the caller."""
    known = experiments()
    chosen = [load_file(known[n]).with_overrides(target_env=target_env) for n in (names or list(known))]
    return sorted(chosen, key=lambda sc: table_order(sc.experiment.row if sc.experiment else ""))


@dataclass
class Row:
    row: str
    experiment: str
    verdict: str                  # pass | fail | unknown | invalid | error | waits
    evidence: list[str] = field(default_factory=list)
    run_dir: str | None = None
    attempts: int = 0
    seconds: float = 0.0


def row_evidence(sc: Scenario, results: list[CheckResult]) -> list[str]:
    assert sc.experiment is not None
    named = [f"{r.name}: {r.verdict.value.upper()}: {r.summary}" for r in results if r.name in sc.experiment.judged_by]
    others = [f"{r.name}: {r.verdict.value.upper()}: {r.summary}" for r in results
              if r.gating and r.verdict is not Verdict.PASS and r.name not in sc.experiment.judged_by]
    return named + others


def run_experiment(sc: Scenario, run_dir: Path, base_port: int, say: Callable[[str], None],
                   judge: Callable[[Path], list[CheckResult]], runtime: str = "local") -> Row:
    """One experiment, run again once if it tried nothing (`untried`)."""
    assert sc.experiment is not None
    t0 = time.monotonic()
    row = Row(sc.experiment.row, sc.name, "error")
    earlier: list[str] = []
    for attempt in (1, 2):
        target = run_dir if attempt == 1 else run_dir.with_name(f"{run_dir.name}-again")
        row.attempts, row.run_dir = attempt, str(target)
        ctx = RunContext(scenario=sc, topo=Topology(base_port=base_port), run_dir=target,
                         say=lambda m: say(f"[{sc.name}] {m}"), runtime=runtime)
        try:
            run_campaign(ctx)
        except ComponentError as exc:
            row.verdict, row.evidence = "error", [*earlier, str(exc)]
            break
        except Exception as exc:  # noqa: BLE001 - the row says what went wrong; the others still run
            row.verdict, row.evidence = "error", [*earlier, f"{type(exc).__name__}: {exc}"]
            break
        results = judge(target)
        row.evidence = earlier + row_evidence(sc, results)
        row.verdict = "invalid" if invalid(results) else overall(results).value
        why = untried(results)
        if why is not None and attempt == 1:
            say(f"[{sc.name}] {why}: once more")
            earlier = [f"attempt 1 ({target.name}): {row.verdict.upper()}: {why}; tried again"]
            continue
        break
    row.seconds = round(time.monotonic() - t0, 1)
    return row


def untried(results: list[CheckResult]) -> str | None:
    """Why a run tried nothing of its experiment, if it did not: the machine made it invalid, or
    the target was off its steady state before the first fault (and nothing failed)."""
    if invalid(results):
        return "the run is invalid (the machine, not the target, was measured)"
    if overall(results) is Verdict.UNKNOWN and unsteady_before(results):
        return "the target was not in steady state before the first fault"
    return None


def waiting_rows() -> list[Row]:
    return [Row(row, "-", "waits", [f"waits for {why}"]) for row, why in WAITING.items()]


def exit_code(rows: list[Row]) -> int:
    """0 every row tried passed; 1 a row failed; 2 a row undecided, invalid or in error."""
    tried = [r.verdict for r in rows if r.verdict != "waits"]
    if "fail" in tried:
        return 1
    return 0 if all(v == "pass" for v in tried) and tried else 2


def write_verify(out_dir: Path, rows: list[Row], defects: dict[str, str]) -> Path:
    path = out_dir / VERIFY
    write_json(path, {"t": time.time(), "defects": defects, "exit_code": exit_code(rows),
                      "rows": [asdict(r) for r in rows]})
    return path
