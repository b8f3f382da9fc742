"""Gates as written in a scenario: k6-like thresholds, each on one metric in one window.

    gates:
      feed:       {steady: p99 < 200ms, fault: [p99 < 5s, {expr: max < 10s, abort_on_fail: true}]}
      errors:     {steady: rate < 0.01%}
      freshness:  {run: median < 5s}
      kafka_lag:  {phase:spike: max < 20000}

A gate is `metric` (what is measured) × `window` (when) × `expr` ("AGGREGATE OP VALUE"). The
windows are `run` (the whole load), `steady` (outside every fault window and its recovery
grace), `fault` (from each fault's invoke to its heal), `recovery` (the grace after each heal)
and `phase:NAME` (a workload phase). Durations need a unit (ms, s, m); shares are 0.01 or "1%".

The grammar is three tokens, so a regular expression parses it; a parser library would add
a dependency for nothing. This module only parses and validates; harness.gates evaluates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CLIENT_OPS = ("feed", "ranked", "walk", "delta", "profile", "post", "retry_post", "delete", "celebrity_post", "like",
              "retweet", "unretweet", "reply", "follow", "follow_large", "backfill", "unfollow", "rising_follow",
              "rising_post")
WINDOWS = ("run", "steady", "fault", "recovery")
PHASE_PREFIX = "phase:"


class Unit(StrEnum):
    DURATION = "duration"   # stored in seconds, written with ms/s/m
    SHARE = "share"         # 0..1, written 0.01 or 1%
    NUMBER = "number"       # a plain count or level


class Source(StrEnum):
    CLIENT = "client"       # history.jsonl, by intended send time
    FRESHNESS = "freshness"  # probes.jsonl, by acknowledgement time
    TARGET = "target"       # target_metrics.json (Prometheus), by sample time


_LATENCY_AGGS = {"p50": Unit.DURATION, "median": Unit.DURATION, "p90": Unit.DURATION, "p95": Unit.DURATION,
                 "p99": Unit.DURATION, "p999": Unit.DURATION, "max": Unit.DURATION, "mean": Unit.DURATION}


@dataclass(frozen=True)
class Metric:
    source: Source
    aggregates: dict[str, Unit]
    help: str
    series: str | None = None   # the target_metrics.json entry a target metric reads
    live: bool = False          # can be judged while the run goes on (abort_on_fail)


METRICS: dict[str, Metric] = {
    **{op: Metric(Source.CLIENT, {**_LATENCY_AGGS, "rate": Unit.SHARE, "count": Unit.NUMBER},
                  f"client-side latency of {op} (rate: its failed share)", live=True) for op in CLIENT_OPS},
    "errors": Metric(Source.CLIENT, {"rate": Unit.SHARE, "count": Unit.NUMBER},
                     "requests without a usable answer (no response, 5xx)", live=True),
    "freshness": Metric(Source.FRESHNESS, {**_LATENCY_AGGS, "count": Unit.NUMBER, "unseen": Unit.NUMBER},
                        "post acknowledged -> first seen in a follower's feed (never seen counts as infinite)",
                        live=True),
    "kafka_lag": Metric(Source.TARGET, {"max": Unit.NUMBER, "mean": Unit.NUMBER},
                        "fan-out consumer lag, messages", series="kafka_consumer_lag"),
    "fanout_lag": Metric(Source.TARGET, {"max": Unit.DURATION, "mean": Unit.DURATION},
                         "fan-out lag p99 (event age at timeline write)", series="fanout_lag_p99"),
    "hit_ratio": Metric(Source.TARGET, {"min": Unit.SHARE, "mean": Unit.SHARE},
                        "timeline cache hit ratio", series="timeline_cache_hit_ratio"),
    "degraded": Metric(Source.TARGET, {"max": Unit.NUMBER, "mean": Unit.NUMBER},
                       "feed requests served by the store fan-in path, per second", series="degraded_per_s"),
}

_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}
_EXPR = re.compile(r"^\s*([a-z0-9]+)\s*(<=|>=|==|<|>)\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|%)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class Figure:
    """One number a run yields: `metric`'s `aggregate` over `window`; named metric.aggregate.window
    (e.g. feed.p99.steady), which is how baselines name what they compare."""

    metric: str
    aggregate: str
    window: str

    @property
    def name(self) -> str:
        return f"{self.metric}.{self.aggregate}.{self.window}"

    @property
    def unit(self) -> Unit:
        return METRICS[self.metric].aggregates[self.aggregate]

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "hit_ratio"


def _check_window(window: str) -> None:
    if window not in WINDOWS and not (window.startswith(PHASE_PREFIX) and len(window) > len(PHASE_PREFIX)):
        raise ValueError(f"unknown window {window!r} (one of {', '.join(WINDOWS)}, or phase:NAME)")


def parse_figure(name: str) -> Figure:
    """'feed.p99.steady' -> Figure; ValueError naming what is wrong."""
    parts = name.split(".", 2)
    if len(parts) != 3:
        raise ValueError(f"{name!r} is not a figure name (metric.aggregate.window, e.g. feed.p99.steady)")
    metric, aggregate, window = parts
    if metric not in METRICS:
        raise ValueError(f"{name!r}: unknown metric {metric!r} (one of {', '.join(METRICS)})")
    if aggregate not in METRICS[metric].aggregates:
        raise ValueError(f"{name!r}: {aggregate!r} is not an aggregate of {metric} "
                         f"(one of {', '.join(METRICS[metric].aggregates)})")
    _check_window(window)
    return Figure(metric, aggregate, window)


@dataclass(frozen=True)
class GateSpec:
    metric: str
    window: str
    aggregate: str
    op: str
    threshold: float          # seconds for durations, 0..1 for shares
    expr: str                 # as written
    abort_on_fail: bool = False

    @property
    def name(self) -> str:
        return f"{self.metric}[{self.window}] {self.expr}"

    @property
    def figure(self) -> Figure:
        return Figure(self.metric, self.aggregate, self.window)

    @property
    def unit(self) -> Unit:
        return self.figure.unit

    def passes(self, observed: float) -> bool:
        return bool(_OPS[self.op](observed, self.threshold))

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "window": self.window, "expr": self.expr, "abort_on_fail": self.abort_on_fail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateSpec:
        return parse_gate(str(data["metric"]), str(data["window"]), str(data["expr"]),
                          abort_on_fail=bool(data.get("abort_on_fail", False)))


def parse_gate(metric: str, window: str, expr: str, *, abort_on_fail: bool = False) -> GateSpec:
    """One gate; ValueError with the problem (the caller adds where it was written)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (one of {', '.join(METRICS)})")
    _check_window(window)
    m = _EXPR.match(expr)
    if not m:
        raise ValueError(f"{expr!r} is not a gate expression (AGGREGATE OP VALUE, e.g. 'p99 < 200ms', "
                         "'rate < 1%', 'max <= 500')")
    agg, op, number, unit_text = m.groups()
    kinds = METRICS[metric].aggregates
    if agg not in kinds:
        raise ValueError(f"{agg!r} is not an aggregate of {metric} (one of {', '.join(kinds)})")
    value = float(number)
    unit = kinds[agg]
    if unit is Unit.DURATION:
        if unit_text not in _DURATION_UNITS:
            raise ValueError(f"{expr!r}: {metric} {agg} is a duration; give a unit (ms, s or m)")
        value *= _DURATION_UNITS[unit_text]
    elif unit is Unit.SHARE:
        if unit_text == "%":
            value /= 100
        elif unit_text is not None:
            raise ValueError(f"{expr!r}: {metric} {agg} is a share; write 0.01 or 1%")
        if value > 1:
            raise ValueError(f"{expr!r}: a share is at most 1 (100%)")
    elif unit_text is not None:
        raise ValueError(f"{expr!r}: {metric} {agg} is a plain number; no unit")
    if abort_on_fail and not METRICS[metric].live:
        raise ValueError(f"abort_on_fail: {metric} is read from Prometheus after the load, so it cannot "
                         "stop a run; only client metrics and freshness can")
    return GateSpec(metric, window, agg, op, value, " ".join(expr.split()), abort_on_fail)


def parse_gates(raw: Any) -> list[GateSpec]:
    """The `gates:` mapping of a scenario → specs; every problem at once, each with its place
    (metric.window[i]: problem), as one ValueError."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ValueError(f"a mapping of metric -> {{window: expression}}, not {type(raw).__name__}")
    specs: list[GateSpec] = []
    problems: list[str] = []
    for metric, windows in raw.items():
        if not isinstance(windows, dict) or not windows:
            problems.append(f"{metric}: a mapping of window -> expression (e.g. steady: p99 < 200ms)")
            continue
        for window, entries in windows.items():
            items = entries if isinstance(entries, list) else [entries]
            for i, item in enumerate(items):
                where = f"{metric}.{window}" + (f"[{i}]" if isinstance(entries, list) else "")
                try:
                    if isinstance(item, str):
                        specs.append(parse_gate(str(metric), str(window), item))
                    elif isinstance(item, dict) and set(item) <= {"expr", "abort_on_fail"} and "expr" in item:
                        if not isinstance(item.get("abort_on_fail", False), bool):
                            raise ValueError("abort_on_fail: true or false")
                        specs.append(parse_gate(str(metric), str(window), str(item["expr"]),
                                                abort_on_fail=item.get("abort_on_fail", False)))
                    else:
                        raise ValueError("an expression, or {expr: ..., abort_on_fail: true|false}")
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return specs
