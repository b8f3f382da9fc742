"""Scenarios: what a campaign runs (graph, load, faults, gates), as validated data.

A scenario is checked completely before any process starts; errors name the field.
(Scenario files in YAML come with the campaigns issue; for now the built-in ones live here.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.load import LoadShape
from workloads.graph import GraphSize

FAULT_KINDS = ("kill-redis-primary",)


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class FaultSpec:
    kind: str
    at_s: float                 # seconds after the load starts
    heal_after_s: float         # seconds after invoke returned
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    description: str
    graph: GraphSize
    seed: int
    load: LoadShape
    faults: tuple[FaultSpec, ...] = ()
    settle_deadline_s: float = 90.0
    gates: dict[str, float] = field(default_factory=dict)
    target_env: dict[str, str] = field(default_factory=dict)   # target settings, defect switches

    def validate(self) -> Scenario:
        problems = []
        if self.load.duration_s < 10:
            problems.append(f"load.duration_s={self.load.duration_s}: at least 10 s")
        if self.load.users < 1 or self.load.rate_per_user <= 0:
            problems.append("load.users and load.rate_per_user must be positive")
        for i, f in enumerate(self.faults):
            if f.kind not in FAULT_KINDS:
                problems.append(f"faults[{i}].kind={f.kind!r}: unknown (known: {', '.join(FAULT_KINDS)})")
            if not 0 <= f.at_s < self.load.duration_s:
                problems.append(f"faults[{i}].at_s={f.at_s}: must fall within the load (0..{self.load.duration_s})")
            if f.heal_after_s < 0:
                problems.append(f"faults[{i}].heal_after_s={f.heal_after_s}: must be >= 0")
        if problems:
            raise ScenarioError(f"scenario {self.name!r}: " + "; ".join(problems))
        return self

    def with_overrides(self, *, duration_s: int | None = None, seed: int | None = None,
                       target_env: dict[str, str] | None = None) -> Scenario:
        s = self
        if duration_s is not None:
            scale = duration_s / self.load.duration_s
            s = replace(s, load=replace(s.load, duration_s=duration_s),
                        faults=tuple(replace(f, at_s=f.at_s * scale, heal_after_s=f.heal_after_s * scale)
                                     for f in s.faults))
        if seed is not None:
            s = replace(s, seed=seed)
        if target_env:
            s = replace(s, target_env={**s.target_env, **target_env})
        return s.validate()


SCENARIOS: dict[str, Scenario] = {
    "smoke": Scenario(
        name="smoke",
        description="2 minutes of steady load on the small graph; a Redis primary is killed mid-run",
        graph=GraphSize.SMALL, seed=1,
        load=LoadShape(users=60, rate_per_user=1.0, duration_s=120),
        faults=(FaultSpec(kind="kill-redis-primary", at_s=45, heal_after_s=20, params={"primary_index": 1}),),
    ),
    "steady-small": Scenario(
        name="steady-small",
        description="steady load on the small graph, no faults (for tests and quick checks)",
        graph=GraphSize.SMALL, seed=1,
        load=LoadShape(users=40, rate_per_user=1.0, duration_s=30),
    ),
}


def get(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name].validate()
