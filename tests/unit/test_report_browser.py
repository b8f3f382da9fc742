"""report.html in a real browser (Debian chromium, headless): no console error, every section
there, every chart drawn by the inlined plotly.js. The detector itself is proven on a page that
throws."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.checks import run_all_checks
from records import TARGET_METRICS, write_json
from reports import write_reports
from reports.html import SECTIONS

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*(.*)")


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message it logged."""
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-extensions", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    return out.stdout, [m.group(1) for line in out.stderr.splitlines() if (m := CONSOLE.search(line))]


def test_the_detector_sees_a_page_that_throws(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('visible'); not_defined();</script></body></html>")
    _, console = open_in_chromium(page, tmp_path / "profile")
    assert any("visible" in m for m in console)
    assert any("Uncaught ReferenceError" in m for m in console)


def test_the_report_renders_in_chromium_without_console_errors(spec: RunSpec, run_dir: Path, tmp_path: Path) -> None:
    spec.manifest["phases"] = [{"name": "steady", "start_t": T0, "end_t": T0 + 40},
                               {"name": "spike", "start_t": T0 + 40, "end_t": T0 + 60}]
    run = spec.write(run_dir)
    points = [[T0 + s, float(s % 7)] for s in range(60)]
    write_json(run_dir / TARGET_METRICS, {
        "kafka_consumer_lag": {"promql": "q", "unit": "messages", "what": "lag",
                               "series": [{"labels": {"group": "fanout"}, "points": points}]},
        "fanout_lag_p99": {"promql": "q", "unit": "s", "what": "lag", "series": [{"labels": {}, "points": points}]},
        "timeline_cache_hit_ratio": {"promql": "q", "unit": "ratio", "what": "hits",
                                     "series": [{"labels": {}, "points": [[t, 0.97] for t, _ in points]}]},
        "cpu_cores": {"promql": "q", "unit": "cores", "what": "cpu",
                      "series": [{"labels": {"job": "feed-api", "instance": "api-1"}, "points": points}]},
    })
    from harness.rundata import load_run
    run = load_run(run_dir)
    report = write_reports(run_dir, run, run_all_checks(run))
    dom, console = open_in_chromium(report, tmp_path / "profile")
    assert console == [], console
    for section, _ in SECTIONS:
        assert f'id="{section}"' in dom, section
    # plotly.js ran: it marks every chart container it drew "js-plotly-plot".
    charts = report.read_text().count('class="plotly-graph-div"')
    drawn = len(re.findall(r'class="plotly-graph-div js-plotly-plot"', dom))
    assert charts >= 9 and drawn == charts, (charts, drawn)
    assert "no data" not in dom.split('id="target"')[1].split("</section>")[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["headline"]["target"]["timeline_cache_hit_ratio_mean"] == pytest.approx(0.97)
