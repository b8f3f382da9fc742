"""The report's fault section: for each fault what was broken and for how long, what happened
during it (its events), its blast radius (the `availability` check's evidence) and its recovery
(the `recovery` check's); the heal sweep; and a timeline of the faults and their recoveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from harness.checks import CheckResult
from harness.rundata import RunData
from reports import figures

HIDDEN_EVENT_KEYS = frozenset({"t", "what", "roles"})   # roles: a whole cluster map, in the evidence


@dataclass(frozen=True)
class FaultRow:
    label: str                  # "kill-redis-primary @ redis-1"
    start_s: float              # since load start
    duration_s: float | None    # None: never healed
    events: list[str] = field(default_factory=list)
    event_s: list[float] = field(default_factory=list)   # each event's time, since load start
    blast_radius: str = "not judged"
    recovery: str = "not judged"
    recovered_after_s: float | None = None


def _event(e: dict[str, Any], start: float) -> str:
    details = ", ".join(f"{k} {v}" for k, v in e.items() if k not in HIDDEN_EVENT_KEYS)
    return f"+{float(e['t']) - start:.1f} s {e.get('what', '?')}" + (f" ({details})" if details else "")


def _blast_radius(w: dict[str, Any]) -> str:
    p99 = f", p99 {w['latency_p99_ms']:.0f} ms" if w.get("latency_p99_ms") else ""
    served = f"{w['served']} of {w['feed_reads']} feed reads served ({w['served_share']:.2%}){p99}"
    if not w["slots"]:
        return f"{served}; the read path does not use {w['target']}"
    return (f"{served}; readers on its slots: {w['affected_served']} of {w['affected_reads']} served; "
            f"readers on healthy shards: {w['healthy_failed']} of {w['healthy_reads']} failed")


def _recovery(g: dict[str, Any]) -> str:
    if g["recovery_s"] is not None:
        return (f"back {g['recovery_s']:.1f} s after the heal (Kafka lag {g['lag_back_s']:.1f} s, "
                f"freshness {g['freshness_back_s']:.1f} s): {g['verdict']}")
    missing = [n for n, k in (("Kafka lag", "lag_back_s"), ("freshness", "freshness_back_s")) if g[k] is None]
    return f"{' and '.join(missing)} not back in the {g['window_s']:.0f} s after the heal: {g['verdict']}"


def rows(run: RunData, results: list[CheckResult]) -> list[FaultRow]:
    evidence = {r.name: r.evidence for r in results}
    windows = evidence.get("availability", {}).get("windows") or []
    groups = evidence.get("recovery", {}).get("groups") or []
    t0 = figures.origin(run)
    out = []
    for w in sorted((f for f in run.faults if f.start_t is not None), key=lambda f: f.start):
        seen = next((x for x in windows if x["fault"] == w.name and x["target"] == w.target
                     and x["start_t"] == w.start), None)
        group = next((g for g in groups if w.start in g.get("fault_starts", [])), None)
        out.append(FaultRow(
            label=f"{w.name} @ {w.target}", start_s=w.start - t0,
            duration_s=None if w.end_t is None else w.end_t - w.start,
            events=[_event(e, w.start) for e in w.events if "t" in e],
            event_s=[float(e["t"]) - t0 for e in w.events if "t" in e],
            blast_radius=_blast_radius(seen) if seen else "not judged (no availability bound for this fault)",
            recovery=_recovery(group) if group else "not judged",
            recovered_after_s=None if group is None else group["recovery_s"]))
    return out


def timeline(run: RunData, results: list[CheckResult]) -> go.Figure | None:
    """Each fault as a bar from invoke to heal, then its recovery (heal to back in steady state)
    as a lighter bar, and its events as marks."""
    table = rows(run, results)
    if not table:
        return None
    t0 = figures.origin(run)
    fig = figures.base_figure("Faults: invoke to heal, then recovery", "")
    labels = [f"{r.label} #{i + 1}" for i, r in enumerate(table)]
    ends = [r.duration_s if r.duration_s is not None else max(0.0, (run.load_end_t or t0) - t0 - r.start_s)
            for r in table]
    fig.add_bar(y=labels, x=ends, base=[r.start_s for r in table], orientation="h", name="fault (invoke to heal)",
                marker_color=figures.FAULT_COLOUR, hovertext=[r.blast_radius for r in table])
    fig.add_bar(y=labels, x=[r.recovered_after_s or 0.0 for r in table],
                base=[r.start_s + e for r, e in zip(table, ends, strict=True)], orientation="h",
                name="recovery (heal to back)", marker_color=figures.FAULT_COLOUR, opacity=0.35,
                hovertext=[r.recovery for r in table])
    marks = [(label, x, text) for label, r in zip(labels, table, strict=True)
             for x, text in zip(r.event_s, r.events, strict=True)]
    if marks:
        fig.add_scatter(y=[m[0] for m in marks], x=[m[1] for m in marks], mode="markers",
                        name="events", marker={"symbol": "line-ns-open", "size": 14, "color": "#333"},
                        hovertext=[m[2] for m in marks])
    load_s = (run.load_end_t or t0) - t0
    fig.update_layout(barmode="overlay", height=200 + 40 * len(table), yaxis={"autorange": "reversed"},
                      xaxis={"range": [0, max(load_s, *(r.start_s + e for r, e in zip(table, ends, strict=True)))]},
                      legend={"orientation": "h", "y": -0.5}, margin={"b": 90})
    figures.shade_phases(fig, run, t0)
    return fig
