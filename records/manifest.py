"""manifest.json: what a run was and how it went, as one typed record.

The campaign writes it as the run goes (each step sets its fields and the whole file is
replaced), the checks, gates and reports read it. A key this version does not know (written by
another version of feedlab) is kept in `extra` and written back, never dropped; a field a run
never reached keeps its default (None: not known).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Why an external target's metrics were not read (harness/runtime/external.py): the gates and
# checks that need them are shown unknown and not judged.
NO_METRICS_SOURCE = "not read: the target runs outside feedlab and no --metrics-url was given"
NO_METRICS_SERIES = ("not read: the Prometheus given (--metrics-url) has none of the series feedlab reads "
                     "(the reference target's, harness/target_metrics.py)")


@dataclass(slots=True)
class Manifest:
    run_id: str = ""
    scenario: str = ""
    git_sha: str | None = None
    seed: int | None = None
    cpu_count: int | None = None            # of the machine the run ran on
    interpreter_ms: float | None = None     # fixed Python work timed before the start (harness/machine_speed.py)
    started_t: float | None = None
    ended_t: float | None = None
    partial: bool = False                   # the run was cut before its read-back ended
    timeline_cap: int = 800                 # the target's timeline length (nothing_lost respects it)
    load_start_t: float | None = None
    load_end_t: float | None = None
    settle_end_t: float | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)   # [{name, start_t, end_t}]
    # the scenario as run (config.scenario), the topology and the load processes
    config: dict[str, Any] = field(default_factory=dict)
    slo: dict[str, Any] | None = None       # the checks' bounds (harness.rundata.Slo), by name
    # the gates (workloads.gate_spec.GateSpec.to_json); a dict of bounds in runs before per-window gates
    gates: list[dict[str, Any]] | dict[str, Any] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)   # check -> "gate" | "report", as the scenario said
    baseline_tolerances: dict[str, Any] | None = None
    judged_by: str | None = None            # the scenario whose gates re-judged it (`feedlab report --scenario`)
    graph_hash: str | None = None
    graph: dict[str, Any] = field(default_factory=dict)    # users, follows, celebrities, thresholds
    graph_load_s: float | None = None
    settle: dict[str, Any] | None = None    # drained, lag, seconds
    final_reads: int | None = None          # users read back
    final_reads_max_timelines: int | None = None   # a sample of followers' timelines on a large graph
    aborted: dict[str, Any] | None = None   # the gate that stopped the load (--abort-on-fail)
    target_metrics_error: str | None = None   # why Prometheus could not be read
    runtime: str = "local"                  # "local": the harness started the target; "external": --target
    target: dict[str, Any] | None = None    # an external target: url, token source, metrics URL (no secret)
    api_seeding: dict[str, Any] | None = None   # an external target's graph through its API: counts, seconds
    chaos_errors: list[str] = field(default_factory=list)   # faults that could not be invoked or healed
    extra: dict[str, Any] = field(default_factory=dict)     # keys this version does not know

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {f.name for f in fields(cls)} - {"extra"}
        given = {k: v for k, v in data.items() if k in known and v is not None}
        return cls(**given, extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {**out.pop("extra"), **out}

    @property
    def metrics_absent(self) -> bool:
        """The target's metrics were never available to this run (not: Prometheus failed)."""
        return self.target_metrics_error in (NO_METRICS_SOURCE, NO_METRICS_SERIES)

    def set(self, **changes: Any) -> None:
        """Set fields by name; an unknown name is a programming error, not a new key."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)} - {"extra"})
        if unknown:
            raise AttributeError(f"Manifest has no field {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)
