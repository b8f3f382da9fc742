"""A run against a baseline run: the same figures read from both, each change judged.

A figure is metric.aggregate.window (workloads.gate_spec.Figure), read exactly as a gate reads
it. Compared are a standard set (every operation's p99 in steady state, the feed's in the fault
and recovery windows and in each workload phase, error rate, freshness, lag, hit ratio) plus
the figure of every gate of either run.

A figure regressed when it got worse by more than its tolerance: the scenario's relative
`baseline.tolerance` (10 % unless set, per figure in `baseline.figures`) of the baseline's value,
and never less than a noise floor per unit (5 ms, 0.1 percentage point, 10 messages), so a
0.2 s freshness going to 0.25 s does not fail a build. A figure only one run has is listed, not
judged. If either run is invalid (its generator could not keep up) the comparison is undecided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.checks.result import CheckResult, Verdict
from harness.gates import gate_specs, observe, show
from harness.rundata import RunData, read_json
from records import write_json
from workloads.gate_spec import CLIENT_OPS, PHASE_PREFIX, Figure, Unit, parse_figure

COMPARISON = "comparison.json"
NOISE_FLOOR = {Unit.DURATION: 0.005, Unit.SHARE: 0.001, Unit.NUMBER: 10.0}
DEFAULT_TOLERANCE = 0.10

_STANDARD = [
    "feed.p50.steady", "feed.p99.steady", "feed.p99.fault", "feed.p99.recovery",
    *(f"{op}.p99.steady" for op in CLIENT_OPS if op != "feed"),
    "errors.rate.steady", "errors.rate.run", "freshness.median.steady", "freshness.p99.steady",
    "kafka_lag.max.run", "fanout_lag.max.run", "hit_ratio.mean.steady", "degraded.max.run",
]


@dataclass(frozen=True)
class Delta:
    figure: str
    unit: str
    baseline: float | None
    candidate: float | None
    change_pct: float | None     # relative to the baseline, signed (+ is up, whichever way is better)
    allowed: float | None        # how much worse it may get, in the figure's unit
    verdict: str                 # regressed | improved | same | only in baseline | only in this run

    def line(self) -> str:
        unit = Unit(self.unit)
        pct = "" if self.change_pct is None or math.isinf(self.change_pct) else f" {self.change_pct:+.0%}"
        return f"{self.figure} {show(self.baseline, unit)} → {show(self.candidate, unit)}{pct}"


def figures_of(run: RunData, extra: list[Figure]) -> dict[str, tuple[Figure, float | None]]:
    phases = [f"{PHASE_PREFIX}{p['name']}" for p in run.manifest.phases]
    wanted = [parse_figure(n) for n in _STANDARD] + [Figure("feed", "p99", w) for w in phases] + extra
    out: dict[str, tuple[Figure, float | None]] = {}
    for figure in wanted:
        if figure.name not in out:
            out[figure.name] = (figure, observe(run, figure)[0])
    return out


def _judge(figure: Figure, base: float | None, cand: float | None, tolerance: float) -> Delta:
    unit = figure.unit.value
    if base is None or cand is None:
        verdict = "only in baseline" if cand is None else "only in this run"
        return Delta(figure.name, unit, base, cand, None, None, verdict)
    allowed = max(tolerance * abs(base), NOISE_FLOOR[figure.unit]) if math.isfinite(base) else math.inf
    worse = (base - cand) if figure.higher_is_better else (cand - base)
    if math.isinf(base) and math.isinf(cand):
        worse = 0.0
    change = (cand - base) / abs(base) if base and math.isfinite(base) else None
    verdict = "regressed" if worse > allowed else "improved" if worse < -allowed else "same"
    return Delta(figure.name, unit, base, cand, change, allowed, verdict)


def compare(baseline: RunData, candidate: RunData, tolerances: dict[str, Any] | None = None) -> list[Delta]:
    tol = tolerances or {}
    default = float(tol.get("tolerance", DEFAULT_TOLERANCE))
    per_figure = {k: float(v) for k, v in (tol.get("figures") or {}).items()}
    gates = [g.figure for g in gate_specs(baseline) + gate_specs(candidate)]
    base = figures_of(baseline, gates)
    cand = figures_of(candidate, gates)
    deltas = []
    for name, (figure, value) in cand.items():
        before = base.get(name, (figure, None))[1]
        if before is None and value is None:
            continue
        deltas.append(_judge(figure, before, value, per_figure.get(name, default)))
    return deltas


def result(deltas: list[Delta], baseline_id: str, *, invalid_run: str | None = None) -> CheckResult:
    """The comparison as one verdict line (kind "baseline"): fail when a figure regressed."""
    regressed = [d for d in deltas if d.verdict == "regressed"]
    improved = [d for d in deltas if d.verdict == "improved"]
    judged = [d for d in deltas if d.verdict in ("regressed", "improved", "same")]
    evidence = {"baseline": baseline_id, "regressed": [asdict(d) for d in regressed],
                "improved": [asdict(d) for d in improved], "figures": len(judged)}
    name = f"baseline {baseline_id}"
    if invalid_run:
        return CheckResult(name, Verdict.UNKNOWN, f"not compared: {invalid_run}", evidence, kind="baseline")
    if not judged:
        return CheckResult(name, Verdict.UNKNOWN, "no figure measured in both runs", evidence, kind="baseline")
    if regressed:
        summary = (f"{len(regressed)} of {len(judged)} figures regressed beyond tolerance: "
                   + "; ".join(d.line() for d in regressed[:5]) + ("; …" if len(regressed) > 5 else ""))
        return CheckResult(name, Verdict.FAIL, summary, evidence, kind="baseline")
    return CheckResult(name, Verdict.PASS, f"{len(judged)} figures within tolerance ({len(improved)} improved)",
                       evidence, kind="baseline")


def _strict(record: dict[str, Any]) -> dict[str, Any]:
    """Infinities as "inf" (strict JSON; float("inf") reads them back)."""
    return {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def shown(value: float | str | None, unit: str) -> str:
    """A stored figure for people (infinities come back as text)."""
    return show(float(value) if isinstance(value, str) else value, Unit(unit))


def save(run_dir: Path, baseline: RunData, deltas: list[Delta], verdict: CheckResult,
         tolerances: dict[str, Any] | None) -> dict[str, Any]:
    """Write comparison.json into `run_dir`; returns what it wrote."""
    saved = {
        "baseline_run": baseline.manifest.run_id or baseline.run_dir.name,
        "baseline_dir": str(baseline.run_dir.resolve()),
        "baseline_scenario": baseline.manifest.scenario,
        "tolerances": tolerances or {"tolerance": DEFAULT_TOLERANCE, "figures": {}},
        "result": asdict(verdict) | {"evidence": {**verdict.evidence,
                                                  "regressed": [_strict(d) for d in verdict.evidence["regressed"]],
                                                  "improved": [_strict(d) for d in verdict.evidence["improved"]]}},
        "deltas": [_strict(asdict(d)) for d in deltas],
    }
    write_json(run_dir / COMPARISON, saved)
    return saved


def load(run_dir: Path) -> dict[str, Any] | None:
    """The comparison stored in a run directory, if it was compared."""
    path = run_dir / COMPARISON
    return read_json(path) if path.is_file() else None


def stored_result(saved: dict[str, Any]) -> CheckResult:
    r = saved["result"]
    return CheckResult(r["name"], Verdict(r["verdict"]), r["summary"], r.get("evidence") or {}, kind="baseline")
