from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from harness.checks import run_all_checks
from harness.rundata import load_run
from harness.verdict import judge_run
from records import JUNIT, MANIFEST, REPORT, SUMMARY, FaultWindow, FinalRead, GeneratorSample
from reports import faults, write_reports
from reports.html import SECTIONS
from reports.terminal import print_verdict_table

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit

PLOTLY_BANNER = re.compile(r"\* plotly\.js v\d")


def _external_refs(html: str) -> list[str]:
    return re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(https?:)?//", html)


def test_reports_of_a_failing_run(spec: RunSpec, run_dir: Path) -> None:
    spec.generator += [GeneratorSample(t=T0 + s, process="locust-hot", cpu_percent=99.0) for s in range(60)]
    spec.final_reads = [r for r in spec.final_reads if r.user_id != 3]
    spec.final_reads.append(FinalRead("author", 2, ["1005"]))
    run = spec.write(run_dir)
    results = run_all_checks(run)

    report = write_reports(run_dir, run, results)

    assert report == run_dir / REPORT
    summary = json.loads((run_dir / SUMMARY).read_text())
    # the saturated generator makes the run invalid: exit 2 (harness), not 1 (target breached)
    assert summary["verdict"] == "fail" and summary["exit_code"] == 2 and summary["valid"] is False
    assert summary["headline"]["lost_from_store"] == 1
    assert {c["name"]: c["verdict"] for c in summary["checks"]}["generator"] == "fail"
    assert summary["manifest"]["run_id"] == "unit-run"

    suite = ET.parse(run_dir / JUNIT).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "feedlab"
    assert len(suite.findall("testcase")) == len(results)
    assert suite.get("failures") == "2" and len(suite.findall("testcase/failure")) == 2
    assert suite.find("testcase[@name='generator']/failure") is not None

    html = report.read_text()
    for section_id, _ in SECTIONS:
        assert f'id="{section_id}"' in html
    assert len(PLOTLY_BANNER.findall(html)) == 1
    assert html.count("Plotly.newPlot") >= 5
    assert _external_refs(html) == []
    assert 'id="partial"' not in html


def test_report_of_an_empty_partial_run_says_no_data(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"run_id": "cut", "partial": True}))
    run = load_run(tmp_path)
    results = run_all_checks(run)
    html = write_reports(tmp_path, run, results).read_text()
    assert 'id="partial"' in html
    assert html.count("no data") >= 4
    assert json.loads((tmp_path / SUMMARY).read_text())["verdict"] == "unknown"
    suite = ET.parse(tmp_path / JUNIT).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == str(sum(r.gating for r in results))
    assert suite.get("skipped") == str(sum(not r.gating for r in results)) != "0"   # not measured, not judged


def test_infinite_figures_are_written_as_strict_json(spec: RunSpec, run_dir: Path) -> None:
    spec.probes = [p.__class__(p.tweet_id, p.author_id, p.follower_id, p.ack_t, None) for p in spec.probes]
    run = spec.write(run_dir)
    write_reports(run_dir, run, run_all_checks(run))
    text = (run_dir / SUMMARY).read_text()
    assert "Infinity" not in text
    assert json.loads(text)["headline"]["freshness_median_s"] == "inf"


def test_terminal_table(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["gates"] = [{"metric": "feed", "window": "steady", "expr": "p99 < 200ms"}]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_verdict_table(judge_run(spec.write(run_dir)), console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "nothing_lost" in out and "PASS" in out and "overall: PASS" in out
    assert "gate feed[steady] p99 < 200ms" in out   # the window in brackets is not taken for markup


def test_the_spike_drain_is_measured_from_the_kafka_lag(spec: RunSpec, run_dir: Path) -> None:
    from reports import spike_drain

    spec.manifest["phases"] = [{"name": "steady", "start_t": T0, "end_t": T0 + 20},
                               {"name": "spike", "start_t": T0 + 20, "end_t": T0 + 30},
                               {"name": "recovery", "start_t": T0 + 30, "end_t": T0 + 60}]
    spec.manifest["config"] = {"scenario": {"workload": {"phases": [
        {"name": "steady", "rates": {"post": 2}}, {"name": "spike", "rates": {"post": 150}},
        {"name": "recovery", "rates": {"post": 2}}]}}}
    # lag 3 before, up to 990 in the spike, down by 100 a second after it: back under 10 at 40 s
    lag = [[T0 + s, 3.0 if s < 20 else 90.0 * (s - 19) if s <= 30 else max(3.0, 990 - 100.0 * (s - 30))]
           for s in range(60)]
    spec.target_metrics = {"kafka_consumer_lag": {"series": [{"labels": {"group": "fanout"}, "points": lag}]}}
    drain = spike_drain(spec.write(run_dir))
    assert drain == {"phase": "spike", "duration_s": 10.0, "lag_peak": 990.0, "lag_before": 10.0,
                     "drain_s": 10.0, "drain_over_duration": 1.0}
    spec.manifest["config"]["scenario"]["workload"]["phases"][1]["rates"]["post"] = 4   # not a spike
    assert spike_drain(spec.write(run_dir)) is None


def test_the_rising_account_crossing_is_timed_from_the_acknowledged_follows(spec: RunSpec, run_dir: Path) -> None:
    from records import FollowChange
    from reports import rising_crossing

    assert rising_crossing(spec.write(run_dir)) is None      # no such follow: not a celebrity run
    # account 1 has 2 followers (2 and 3), the pull threshold is 5: the third new follower takes it across
    spec.graph_changes = [FollowChange(t=T0 + t, follower=follower, followee=1, following=True)
                          for follower, t in ((4, 10), (4, 12), (2, 15), (5, 20), (6, 30), (7, 40))]
    spec.graph_changes.append(FollowChange(t=T0 + 5, follower=8, followee=2, following=True))   # another account
    # 4 twice is counted once, and 2 (a seeded follower) not at all
    assert rising_crossing(spec.write(run_dir)) == {"account": 1, "followers_seeded": 2, "follows_added": 4,
                                                    "pull_threshold": 5, "crossed_at_s": 30.0}
    # a new follower gone again before 30 s: the count reaches 5 at 40 s
    spec.graph_changes.append(FollowChange(t=T0 + 25, follower=5, followee=1, following=False))
    assert rising_crossing(spec.write(run_dir))["crossed_at_s"] == 40.0  # type: ignore[index]


def test_the_report_header_names_the_graph(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["graph"] = {"users": 200000, "follows": 44054872, "celebrities": 20,
                              "push_threshold": 20000, "pull_threshold": 100000}
    run = spec.write(run_dir)
    words = " ".join(write_reports(run_dir, run, run_all_checks(run)).read_text().split())
    assert "graph 200,000 users, 44,054,872 follows, 20 celebrities</div>" in words


def test_the_fault_section_gives_each_fault_its_events_blast_radius_recovery_and_the_sweep(
        spec: RunSpec, run_dir: Path) -> None:
    spec.faults = [replace(spec.faults[0], events=[
        {"t": T0 + 30, "what": "killed", "component": "redis-2", "slots": [[5461, 10922]]},
        {"t": T0 + 33.5, "what": "failover-complete", "roles": {"redis-2": "down"}}]),
        FaultWindow(name="pause", target="cassandra", start_t=T0 + 50, end_t=None)]
    spec.sweep = {"t": T0 + 62, "clean": False, "looked_at": ["toxiproxy: 8 proxies"], "seconds": 0.1,
                  "findings": ["toxic latency left on redis-2"]}
    run = spec.write(run_dir)
    results = run_all_checks(run)
    rows = faults.rows(run, results)
    assert [r.label for r in rows] == ["kill-redis-primary @ redis-2", "pause @ cassandra"]
    assert rows[0].events == ["+0.0 s killed (component redis-2, slots [[5461, 10922]])",
                              "+3.5 s failover-complete"]                   # the cluster map stays in the evidence
    radius = rows[0].blast_radius
    assert radius.startswith("48 of 51 feed reads served (94.12%), p99 2001 ms; readers on its slots: "), radius
    assert rows[0].recovery.startswith("back 1.0 s after the heal") and rows[0].recovered_after_s == 1.0
    assert rows[1].duration_s is None and rows[1].blast_radius.startswith("not judged")
    html = write_reports(run_dir, run, results).read_text()
    section = html[html.index('<section id="faults">'):html.index("</section>", html.index('<section id="faults">'))]
    assert "chart-fault_timeline" in section and "Plotly.newPlot" in section
    assert "never healed" in section and "not clean" in section and "toxic latency left on redis-2" in section


def test_a_run_without_faults_says_so_in_the_fault_section(spec: RunSpec, run_dir: Path) -> None:
    spec.faults = []
    run = spec.write(run_dir)
    html = write_reports(run_dir, run, run_all_checks(run)).read_text()
    assert "this scenario injects no fault" in html and "chart-fault_timeline" not in html
