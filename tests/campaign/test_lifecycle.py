"""No process survives a run, whichever way it ends; the long-lived stack obeys the CLI by name."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import records
from tests.campaign.conftest import assert_all_gone, feedlab, scenario_with

pytestmark = pytest.mark.campaign


def test_sigterm_mid_run_heals_stops_and_writes_a_partial_report(tmp_path: Path, start_feedlab) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "interrupted"
    r = start_feedlab("run", "smoke", "--duration", "60", "--base-port", "23000", "--run-dir", str(run))
    r.wait_for("failover-complete", timeout=180)
    children = r.descendants()
    assert len(children) > 10
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=120) == 2
    assert_all_gone(children)
    manifest = json.loads((run / records.MANIFEST).read_text())
    assert manifest["partial"] is True
    assert (run / records.REPORT).exists()
    faults = list(records.read_jsonl(run / records.FAULTS))
    assert faults and faults[0]["end_t"] is not None   # the killed Redis node was restarted
    assert any("interrupted" in line for line in r.lines)


def test_a_crashed_harness_leaves_no_process_behind(tmp_path: Path, start_feedlab) -> None:  # type: ignore[no-untyped-def]
    r = start_feedlab("run", "steady-small", "--base-port", "23000", "--run-dir", str(tmp_path / "crash"))
    r.wait_for("load:", timeout=180)
    children = r.descendants()
    assert len(children) > 10
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    assert_all_gone(children)


def test_up_status_kill_restart_down(tmp_path: Path) -> None:
    env_runs = {"FEEDLAB_RUNS": str(tmp_path)}
    os.environ.update(env_runs)
    try:
        port = "25000"
        up = feedlab("up", "--base-port", port, timeout=240)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        again = feedlab("up", "--base-port", port)
        assert again.returncode == 2 and "already running" in again.stderr
        assert "running" in feedlab("status", "--base-port", port).stdout
        assert feedlab("kill", "worker-1", "--base-port", port).returncode == 0
        status = feedlab("status", "--base-port", port).stdout
        assert "exited" in status
        assert feedlab("restart", "worker-1", "--base-port", port).returncode == 0
        assert "exited" not in feedlab("status", "--base-port", port).stdout
        bad = feedlab("kill", "redis-42", "--base-port", port)
        assert bad.returncode == 2 and "no component named 'redis-42'" in bad.stderr
        assert "INFO" in feedlab("logs", "kafka", "--base-port", port).stdout
        state = json.loads((tmp_path / f"stack-{port}" / "supervisor.json").read_text())
        import psutil

        children = psutil.Process(state["pid"]).children(recursive=True)
        assert feedlab("down", "--base-port", port).returncode == 0
        assert_all_gone(children)
        assert feedlab("status", "--base-port", port).returncode == 2
        # A stopped stack's data (Redis cluster membership) must not stop the next one forming.
        up = feedlab("up", "--base-port", port, timeout=240)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert feedlab("down", "--base-port", port).returncode == 0
    finally:
        feedlab("down", "--base-port", "25000")
        os.environ.pop("FEEDLAB_RUNS")


@pytest.mark.parametrize(("args", "message"), [
    (["run", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
    (["run", "smoke", "--defect", "teleport"], "unknown defect 'teleport'"),
    (["run", "smoke", "--defect", "drop-fanout=7"], "within [0, 1]"),
    (["run", "smoke", "--defect", "never-backfill=0.5"], "on or off"),
    (["run", "smoke", "--duration", "3"], "Invalid value for '--duration'"),
    (["run", "smoke", "--rate-scale", "0"], "--rate-scale: must be positive"),
    (["run", "smoke", "--users", "5"], "graph.users: Input should be greater than or equal to 100"),
    (["run", "smoke", "--processes", "64"], "more load processes than cores"),
    (["run", "/nonexistent/scenario.yaml"], "cannot read"),
    (["run", "--bogus"], "No such option"),
    (["report", "/nonexistent"], "not a run directory"),
    (["gate", "/nonexistent"], "not a run directory"),
    (["run", "smoke", "--baseline", "/nonexistent"], "--baseline /nonexistent: not a run directory"),
    (["compare", "/nonexistent", "/nonexistent"], "not a run directory"),
])
def test_bad_input_is_a_one_line_error_and_exit_2(args: list[str], message: str) -> None:
    out = feedlab(*args)
    assert out.returncode == 2
    assert message in out.stderr + out.stdout


def test_a_bad_gate_is_refused_before_anything_starts(tmp_path: Path) -> None:
    scenario = scenario_with(tmp_path / "bad-gate.yaml", "smoke", gates={"cpu": {"steady": "max < 50"}})
    out = feedlab("run", str(scenario), "--base-port", "22000", "--run-dir", str(tmp_path / "never"))
    assert out.returncode == 2
    assert "bad-gate.yaml: gates.cpu.steady: unknown metric 'cpu'" in out.stderr
    assert not (tmp_path / "never").exists()
