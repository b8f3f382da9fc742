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

from harness.checks import CheckResult, exit_code, overall
from harness.rundata import RunData
from reports import figures

TEMPLATES = Path(__file__).parent / "templates"

SECTIONS: list[tuple[str, str]] = [
    ("verdict", "Verdict"), ("latency", "Latency"), ("throughput", "Throughput"),
    ("freshness", "Freshness"), ("target", "Target metrics"), ("generator", "Load generator"),
    ("manifest", "Manifest"),
]

CHARTS: dict[str, list[Callable[[RunData], go.Figure | None]]] = {
    "latency": [figures.latency, figures.operations_p99],
    "throughput": [figures.throughput],
    "freshness": [figures.freshness_histogram, figures.freshness_over_time],
    "target": [figures.kafka_lag, figures.fanout_lag, figures.cache_hit_ratio, figures.component_cpu],
    "generator": [figures.generator_cpu, figures.arrivals],
}


def _fragment(fig: go.Figure | None) -> str | None:
    if fig is None:
        return None
    return fig.to_html(include_plotlyjs=False, full_html=False, default_height="400px",
                       config={"displaylogo": False})


def render(run: RunData, results: list[CheckResult], jsonable: Callable[[Any], Any]) -> str:
    charts: dict[str, list[str | None]] = {}
    for section, builders in CHARTS.items():
        fragments = [_fragment(build(run)) for build in builders]
        charts[section] = [f for f in fragments if f] or [None]
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(
        run_id=run.manifest.get("run_id", run.run_dir.name),
        manifest=run.manifest,
        manifest_json=json.dumps(jsonable(run.manifest), indent=2, sort_keys=True),
        partial=run.partial,
        verdict=overall(results),
        exit_code=exit_code(results),
        results=results,
        evidence={r.name: json.dumps(jsonable(r.evidence), indent=2, sort_keys=True) for r in results},
        sections=SECTIONS,
        charts=charts,
        plotly_js=plotly.offline.get_plotlyjs(),
    )
