"""Plotly figures of a run, on one time axis: seconds since load start.

Each builder returns None when it has nothing to draw, so the page can say "no data" rather
than show an empty frame. Fault windows are shaded on every time chart so cause and effect
sit side by side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import plotly.graph_objects as go

from harness.checks.feed_latency import FEED_OPS
from harness.checks.stats import new_histogram, percentile_ms, record_ms
from harness.rundata import RunData
from records import ContainerSample, Request

X_TITLE = "seconds since load start"
FAULT_COLOUR = "#d62728"
PHASE_COLOUR = "#1f77b4"


def origin(run: RunData) -> float:
    return run.load_start_t if run.load_start_t is not None else 0.0


def per_second_percentiles(
    requests: Iterable[Request], t0: float, pcts: tuple[float, ...] = (50, 90, 99)
) -> tuple[list[int], dict[float, list[float | None]]]:
    """Bucket starts (s since t0) and {pct: latency ms per bucket}; one HDR histogram, reset per 1 s."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for r in requests:
        buckets[int(r.t - t0)].append(r.latency_ms)
    seconds = sorted(buckets)
    series: dict[float, list[float | None]] = {p: [] for p in pcts}
    hist = new_histogram()
    for second in seconds:
        hist.reset()
        record_ms(hist, buckets[second])
        for p in pcts:
            series[p].append(percentile_ms(hist, p))
    return seconds, series


def base_figure(title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, template="plotly_white", xaxis_title=X_TITLE, yaxis_title=y_title,
        margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"orientation": "h", "y": -0.2},
    )
    return fig


def shade_faults(fig: go.Figure, run: RunData, t0: float, last_x: float) -> None:
    for w in run.faults:
        end = w.end_t if w.end_t is not None else run.load_end_t
        x1 = end - t0 if end is not None else last_x
        fig.add_vrect(
            x0=w.start - t0, x1=max(x1, w.start - t0), fillcolor=FAULT_COLOUR, opacity=0.12,
            line_width=0, annotation_text=f"{w.name} @ {w.target}", annotation_position="top left",
        )


def _last_x(run: RunData, t0: float) -> float:
    times = [r.t for r in run.requests] + [s.t for s in run.generator] + [p.ack_t for p in run.probes]
    return max(times, default=t0) - t0


def latency(run: RunData) -> go.Figure | None:
    t0 = origin(run)
    groups: dict[str, Callable[[Request], bool]] = {
        "feed": lambda r: r.op in FEED_OPS, "post": lambda r: r.op == "post",
    }
    fig = base_figure("Client-side latency per second, from the intended send time (HDR)", "latency (ms)")
    for label, wanted in groups.items():
        seconds, series = per_second_percentiles((r for r in run.requests if r.status > 0 and wanted(r)), t0)
        for p, values in series.items():
            if seconds:
                fig.add_scatter(x=seconds, y=values, mode="lines", name=f"{label} p{p:g}")
    if not fig.data:
        return None
    fig.add_hline(y=run.slo.feed_p99_ms, line_dash="dash", annotation_text="feed p99 gate")
    shade_faults(fig, run, t0, _last_x(run, t0))
    shade_phases(fig, run, t0)
    return fig


def throughput(run: RunData) -> go.Figure | None:
    if not run.requests:
        return None
    t0 = origin(run)
    ok: dict[int, int] = defaultdict(int)
    bad: dict[int, int] = defaultdict(int)
    for r in run.requests:
        (ok if r.ok else bad)[int(r.t - t0)] += 1
    seconds = sorted(ok.keys() | bad.keys())
    fig = base_figure("Requests per second", "requests / s")
    fig.add_scatter(x=seconds, y=[ok[s] for s in seconds], mode="lines", name="ok")
    fig.add_scatter(x=seconds, y=[bad[s] for s in seconds], mode="lines", name="errors",
                    line={"color": FAULT_COLOUR})
    shade_faults(fig, run, t0, _last_x(run, t0))
    return fig


def freshness_histogram(run: RunData) -> go.Figure | None:
    in_fault = run.fault_predicate()
    steady = [p.freshness_s for p in run.probes if p.freshness_s is not None and not in_fault(p.ack_t)]
    faulty = [p.freshness_s for p in run.probes if p.freshness_s is not None and in_fault(p.ack_t)]
    if not steady and not faulty:
        return None
    fig = base_figure("Freshness: ack to first seen in a follower's feed", "canary reads")
    fig.update_layout(xaxis_title="freshness (s)", barmode="overlay")
    fig.add_histogram(x=steady, name="steady state", opacity=0.75)
    fig.add_histogram(x=faulty, name="acked in a fault window", opacity=0.6, marker_color=FAULT_COLOUR)
    fig.add_vline(x=run.slo.freshness_median_s, line_dash="dash", annotation_text="median gate")
    return fig


def freshness_over_time(run: RunData) -> go.Figure | None:
    if not run.probes:
        return None
    t0 = origin(run)
    seen = [p for p in run.probes if p.freshness_s is not None]
    unseen = [p for p in run.probes if p.freshness_s is None]
    fig = base_figure("Freshness by ack time", "freshness (s)")
    fig.add_scatter(x=[p.ack_t - t0 for p in seen], y=[p.freshness_s for p in seen], mode="markers",
                    name="seen", marker={"size": 5})
    ceiling = max((p.freshness_s or 0.0 for p in seen), default=run.slo.freshness_median_s) * 1.1
    if unseen:
        fig.add_scatter(x=[p.ack_t - t0 for p in unseen], y=[ceiling] * len(unseen), mode="markers",
                        name="never seen", marker={"symbol": "x", "color": FAULT_COLOUR, "size": 8})
    shade_faults(fig, run, t0, _last_x(run, t0))
    return fig


def generator_cpu(run: RunData) -> go.Figure | None:
    if not run.generator:
        return None
    t0 = origin(run)
    by_process: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in sorted(run.generator, key=lambda s: s.t):
        by_process[s.process].append((s.t - t0, s.cpu_percent))
    fig = base_figure("Load generator CPU per process", "CPU % of one core")
    for process, points in sorted(by_process.items()):
        fig.add_scatter(x=[x for x, _ in points], y=[y for _, y in points], mode="lines", name=process)
    fig.add_hline(y=run.slo.generator_cpu_max_percent, line_dash="dash", annotation_text="saturation gate")
    shade_faults(fig, run, t0, _last_x(run, t0))
    return fig


def shade_phases(fig: go.Figure, run: RunData, t0: float) -> None:
    """Each phase after the first (a spike, a recovery) gets a light band and its name."""
    for i, p in enumerate(run.manifest.phases):
        if i == 0:
            continue
        fig.add_vrect(x0=p["start_t"] - t0, x1=p["end_t"] - t0, fillcolor=PHASE_COLOUR, opacity=0.08 + 0.04 * (i % 2),
                      line_width=0, annotation_text=p["name"], annotation_position="bottom left")


def operations_p99(run: RunData) -> go.Figure | None:
    """p99 per second of every operation but the feed (drawn on its own above)."""
    t0 = origin(run)
    ops = sorted({r.op for r in run.requests} - FEED_OPS)
    fig = base_figure("Other operations: p99 per second, from the intended send time", "latency (ms)")
    for op in ops:
        seconds, series = per_second_percentiles((r for r in run.requests if r.op == op and r.status > 0), t0, (99,))
        if seconds:
            fig.add_scatter(x=seconds, y=series[99], mode="lines", name=f"{op} p99")
    if not fig.data:
        return None
    shade_faults(fig, run, t0, _last_x(run, t0))
    shade_phases(fig, run, t0)
    return fig


def _target_series(run: RunData, name: str) -> list[tuple[str, list[float], list[float | None]]]:
    entry = run.target_metrics.get(name) or {}
    t0 = origin(run)
    out = []
    for s in entry.get("series", []):
        label = ", ".join(f"{v}" for k, v in sorted(s["labels"].items()) if k != "__name__") or name
        out.append((label, [t - t0 for t, _ in s["points"]], [v for _, v in s["points"]]))
    return out


def _target_figure(run: RunData, name: str, title: str, y_title: str, scale: float = 1.0,
                   gate: tuple[float, str] | None = None) -> go.Figure | None:
    series = _target_series(run, name)
    if not series:
        return None
    t0 = origin(run)
    fig = base_figure(title, y_title)
    for label, xs, ys in series:
        fig.add_scatter(x=xs, y=[None if y is None else y * scale for y in ys], mode="lines", name=label)
    if gate is not None:
        fig.add_hline(y=gate[0], line_dash="dash", annotation_text=gate[1])
    shade_faults(fig, run, t0, max((max(xs, default=0.0) for _, xs, _ in series), default=0.0))
    shade_phases(fig, run, t0)
    return fig


def kafka_lag(run: RunData) -> go.Figure | None:
    return _target_figure(run, "kafka_consumer_lag", "Kafka consumer lag per consumer group (Prometheus)",
                          "messages")


def fanout_lag(run: RunData) -> go.Figure | None:
    return _target_figure(run, "fanout_lag_p99", "Fan-out lag p99: tweet age when its timeline writes were durable",
                          "seconds")


def cache_hit_ratio(run: RunData) -> go.Figure | None:
    return _target_figure(run, "timeline_cache_hit_ratio", "Timeline cache hit ratio (Prometheus)", "%",
                          scale=100.0, gate=(95.0, "DESIGN §5: 95 %"))


def component_cpu(run: RunData) -> go.Figure | None:
    return _target_figure(run, "cpu_cores", "CPU per target process (Prometheus)", "cores")


def _container_lane(run: RunData, title: str, unit: str, value: Callable[[ContainerSample], float]
                    ) -> go.Figure | None:
    if not run.containers:
        return None
    t0 = origin(run)
    by_container: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in sorted(run.containers, key=lambda s: s.t):
        by_container[s.container].append((s.t - t0, value(s)))
    fig = base_figure(title, unit)
    for name, points in sorted(by_container.items()):
        fig.add_scatter(x=[x for x, _ in points], y=[y for _, y in points], mode="lines", name=name)
    shade_faults(fig, run, t0, _last_x(run, t0))
    return fig


def container_cpu(run: RunData) -> go.Figure | None:
    return _container_lane(run, "CPU per container (cgroup)", "CPU % of one core", lambda s: s.cpu_percent)


def container_memory(run: RunData) -> go.Figure | None:
    return _container_lane(run, "Memory per container (cgroup, as docker stats counts it)", "MiB",
                           lambda s: round(s.memory_bytes / 2**20, 1))


def arrivals(run: RunData) -> go.Figure | None:
    """The open model's bookkeeping: arrivals due per second, and any dropped or started late."""
    if not run.arrivals:
        return None
    t0 = origin(run)
    due: dict[int, int] = defaultdict(int)
    dropped: dict[int, int] = defaultdict(int)
    late: dict[int, int] = defaultdict(int)
    for a in run.arrivals:
        second = int(a.t - t0)
        due[second] += a.due
        dropped[second] += a.dropped
        late[second] += a.late
    seconds = sorted(due)
    fig = base_figure("Arrivals per second: due, dropped (too many in flight), late (> 50 ms)", "arrivals / s")
    fig.add_scatter(x=seconds, y=[due[s] for s in seconds], mode="lines", name="due")
    fig.add_scatter(x=seconds, y=[dropped[s] for s in seconds], mode="lines", name="dropped",
                    line={"color": FAULT_COLOUR})
    fig.add_scatter(x=seconds, y=[late[s] for s in seconds], mode="lines", name="late")
    shade_faults(fig, run, t0, _last_x(run, t0))
    shade_phases(fig, run, t0)
    return fig
