"""Gates on a hand-made run: each window selects what it should, each source is read, and a
gate can fail, pass or stay undecided for the right reason."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checks import Verdict, exit_code
from harness.verdict import judge_run
from records import JUNIT, SUMMARY, GeneratorSample
from reports import write_reports
from workloads.gate_spec import parse_gates

from .conftest import FAULT_END, FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


def gates(spec: RunSpec, raw: dict) -> None:  # type: ignore[type-arg]
    spec.manifest["gates"] = [g.to_json() for g in parse_gates(raw)]


def verdicts(spec: RunSpec, run_dir: Path) -> dict[str, Verdict]:
    return {r.name: r.verdict for r in judge_run(spec.write(run_dir)) if r.kind == "gate"}


def test_each_window_judges_its_own_requests(spec: RunSpec, run_dir: Path) -> None:
    # feeds take 20 ms, except 2 s inside the fault (30-35 s); 1 in 20 of those is a 503
    gates(spec, {"feed": {"steady": "p99 < 200ms", "fault": ["p99 < 1s", "p50 > 1s"], "recovery": "max < 50ms",
                          "run": "p99 < 200ms"},
                 "errors": {"steady": "rate < 0.01%", "fault": "rate < 1%"},
                 "post": {"steady": ["count == 45", "mean < 31ms"]}})
    assert verdicts(spec, run_dir) == {
        "feed[steady] p99 < 200ms": Verdict.PASS,
        "feed[fault] p99 < 1s": Verdict.FAIL, "feed[fault] p50 > 1s": Verdict.PASS,
        "feed[recovery] max < 50ms": Verdict.PASS,
        "feed[run] p99 < 200ms": Verdict.FAIL,       # 50 of 600 feeds were slow: the run's p99 is 2 s
        "errors[steady] rate < 0.01%": Verdict.PASS, "errors[fault] rate < 1%": Verdict.FAIL,
        # 60 posts, one a second (at s + 0.05): the fault and its recovery (30-45 s) take 15
        "post[steady] count == 45": Verdict.PASS,
        "post[steady] mean < 31ms": Verdict.PASS,
    }


def test_phase_windows_come_from_the_manifest(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["phases"] = [{"name": "calm", "start_t": T0, "end_t": T0 + 30},
                               {"name": "storm", "start_t": T0 + 30, "end_t": T0 + 60}]
    gates(spec, {"feed": {"phase:calm": "p99 < 50ms", "phase:storm": "p99 < 50ms"}})
    assert verdicts(spec, run_dir) == {"feed[phase:calm] p99 < 50ms": Verdict.PASS,
                                       "feed[phase:storm] p99 < 50ms": Verdict.FAIL}


def test_freshness_counts_an_unseen_canary_as_infinite(spec: RunSpec, run_dir: Path) -> None:
    # one canary (acked at the fault's start) was never seen; every other took 1 s
    gates(spec, {"freshness": {"steady": ["median < 2s", "max < 2s"], "run": ["max < 1m", "unseen == 1"]}})
    assert verdicts(spec, run_dir) == {"freshness[steady] median < 2s": Verdict.PASS,
                                       "freshness[steady] max < 2s": Verdict.PASS,
                                       "freshness[run] max < 1m": Verdict.FAIL,
                                       "freshness[run] unseen == 1": Verdict.PASS}


def test_target_metrics_are_read_by_sample_time(spec: RunSpec, run_dir: Path) -> None:
    lag = [[T0 + s, 5000.0 if FAULT_START <= T0 + s <= FAULT_END else 3.0] for s in range(0, 80, 5)]
    spec.target_metrics = {"kafka_consumer_lag": {"promql": "x", "unit": "messages",
                                                  "series": [{"labels": {}, "points": lag}]}}
    gates(spec, {"kafka_lag": {"steady": "max < 100", "fault": "max < 100", "run": "mean < 500"},
                 "hit_ratio": {"run": "mean > 0.9"}})
    assert verdicts(spec, run_dir) == {"kafka_lag[steady] max < 100": Verdict.PASS,
                                       "kafka_lag[fault] max < 100": Verdict.FAIL,
                                       "kafka_lag[run] mean < 500": Verdict.FAIL,   # 2 of 16 at 5000: 627.6
                                       "hit_ratio[run] mean > 0.9": Verdict.UNKNOWN}  # no series: undecided


def test_without_a_metrics_source_target_gates_are_shown_not_judged(spec: RunSpec, run_dir: Path) -> None:
    """An external target without --metrics-url: its metric gates and the recovery check cannot
    be judged, and say so without making the run undecided; a Prometheus that failed still does."""
    from records.manifest import NO_METRICS_SOURCE

    gates(spec, {"kafka_lag": {"run": "max < 2000"}, "feed": {"steady": "p99 < 200ms"}})
    spec.target_metrics = {}
    spec.manifest["target_metrics_error"] = NO_METRICS_SOURCE
    results = judge_run(spec.write(run_dir))
    lag = next(r for r in results if r.name == "kafka_lag[run] max < 2000")
    assert (lag.verdict, lag.gating) == (Verdict.UNKNOWN, False) and "no --metrics-url" in lag.summary
    recovery = next(r for r in results if r.name == "recovery")
    assert (recovery.verdict, recovery.gating) == (Verdict.UNKNOWN, False)
    assert next(r for r in results if r.name == "feed[steady] p99 < 200ms").verdict is Verdict.PASS

    spec.manifest["target_metrics_error"] = "ConnectError: Prometheus refused"
    results = judge_run(spec.write(run_dir / "failed"))
    lag = next(r for r in results if r.name == "kafka_lag[run] max < 2000")
    assert (lag.verdict, lag.gating) == (Verdict.UNKNOWN, True)
    assert exit_code(results) == 2


def test_an_invalid_run_passes_no_gate_and_exits_2(spec: RunSpec, run_dir: Path) -> None:
    spec.generator += [GeneratorSample(t=T0 + s, process="locust-hot", cpu_percent=99.0) for s in range(60)]
    gates(spec, {"feed": {"steady": "p99 < 200ms"}})
    results = judge_run(spec.write(run_dir))
    gate = next(r for r in results if r.kind == "gate")
    assert gate.verdict is Verdict.UNKNOWN and "not judged: the run is invalid" in gate.summary
    assert exit_code(results) == 2


def test_the_gate_that_aborted_a_run_fails_it(spec: RunSpec, run_dir: Path) -> None:
    gates(spec, {"feed": {"steady": {"expr": "p99 < 200ms", "abort_on_fail": True}}})
    spec.manifest["aborted"] = {"gate": "feed[steady] p99 < 200ms", "summary": "p99 3 s over 120 samples",
                                "t": T0 + 20}
    results = judge_run(spec.write(run_dir))
    assert [(r.verdict, r.summary.startswith("aborted the run")) for r in results if r.kind == "gate"] == [
        (Verdict.FAIL, True)]
    assert exit_code(results) == 1


def test_report_only_checks_do_not_decide_and_junit_has_a_case_per_gate(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["slo"] = {"fault_error_seconds_max": 2}   # the fault's 503s exceed this budget
    spec.manifest["checks"] = {"errors": "report"}
    gates(spec, {"feed": {"steady": "p99 < 200ms", "fault": "p99 < 5s"}})
    run = spec.write(run_dir)
    results = judge_run(run)
    errors = next(r for r in results if r.name == "errors")
    assert errors.verdict is Verdict.FAIL and not errors.gating
    assert exit_code(results) == 0
    write_reports(run_dir, run, results)
    suite = ET.parse(run_dir / JUNIT).getroot().find("testsuite")
    assert suite is not None
    assert [c.get("name") for c in suite.findall("testcase[@classname='feedlab.gates']")] == [
        "feed[steady] p99 < 200ms", "feed[fault] p99 < 5s"]
    assert suite.find("testcase[@name='errors']/skipped") is not None and suite.get("failures") == "0"
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert [g["verdict"] for g in summary["gates"]] == ["pass", "pass"] and summary["exit_code"] == 0
    html = (run_dir / "report.html").read_text()
    assert html.count('href="#chart-latency"') == 3   # the latency check and both feed gates link to it
    assert 'id="chart-latency"' in html


def test_an_abort_gate_acts_on_the_records_so_far_once_it_has_enough(run_dir: Path) -> None:
    import records
    from harness.abort import MIN_SAMPLES, AbortWatch
    from records import Request
    from workloads.gate_spec import Source

    run_dir.mkdir(parents=True)
    manifest = records.Manifest(run_id="live", load_start_t=T0)
    specs = parse_gates({"feed": {"run": [{"expr": "p99 < 200ms", "abort_on_fail": True}, "p50 < 1ms"]}})
    watch = AbortWatch(run_dir, specs)
    assert [s.name for s in watch.specs] == ["feed[run] p99 < 200ms"]    # only those marked
    need = MIN_SAMPLES[Source.CLIENT]
    with records.JsonlWriter(run_dir / records.HISTORY) as out:
        for i in range(need - 1):
            out.write(Request(t=T0 + i * 0.1, op="feed", latency_ms=2000, status=200))
        assert watch.breach(manifest, []) is None                         # too few to call it a p99
        out.write(Request(t=T0 + need * 0.1, op="feed", latency_ms=2000, status=200))
        breach = watch.breach(manifest, [])
    assert breach is not None and breach.name == "feed[run] p99 < 200ms" and breach.evidence["samples"] == need
