"""Percentiles: HDR histograms for latencies, nearest rank for values that may be infinite."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram

HDR_MIN_US = 1
HDR_MAX_US = 60_000_000  # 60 s; slower requests are recorded as 60 s
HDR_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_MIN_US, HDR_MAX_US, HDR_DIGITS)


def record_ms(hist: HdrHistogram, latencies_ms: Iterable[float]) -> HdrHistogram:
    """Record milliseconds as whole microseconds, clamped to the histogram's range."""
    for ms in latencies_ms:
        hist.record_value(min(max(int(ms * 1000), HDR_MIN_US), HDR_MAX_US))
    return hist


def percentile_ms(hist: HdrHistogram, pct: float) -> float | None:
    return None if hist.get_total_count() == 0 else hist.get_value_at_percentile(pct) / 1000


def latency_summary(latencies_ms: Iterable[float]) -> dict[str, float | int | None]:
    """count, p50, p90, p99, p999 and max in milliseconds (None when there is no data)."""
    hist = record_ms(new_histogram(), latencies_ms)
    figures: dict[str, float | int | None] = {"count": hist.get_total_count()}
    for label, pct in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)):
        figures[label] = percentile_ms(hist, pct)
    figures["max_ms"] = hist.get_max_value() / 1000 if hist.get_total_count() else None
    return figures


def nearest_rank(sorted_values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence; `inf` entries are fine."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
