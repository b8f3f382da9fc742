"""The smoke campaign end to end, and the nothing-lost check catching the drop-fanout defect."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import records
from targets.feed.follow_sets import CHANGE_DEADLINE_S
from tests.campaign.conftest import feedlab

pytestmark = pytest.mark.campaign


def checks(run: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    summary = json.loads((run / records.SUMMARY).read_text())
    return {c["name"]: c for c in summary["checks"]}


def test_smoke_campaign_passes_and_its_report_can_be_recomputed(tmp_path: Path) -> None:
    run = tmp_path / "smoke"
    out = feedlab("run", "smoke", "--base-port", "22000", "--run-dir", str(run))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for name in (records.MANIFEST, records.HISTORY, records.LEDGER, records.PROBES, records.FAULTS,
                 records.FINAL_READS, records.GRAPH, records.REPORT, records.SUMMARY, records.JUNIT,
                 records.WORKLOAD, records.ARRIVALS, records.GRAPH_CHANGES, records.TARGET_METRICS):
        assert (run / name).stat().st_size > 0, name
    headline = json.loads((run / records.SUMMARY).read_text())["headline"]
    # the steady mix ran every operation; Prometheus was read for the target's side
    assert set(headline["p99_ms_by_op"]) >= {"feed", "delta", "profile", "post", "like", "follow", "unfollow"}
    assert headline["arrivals"]["due"] > 5000 and headline["arrivals"]["dropped"] == 0
    assert headline["target"]["timeline_cache_hit_ratio_mean"] > 0.9
    assert headline["target"]["kafka_consumer_lag_max"] is not None
    # Around the failover a follow change may wait for a replica, never for the whole deadline
    # (a per-node client that timed out WAIT and retried it made every change hit it).
    graph_ops = headline["p99_ms_by_op"]
    for op in ("follow", "unfollow"):
        assert graph_ops[op]["outside_faults"] < CHANGE_DEADLINE_S * 1000, graph_ops[op]
    manifest = json.loads((run / records.MANIFEST).read_text())
    assert manifest["partial"] is False and manifest["graph_hash"]
    faults = list(records.read_jsonl(run / records.FAULTS))
    assert len(faults) == 1 and faults[0]["target"].startswith("redis-") and faults[0]["end_t"]
    assert any(e["what"] == "failover-complete" for e in faults[0]["events"])
    got = checks(run)
    assert {c["verdict"] for c in got.values()} == {"pass"}
    assert got["nothing_lost"]["evidence"]["acked"] > 50
    junit = ET.parse(run / records.JUNIT).getroot()
    assert junit.find(".//failure") is None and len(junit.findall(".//testcase")) == len(got)
    # The verdict is a function of the run directory alone.
    before = (run / records.SUMMARY).read_text()
    again = feedlab("report", str(run))
    assert again.returncode == 0, again.stdout[-2000:]
    verdicts_before = {c["name"]: c["verdict"] for c in json.loads(before)["checks"]}
    assert {n: c["verdict"] for n, c in checks(run).items()} == verdicts_before


def test_drop_fanout_defect_fails_the_nothing_lost_check(tmp_path: Path) -> None:
    run = tmp_path / "defect"
    out = feedlab("run", "steady-small", "--duration", "20", "--defect", "drop-fanout=0.05", "--processes", "2",
                  "--base-port", "22000", "--run-dir", str(run))
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    got = checks(run)
    assert got["nothing_lost"]["verdict"] == "fail"
    assert got["nothing_lost"]["evidence"]["missing_from_timeline"] > 0
    assert got["nothing_lost"]["evidence"]["missing_from_store"] == 0
    assert "nothing_lost" in out.stdout
    # Locust's multi-process mode: each of the two load processes sent its share of the arrivals
    per_process: dict[str, int] = {}
    for a in records.read_jsonl(run / records.ARRIVALS):
        per_process[a["process"]] = per_process.get(a["process"], 0) + a["due"]
    assert sorted(per_process) == ["locust-0", "locust-1"] and min(per_process.values()) > 200, per_process
