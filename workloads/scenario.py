"""Scenarios are data: a YAML file in `workloads/scenarios/` names the graph, the workload
phases (arrival rates per operation), the fault schedule, the gates and the settle time.

A scenario is validated completely before any process starts. Every problem is reported at
once, each naming the file, the field and what is wrong, e.g.

    worldcup.yaml: workload.phases[1].rates.post: Input should be greater than or equal to 0

Durations are written "90s", "2m", "500ms" or as plain seconds; shares as 0.01 or "1%".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from chaos.catalogue import CATALOGUE
from workloads.gate_spec import PHASE_PREFIX, GateSpec, parse_figure, parse_gates
from workloads.graph import GraphSize, GraphSpec

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
EXPERIMENT_DIR = Path(__file__).resolve().parent / "experiments"
MIN_LOAD_S = 10.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the file, each field and each problem."""


def parse_duration(value: Any) -> Any:
    """'90s' -> 90.0, '2m' -> 120.0, '250ms' -> 0.25, 12 -> 12.0; anything else is left for
    pydantic to reject with the field's name."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (examples: 90s, 2m, 500ms)")
        return float(m.group(1)) * _UNITS[m.group(2)]
    return value


def parse_share(value: Any) -> Any:
    """'1%' -> 0.01, 0.01 -> 0.01."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a share (examples: 0.01, 1%)") from None
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Share = Annotated[float, BeforeValidator(parse_share), Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Op(StrEnum):
    """What the workload does; each is one kind of arrival with its own rate."""

    FEED = "feed"                      # GET /v1/feed (and sometimes its second page)
    RANKED = "ranked"                  # GET /v1/feed?algorithm=ranked
    DEEP_FEED = "deep_feed"            # a walk through 5 pages of a feed, cursor by cursor
    DELTA = "delta"                    # GET /v1/feed/delta?since=
    PROFILE = "profile"                # GET /v1/users/{id}/tweets
    POST = "post"                      # POST /v1/tweets by a power-law-chosen user
    RETRY_POST = "retry_post"          # a post whose first attempt gets no answer, retried with its key
    DELETE = "delete"                  # DELETE /v1/tweets/{id} of a tweet followers have received
    CELEBRITY_POST = "celebrity_post"  # POST /v1/tweets by a pull-tier or throttled-band author
    LIKE = "like"                      # POST /v1/tweets/{id}/like of a tweet seen in a feed
    RETWEET = "retweet"                # POST /v1/tweets/{id}/retweet of a tweet seen in a feed
    UNRETWEET = "unretweet"            # DELETE /v1/tweets/{id}/retweet of a retweet this process made
    REPLY = "reply"                    # POST /v1/tweets replying to a tweet seen in a feed
    FOLLOW = "follow"                  # POST /v1/users/{id}/follow
    FOLLOW_LARGE = "follow_large"      # a follow of a throttled-band or pull-tier account, then its backfill watched
    UNFOLLOW = "unfollow"              # DELETE /v1/users/{id}/follow of an earlier follow
    RISING_FOLLOW = "rising_follow"    # a new follower of the rising account (graph.json "rising")
    RISING_POST = "rising_post"        # POST /v1/tweets by the rising account


class Rates(Strict):
    """Arrivals per second of each operation (open model: held whatever the response time)."""

    feed: NonNegativeFloat = 0.0
    ranked: NonNegativeFloat = 0.0
    deep_feed: NonNegativeFloat = 0.0
    delta: NonNegativeFloat = 0.0
    profile: NonNegativeFloat = 0.0
    post: NonNegativeFloat = 0.0
    retry_post: NonNegativeFloat = 0.0
    delete: NonNegativeFloat = 0.0
    celebrity_post: NonNegativeFloat = 0.0
    like: NonNegativeFloat = 0.0
    retweet: NonNegativeFloat = 0.0
    unretweet: NonNegativeFloat = 0.0
    reply: NonNegativeFloat = 0.0
    follow: NonNegativeFloat = 0.0
    follow_large: NonNegativeFloat = 0.0
    unfollow: NonNegativeFloat = 0.0
    rising_follow: NonNegativeFloat = 0.0
    rising_post: NonNegativeFloat = 0.0

    def total(self) -> float:
        return sum(self.as_dict().values())

    def as_dict(self) -> dict[str, float]:
        return {op.value: float(getattr(self, op.value)) for op in Op}

    def scaled(self, factor: float) -> Rates:
        return Rates(**{k: v * factor for k, v in self.as_dict().items()})


class Phase(Strict):
    """A stretch of the workload. `ramp` moves the rates linearly from the previous phase's
    (zero before the first) to this phase's over its first seconds."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    duration: Seconds
    ramp: Seconds = 0.0
    rates: Rates

    @model_validator(mode="after")
    def _ramp_fits(self) -> Phase:
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.ramp > self.duration:
            raise ValueError(f"ramp ({self.ramp:g} s) is longer than the phase ({self.duration:g} s)")
        return self


class Canaries(Strict):
    """The freshness probe (harness/probe.py): a canary tweet `every` so long, watched for in
    the feeds of `followers` of its author. More often sees a short stall (the fanout_stall check)
    to within less; each follower watched costs a few feed reads per canary."""

    every: Annotated[float, BeforeValidator(parse_duration), Field(ge=0.5, le=60)] = 3.0
    followers: Annotated[int, Field(ge=1, le=10)] = 3


class WorkloadKind(StrEnum):
    STEADY = "steady"
    WORLDCUP = "worldcup"
    CELEBRITY = "celebrity"


class Workload(Strict):
    kind: WorkloadKind
    phases: Annotated[list[Phase], Field(min_length=1)]
    # users holding an SSE stream (GET /v1/stream) open through the load (the `sse` check)
    listeners: Annotated[int, Field(ge=0, le=500)] = 0
    canaries: Canaries = Canaries()

    @model_validator(mode="after")
    def _phases(self) -> Workload:
        names = [p.name for p in self.phases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"phase names must be unique; repeated: {', '.join(dup)}")
        if self.duration < MIN_LOAD_S:
            raise ValueError(f"the phases last {self.duration:g} s in all; at least {MIN_LOAD_S:g} s")
        if not any(p.rates.total() > 0 for p in self.phases):
            raise ValueError("every phase has all rates 0: there is no load")
        return self

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.phases)

    def phase_spans(self) -> Iterator[tuple[Phase, float, float]]:
        """(phase, start, end) in seconds from the start of the load."""
        t = 0.0
        for p in self.phases:
            yield p, t, t + p.duration
            t += p.duration


class Fault(Strict):
    """One scheduled fault from the catalogue (`feedlab faults`): `action` on `target` at `at`
    seconds into the load, healed `heal_after` seconds after it took effect (the heal also runs
    if the run is cut short); again every `every` seconds while the load runs, at random gaps
    averaging `every` when a `seed` is given (chaos/schedule.py)."""

    action: str
    target: str
    at: Seconds
    heal_after: Seconds
    every: Seconds | None = None
    seed: int | None = None
    params: dict[str, float | str] = {}

    @model_validator(mode="after")
    def _in_the_catalogue(self) -> Fault:
        if self.action not in CATALOGUE:
            raise ValueError(f"action: unknown fault {self.action!r} (`feedlab faults` describes each of "
                             f"{', '.join(CATALOGUE)})")
        problems = [f"{where}: {why}" for where, why in CATALOGUE[self.action].problems(self.target, self.params)]
        if self.every is not None and self.every <= self.heal_after:
            problems.append(f"every: {self.every:g}s must be longer than heal_after ({self.heal_after:g}s): "
                            "one fault of a schedule is healed before the next")
        if self.seed is not None and self.every is None:
            problems.append("seed: random gaps need `every` (their average)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExternalTargetSpec(Strict):
    """`target:`: a feed service feedlab did not start (README, "Your own feed service"); the
    command line's --target, --token-secret-file and --metrics-url override it field by field.
    Relative paths are from where feedlab runs. Two things only the command line can say, so
    that a scenario file from elsewhere cannot: another host than loopback (--allow-host) and a
    command to run (--token-command)."""

    url: Annotated[str, Field(min_length=1)]
    token_secret_file: str | None = None
    metrics_url: str | None = None


class Graph(Strict):
    size: GraphSize = GraphSize.SMALL
    users: Annotated[int | None, Field(ge=100, le=1_000_000)] = None   # default: the size's
    # whom a typical user follows (default 150): fewer make a sparser graph, quicker to seed
    # through a service's API (harness/api_seeding.py)
    median_following: Annotated[int | None, Field(ge=1, le=5000)] = None
    seed: int = 1

    def spec(self) -> GraphSpec:
        spec = GraphSpec.preset(self.size, seed=self.seed)
        if self.median_following is not None:
            spec = replace(spec, median_following=self.median_following)
        return spec if self.users is None else spec.with_users(self.users)


class Slo(Strict):
    """The bounds the checks judge (the defaults are DESIGN §5's); finer, per-window
    thresholds are `gates`."""

    feed_p99: Seconds = 0.2                 # client-side GET /v1/feed p99, outside fault windows
    freshness_median: Seconds = 5.0         # post acknowledged -> seen by a follower
    error_rate: Share = 0.0001              # failed share of requests outside fault windows
    fault_error_seconds: Annotated[int, Field(ge=0)] = 30   # seconds with errors, per fault window
    cache_node_served: Share = 0.999        # feed reads answered 200 while a Redis primary is down
    recovery: Seconds = 30.0                # a fault's heal -> Kafka lag and freshness back (checks/recovery.py)
    steady_after: Seconds = 10.0            # the last heal -> steady-state probes taken again (checks/steady_state)
    sse_delivered: Share = 0.99             # new-tweet signals delivered to listening followers, outside faults
    sse_delay: Seconds = 10.0               # their delay from the post's acknowledgement, p99
    fanout_stall: Seconds = 4.0             # a fan-out worker killed -> its canaries seen (checks/fanout_stall.py)
    generator_cpu: Annotated[float, BeforeValidator(lambda v: float(v.rstrip("%")) if isinstance(v, str) else v),
                             Field(gt=0, le=100)] = 90.0    # % of a core: above it the run is invalid
    # % of the machine's CPU its hypervisor gave to other guests (steal), mean over any 10 s of the
    # load: above it the run is invalid (the latencies are the host's; checks/machine.py)
    steal: Annotated[float, BeforeValidator(lambda v: float(v.rstrip("%")) if isinstance(v, str) else v),
                     Field(gt=0, le=100)] = 10.0

    def manifest(self) -> dict[str, float]:
        """The names harness.rundata.Slo reads back from the manifest."""
        return {"feed_p99_ms": self.feed_p99 * 1000, "freshness_median_s": self.freshness_median,
                "error_rate_max": self.error_rate, "fault_error_seconds_max": self.fault_error_seconds,
                "cache_node_served_min": self.cache_node_served, "recovery_s": self.recovery,
                "steady_after_s": self.steady_after,
                "sse_delivered_min": self.sse_delivered, "sse_delay_p99_s": self.sse_delay,
                "fanout_stall_s": self.fanout_stall,
                "generator_cpu_max_percent": self.generator_cpu, "steal_max_percent": self.steal}


def _gates_as_written(specs: list[GateSpec]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for g in specs:
        out.setdefault(g.metric, {}).setdefault(g.window, []).append(
            {"expr": g.expr, "abort_on_fail": g.abort_on_fail})
    return out


Gates = Annotated[list[GateSpec], BeforeValidator(parse_gates), PlainSerializer(_gates_as_written)]

# harness.checks.CHECKS (workloads does not import the checks; a unit test keeps them equal)
CHECK_NAMES = ("generator", "machine", "sweep", "steady_state", "feed_latency", "freshness", "errors", "availability",
               "recovery", "fanout_stall", "nothing_lost", "deletion", "unfollow", "duplicates", "engagement",
               "pagination", "backfill", "celebrity_merge", "ranking_fallback", "sse")
# Checks that only report unless a scenario makes them gate (`checks: {sse: gate}`): the design
# calls SSE best effort.
REPORT_BY_DEFAULT = ("sse",)


class CheckUse(StrEnum):
    GATE = "gate"       # its verdict decides the run (the default but for REPORT_BY_DEFAULT)
    REPORT = "report"   # shown, not judged (e.g. a fault meant to exceed the error budget)


Tolerance = Annotated[float, BeforeValidator(parse_share), Field(ge=0, le=10)]


class Baseline(Strict):
    """How much worse than a baseline run a figure may get before it counts as a regression:
    `tolerance` relative to the baseline's value (per figure in `figures`, named
    metric.aggregate.window), and never less than a noise floor per unit (harness.compare)."""

    tolerance: Tolerance = 0.10
    figures: dict[str, Tolerance] = {}

    @model_validator(mode="after")
    def _known_figures(self) -> Baseline:
        problems = []
        for name in self.figures:
            try:
                parse_figure(name)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("figures: " + "; ".join(problems))
        return self

    def tolerance_of(self, figure: str) -> float:
        return self.figures.get(figure, self.tolerance)


class Settle(Strict):
    deadline: Seconds = 90.0


class Experiment(Strict):
    """What makes a scenario one of `feedlab verify`'s experiments: the row of the design's
    failure-mode table (§10) it tries, and the checks whose evidence the table shows (every check
    and gate still decides the row's verdict)."""

    row: Annotated[str, Field(min_length=1, max_length=80)]
    design: Annotated[str, Field(min_length=1, max_length=300)]   # what the design says should happen
    judged_by: Annotated[list[str], Field(min_length=1)]

    @model_validator(mode="after")
    def _known_checks(self) -> Experiment:
        unknown = [c for c in self.judged_by if c not in CHECK_NAMES]
        if unknown:
            raise ValueError(f"judged_by: unknown check(s) {', '.join(unknown)} (one of {', '.join(CHECK_NAMES)})")
        return self


class Scenario(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    description: Annotated[str, Field(min_length=1, max_length=200)]
    graph: Graph = Graph()
    workload: Workload
    faults: list[Fault] = []
    slo: Slo = Slo()
    gates: Gates = []
    checks: dict[str, CheckUse] = {}
    baseline: Baseline = Baseline()
    settle: Settle = Settle()
    target_env: dict[str, str] = {}   # target settings and defect switches (FEED_*)
    target: ExternalTargetSpec | None = None   # your own feed service, as --target and its companions say it
    experiment: Experiment | None = None   # a row of `feedlab verify` (workloads/experiments/)

    @model_validator(mode="after")
    def _faults_within_load(self) -> Scenario:
        total = self.workload.duration
        late = [f"faults[{i}].at={f.at:g}s" for i, f in enumerate(self.faults) if f.at >= total]
        if late:
            raise ValueError(f"{', '.join(late)}: must fall within the load (0 .. {total:g} s)")
        problems = self._gate_problems()
        if problems:
            raise ValueError("; ".join(problems))
        bad_env = sorted(k for k in self.target_env if not k.startswith("FEED_"))
        if bad_env:
            raise ValueError(f"target_env: only FEED_* settings may be given; not {', '.join(bad_env)}")
        return self

    def _gate_problems(self) -> list[str]:
        phases = {p.name for p in self.workload.phases}
        out = []
        for g in self.gates:
            if g.window.startswith(PHASE_PREFIX) and g.window.removeprefix(PHASE_PREFIX) not in phases:
                out.append(f"gates.{g.metric}.{g.window}: no workload phase named "
                           f"{g.window.removeprefix(PHASE_PREFIX)!r} (phases: {', '.join(sorted(phases))})")
            if g.window in ("fault", "recovery") and not self.faults:
                out.append(f"gates.{g.metric}.{g.window}: the scenario schedules no fault")
        for name, use in self.checks.items():
            if name not in CHECK_NAMES:
                out.append(f"checks.{name}: unknown check (one of {', '.join(CHECK_NAMES)})")
            elif name in ("generator", "machine") and use is CheckUse.REPORT:
                out.append(f"checks.{name}: cannot be report-only: it decides whether the run measured anything")
        return out

    @property
    def seed(self) -> int:
        return self.graph.seed

    def with_overrides(self, *, duration_s: float | None = None, rate_scale: float | None = None,
                       users: int | None = None, seed: int | None = None,
                       target_env: dict[str, str] | None = None, source: str = "command line") -> Scenario:
        """The scenario with CLI overrides applied, validated again. A new duration stretches
        every phase, ramp and fault time by the same factor."""
        data = self.model_dump(mode="json")
        if duration_s is not None:
            factor = duration_s / self.workload.duration
            for p in data["workload"]["phases"]:
                p["duration"] *= factor
                p["ramp"] *= factor
            for f in data["faults"]:
                f["at"] *= factor
                f["heal_after"] *= factor
                if f["every"] is not None:
                    f["every"] *= factor
        if rate_scale is not None:
            if rate_scale <= 0:
                raise ScenarioError(f"{source}: --rate-scale: must be positive, not {rate_scale:g}")
            for p in data["workload"]["phases"]:
                p["rates"] = {k: v * rate_scale for k, v in p["rates"].items()}
        if users is not None:
            data["graph"]["users"] = users
        if seed is not None:
            data["graph"]["seed"] = seed
        if target_env:
            data["target_env"] = {**data["target_env"], **target_env}
        return validate(data, source)


_FIELD_FIRST = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.*)$", re.DOTALL)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(data: Any, source: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))  # drop validator tags
            msg = e["msg"].removeprefix("Value error, ") if e["type"] == "value_error" else e["msg"]
            if e["type"] != "value_error":
                problems.append(f"{source}: {_where(loc)}: {msg}")
                continue
            # a validator's "field: problem; field: problem" names fields below its own place
            parts = [_FIELD_FIRST.match(part) for part in msg.split("; ")]
            if not all(parts):
                problems.append(f"{source}: {_where(loc)}: {msg}")
                continue
            for m in parts:
                assert m is not None
                problems.append(f"{source}: {(_where(loc) + '.') if loc else ''}{m.group(1)}: {m.group(2)}")
        raise ScenarioError("\n".join(problems)) from None


def load_file(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path.name}: a scenario is a mapping of fields, not {type(data).__name__}")
    return validate(data, path.name)


def experiments() -> dict[str, Path]:
    """`feedlab verify`'s experiments, one per failure mode (workloads/experiments/*.yaml)."""
    return {p.stem: p for p in sorted(EXPERIMENT_DIR.glob("*.yaml"))}


def builtin() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def resolve(name_or_file: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_file(path)
    known = builtin()
    if name_or_file not in known:
        raise ScenarioError(f"unknown scenario {name_or_file!r}; built in: {', '.join(known)} (or give a .yaml file)")
    return load_file(known[name_or_file])
