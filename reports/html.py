"""report.html: one self-contained page, readable offline and years later.

plotly.js is inlined once in the page head; every chart is a fragment that only calls it, so
the page references no external URL (no CDN, no fonts) and survives being mailed or archived.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness import compare
from harness.checks import CheckResult, exit_code, overall
from harness.rundata import RunData
from reports import faults, figures
from workloads.gate_spec import CLIENT_OPS

TEMPLATES = Path(__file__).parent / "templates"

SECTIONS: list[tuple[str, str]] = [
    ("verdict", "Verdict"), ("faults", "Faults"), ("latency", "Latency"), ("throughput", "Throughput"),
    ("freshness", "Freshness"), ("target", "Target metrics"), ("generator", "Load generator"),
    ("baseline", "Baseline"), ("manifest", "Manifest"),
]

CHARTS: dict[str, list[Callable[[RunData], go.Figure | None]]] = {
    "latency": [figures.latency, figures.operations_p99],
    "throughput": [figures.throughput],
    "freshness": [figures.freshness_histogram, figures.freshness_over_time],
    "target": [figures.kafka_lag, figures.fanout_lag, figures.cache_hit_ratio, figures.component_cpu,
               figures.container_cpu, figures.container_memory],
    "generator": [figures.generator_cpu, figures.arrivals],
}


# The chart each check and gate metric is read from: the verdict table links to it.
_CHECK_CHARTS = {"feed_latency": figures.latency, "freshness": figures.freshness_histogram,
                 "errors": figures.throughput, "generator": figures.generator_cpu}
_METRIC_CHARTS = {"feed": figures.latency, "errors": figures.throughput, "freshness": figures.freshness_over_time,
                  "kafka_lag": figures.kafka_lag, "fanout_lag": figures.fanout_lag,
                  "hit_ratio": figures.cache_hit_ratio}


def chart_id(build: Callable[[RunData], go.Figure | None]) -> str:
    return f"chart-{build.__name__}"


def chart_of(result: CheckResult) -> str | None:
    """The anchor of the chart that shows what `result` judged, if there is one."""
    if result.kind == "gate":
        build = _METRIC_CHARTS.get(str(result.evidence.get("metric")), figures.operations_p99
                                   if result.evidence.get("metric") in CLIENT_OPS else None)
    else:
        build = _CHECK_CHARTS.get(result.name)
    return chart_id(build) if build else None


def _fragment(fig: go.Figure | None) -> str | None:
    if fig is None:
        return None
    return fig.to_html(include_plotlyjs=False, full_html=False, default_height="400px",
                       config={"displaylogo": False})


def render(run: RunData, results: list[CheckResult], jsonable: Callable[[Any], Any]) -> str:
    charts: dict[str, list[tuple[str, str | None]]] = {}
    for section, builders in CHARTS.items():
        fragments = [(chart_id(build), _fragment(build(run))) for build in builders]
        charts[section] = [(i, f) for i, f in fragments if f] or [("", None)]
    drawn = {i for section in charts.values() for i, f in section if f}
    links = {r.name: link for r in results if (link := chart_of(r)) in drawn}
    fault_chart = _fragment(faults.timeline(run, results))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(
        run_id=run.manifest.run_id or run.run_dir.name,
        manifest=run.manifest.to_json(),
        manifest_json=json.dumps(jsonable(run.manifest.to_json()), indent=2, sort_keys=True),
        partial=run.partial,
        aborted=run.manifest.aborted,
        verdict=overall(results),
        exit_code=exit_code(results),
        checks=[r for r in results if r.kind == "check"],
        baseline=[r for r in results if r.kind == "baseline"],
        comparison=compare.load(run.run_dir),
        shown=compare.shown,
        gates=[r for r in results if r.kind == "gate"],
        links=links,
        evidence={r.name: json.dumps(jsonable(r.evidence), indent=2, sort_keys=True) for r in results},
        faults=faults.rows(run, results),
        fault_chart=fault_chart,
        sweep=run.sweep,
        sections=SECTIONS,
        charts=charts,
        plotly_js=plotly.offline.get_plotlyjs(),
    )
