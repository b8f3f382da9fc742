"""The docker runtime end to end: the same scenario, faults, checks and report as the local
runtime, with the stack in containers, and no container left whichever way the run ends."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import records
from harness.runtime.docker_engine import connect
from harness.runtime.docker_runtime import LABEL_STACK
from harness.runtime.feed import WORKER_NICE
from harness.runtime.process import cpu_weight
from tests.campaign.conftest import feedlab, feedlab_run

pytestmark = pytest.mark.campaign

PORT = "26000"


def containers_of(port: str) -> list[str]:
    client = connect()
    return [c.name for c in client.containers.list(all=True, ignore_removed=True,
                                                  filters={"label": [f"{LABEL_STACK}={port}"]})]


def reaper_removed(stack_dir: Path, within_s: float = 30) -> int:
    """How many containers the reaper removed once its owner ended: 0 when the owner's own
    `down()` had removed them all."""
    log = stack_dir / "logs" / "reaper.log"
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        lines = [line for line in log.read_text().splitlines() if "removed" in line]
        if lines:
            return int(lines[-1].split("removed ")[1].split()[0])
        time.sleep(0.2)
    raise AssertionError(f"the reaper logged no removal within {within_s} s: {log.read_text()!r}")


def lowered(port: str) -> set[str]:
    """The stack's containers whose cpu.shares are the workers' (WORKER_NICE's weight); the
    others have none (the engine's default)."""
    client = connect()
    return {c.name for c in client.containers.list(filters={"label": [f"{LABEL_STACK}={port}"]})
            if c.attrs["HostConfig"]["CpuShares"] == cpu_weight(WORKER_NICE)}


def wait_no_containers(port: str, within_s: float = 30) -> None:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        left = containers_of(port)
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"containers left behind: {left}")


def test_smoke_on_docker_judges_like_local_and_catches_a_defect(tmp_path: Path) -> None:
    """The default campaign on the docker runtime, with the unfollow filter switched off in the
    target: the unfollow check fails on what the API served, every other check that judges the
    target's behaviour passes, the report has the containers' CPU and memory, and nothing is
    left running."""
    run = tmp_path / "docker-smoke"
    out = feedlab_run(run, "run", "smoke", "--duration", "60", "--runtime", "docker", "--base-port", PORT,
                      "--defect", "skip-unfollow-filter")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((run / records.SUMMARY).read_text())
    verdicts = {c["name"]: c["verdict"] for c in summary["checks"] if c["kind"] == "check"}
    assert verdicts["unfollow"] == "fail", verdicts
    for name in ("generator", "sweep", "freshness", "errors", "availability", "nothing_lost", "deletion",
                 "duplicates", "engagement", "pagination", "backfill", "celebrity_merge", "ranking_fallback"):
        assert verdicts[name] == "pass", (name, verdicts)
    manifest = json.loads((run / records.MANIFEST).read_text())
    assert manifest["runtime"] == "docker"
    faults = list(records.read_jsonl(run / records.FAULTS))
    assert faults and all(f["end_t"] is not None for f in faults)   # the killed Redis node came back
    samples = list(records.read_jsonl(run / records.CONTAINERS))
    seen = {s["container"] for s in samples}
    assert {"cassandra", "kafka", "nginx", "api-1", "worker-2", "redis-6", "toxiproxy"} <= seen, seen
    assert all(s["memory_bytes"] > 0 for s in samples)
    report = (run / records.REPORT).read_text()
    assert "CPU per container" in report and "Memory per container" in report
    assert containers_of(PORT) == []
    assert reaper_removed(run / "stack") == 0      # the run removed its own; the reaper found none


def test_a_crashed_harness_leaves_no_container_behind(tmp_path: Path, start_feedlab) -> None:  # type: ignore[no-untyped-def]
    r = start_feedlab("run", "steady-small", "--runtime", "docker", "--base-port", PORT,
                      "--run-dir", str(tmp_path / "crash"))
    r.wait_for("load:", timeout=300)
    assert len(containers_of(PORT)) == 18
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    wait_no_containers(PORT)
    assert reaper_removed(tmp_path / "crash" / "stack") == 18


def test_sigterm_mid_run_heals_and_removes_every_container(tmp_path: Path, start_feedlab) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "interrupted"
    r = start_feedlab("run", "smoke", "--duration", "60", "--runtime", "docker", "--base-port", PORT,
                      "--run-dir", str(run))
    r.wait_for("failover-complete", timeout=300)
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=120) == 2
    assert containers_of(PORT) == []
    assert reaper_removed(run / "stack") == 0
    manifest = json.loads((run / records.MANIFEST).read_text())
    assert manifest["partial"] is True
    faults = list(records.read_jsonl(run / records.FAULTS))
    assert faults and faults[0]["end_t"] is not None
    assert any("interrupted" in line for line in r.lines)


def test_up_status_kill_pause_restart_down_on_docker(tmp_path: Path) -> None:
    os.environ["FEEDLAB_RUNS"] = str(tmp_path)
    try:
        up = feedlab("up", "--runtime", "docker", "--base-port", PORT, timeout=900)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert "stack ready (docker)" in up.stdout
        assert len(containers_of(PORT)) == 18
        again = feedlab("up", "--runtime", "docker", "--base-port", PORT)
        assert again.returncode == 2 and "already running" in again.stderr
        assert len(containers_of(PORT)) == 18     # the live stack's containers are not orphans
        assert feedlab("kill", "worker-1", "--base-port", PORT).returncode == 0
        assert "exited(137)" in feedlab("status", "--base-port", PORT).stdout
        assert feedlab("restart", "worker-1", "--base-port", PORT).returncode == 0
        workers = [c for c in sorted(containers_of(PORT)) if "worker-" in c]
        assert len(workers) == 2 and sorted(lowered(PORT)) == workers   # worker-1 restarted: a new container
        assert feedlab("pause", "api-2", "--base-port", PORT).returncode == 0
        status = feedlab("status", "--base-port", PORT).stdout
        assert "paused" in status and "exited" not in status
        assert feedlab("resume", "api-2", "--base-port", PORT).returncode == 0
        assert "paused" not in feedlab("status", "--base-port", PORT).stdout
        assert "INFO" in feedlab("logs", "kafka", "--base-port", PORT).stdout
        bad = feedlab("pause", "redis-42", "--base-port", PORT)
        assert bad.returncode == 2 and "no component named 'redis-42'" in bad.stderr
        assert feedlab("down", "--base-port", PORT).returncode == 0
        wait_no_containers(PORT)
        assert reaper_removed(tmp_path / f"stack-{PORT}") == 0
    finally:
        feedlab("down", "--base-port", PORT)
        os.environ.pop("FEEDLAB_RUNS")
