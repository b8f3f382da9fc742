"""The target's own metrics, read from the stack's Prometheus once the load is over.

They corroborate what the harness measured from the outside (DESIGN §6), never replace it:
fan-out lag, Kafka consumer lag, the timeline cache hit ratio, the degraded-path rate, and the
CPU and memory of each component. Every series is stored in the run directory
(target_metrics.json) at the scrape resolution, so the report and the checks recompute from
the run directory alone, with the stack gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_api_client import PrometheusConnect

STEP_S = 1


@dataclass(frozen=True)
class Query:
    promql: str
    unit: str
    what: str


QUERIES: dict[str, Query] = {
    "fanout_lag_p99": Query("histogram_quantile(0.99, sum by (le) (rate(feed_fanout_lag_seconds_bucket[5s])))",
                            "s", "fan-out lag p99: tweet age when its timeline writes were durable"),
    "kafka_consumer_lag": Query("max by (group) (feed_kafka_consumer_lag)", "messages",
                                "Kafka consumer lag per consumer group"),
    "timeline_cache_hit_ratio": Query(
        'sum(rate(feed_timeline_cache_requests_total{result="hit"}[5s]))'
        " / sum(rate(feed_timeline_cache_requests_total[5s]))", "ratio", "timeline cache hit ratio"),
    "degraded_per_s": Query("sum by (reason) (rate(feed_degraded_requests_total[5s]))", "1/s",
                            "feeds served from the store fan-in path, per reason"),
    "timeline_writes_per_s": Query("sum(rate(feed_timeline_writes_total[5s]))", "1/s",
                                   "timeline entries written by fan-out"),
    # [15s]: Kafka, Cassandra and Redis are scraped every 5 s (runtime/prometheus.py), and a rate needs two samples
    "cpu_cores": Query("sum by (job, instance) (rate(process_cpu_seconds_total[15s]))", "cores",
                       "CPU of each API, worker, Kafka and Cassandra process"),
    "memory_bytes": Query("sum by (job, instance) (process_resident_memory_bytes)", "bytes",
                          "resident memory of each API, worker, Kafka and Cassandra process"),
    "redis_cpu_cores": Query("sum by (instance) (rate(redis_cpu_sys_seconds_total[15s])"
                             " + rate(redis_cpu_user_seconds_total[15s]))", "cores", "CPU of each Redis node"),
    "redis_memory_bytes": Query("sum by (instance) (redis_memory_used_bytes)", "bytes",
                                "memory used by each Redis node"),
}


def _number(raw: str) -> float | None:
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


def collect(prometheus_url: str, start_t: float, end_t: float) -> dict[str, Any]:
    """Every query over [start_t, end_t] at STEP_S; a query that fails is kept with its error."""
    prom = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    start, end = datetime.fromtimestamp(start_t, UTC), datetime.fromtimestamp(end_t, UTC)
    out: dict[str, Any] = {}
    for name, q in QUERIES.items():
        entry: dict[str, Any] = {"promql": q.promql, "unit": q.unit, "what": q.what, "series": []}
        try:
            result = prom.custom_query_range(q.promql, start_time=start, end_time=end, step=f"{STEP_S}s")
            entry["series"] = [{"labels": r.get("metric", {}),
                                "points": [[float(t), _number(v)] for t, v in r.get("values", [])]}
                               for r in result]
        except Exception as exc:  # noqa: BLE001 - one failed query must not lose the others
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        out[name] = entry
    return out
