"""Load generators on several hosts (`feedlab run --generators N`, `feedlab generator`): one
generator is started by the run, the other joins the way one on another host would (its own
empty working directory, an environment with nothing of feedlab's in it, no run directory, no
token): it gets its part of the plan from the Locust master and sends every record there. A
generator that dies mid-run makes the run invalid."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import records
from harness.topology import Topology
from tests.campaign.conftest import INVALID_EXIT, MEASURE_ATTEMPTS
from workloads.arrivals import ArrivalPlan

pytestmark = pytest.mark.campaign

BASE_PORT = 22000
MASTER = f"127.0.0.1:{Topology(base_port=BASE_PORT).generator_master_port}"


def _join(host_dir: Path, key: str) -> subprocess.Popen[bytes]:
    """`feedlab generator` as on another host: nothing from this one but PATH and the join key
    the run printed; its home, working and temporary directories one empty directory."""
    host_dir.mkdir(parents=True, exist_ok=True)
    feedlab = Path(sys.executable).with_name("feedlab")
    with (host_dir.parent / f"{host_dir.name}.log").open("wb") as log:
        return subprocess.Popen([str(feedlab), "generator", "--master", MASTER], cwd=host_dir,
                                env={"PATH": "/usr/bin:/bin", "HOME": str(host_dir), "TMPDIR": str(host_dir),
                                     "FEEDLAB_JOIN_KEY": key}, stdout=log, stderr=subprocess.STDOUT)


def _events(run: Path) -> list[dict]:  # type: ignore[type-arg]
    return list(records.read_jsonl(run / records.GENERATORS))


def _run_with_a_remote_generator(tmp_path: Path, name: str, *args: str, kill_after_s: float | None = None,
                                 intruder: bool = False,
                                 ) -> tuple[Path, subprocess.CompletedProcess[str], subprocess.Popen[bytes]]:
    """`feedlab run steady-small … --generators 2 --remote-generators 1` and the joining generator
    (after one without the join key, if `intruder`); killed `kill_after_s` into the load, if
    given. Measured again (as feedlab_run does) while the run comes out invalid for another
    reason than a lost generator."""
    for attempt in range(1, MEASURE_ATTEMPTS + 1):
        run, host_dir = tmp_path / name, tmp_path / f"{name}-host"
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(host_dir, ignore_errors=True)
        out_path = tmp_path / f"{name}.out"
        with out_path.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "steady-small", *args,
                                     "--generators", "2", "--remote-generators", "1", "--base-port", str(BASE_PORT),
                                     "--run-dir", str(run)], stdout=out, stderr=subprocess.STDOUT, text=True)
        remote = None
        try:
            deadline = time.monotonic() + 300
            while not (key := re.search(r"FEEDLAB_JOIN_KEY=(\S+) feedlab generator", out_path.read_text())):
                assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text()[-3000:]
                time.sleep(0.5)
            if intruder:
                stranger = _join(tmp_path / f"{name}-stranger", "not-the-key")
                assert stranger.wait(timeout=60) is not None   # sent away
            remote = _join(host_dir, key.group(1))
            if kill_after_s is not None:
                while not (start := [e for e in _events(run) if e["event"] == "start"]):
                    assert proc.poll() is None and time.monotonic() < deadline, out_path.read_text()[-3000:]
                    time.sleep(0.2)
                time.sleep(max(0.0, start[0]["load_start_t"] + kill_after_s - time.time()))
                remote.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=600)
            remote.wait(timeout=60)   # a generator leaves when its master quits
        finally:
            for p in (proc, remote):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        done = subprocess.CompletedProcess(proc.args, code, out_path.read_text(), "")
        lost = any(e["event"] == "lost" for e in _events(run))
        if code != INVALID_EXIT or "INVALID RUN" not in done.stdout or lost or attempt == MEASURE_ATTEMPTS:
            return run, done, remote
        print(f"attempt {attempt} of {MEASURE_ATTEMPTS} invalid, measuring again")
    raise AssertionError("unreachable")


def _joined_pid(events: list[dict], generator: str) -> int:  # type: ignore[type-arg]
    detail = next(e["detail"] for e in events if e["event"] == "joined" and e["generator"] == generator)
    return int(detail.split(" pid ")[1])


def test_a_generator_joining_from_elsewhere_offers_its_share_and_sends_its_records(tmp_path: Path) -> None:
    run, out, remote = _run_with_a_remote_generator(tmp_path, "two", "--duration", "15", intruder=True)
    assert out.returncode == 0, out.stdout[-4000:]
    events = _events(run)
    generators = ["generator-0", "generator-1"]
    assert sorted(e["generator"] for e in events if e["event"] == "joined") == generators
    assert not [e for e in events if e["event"] == "lost"]
    assert remote.pid in {_joined_pid(events, g) for g in generators}
    # each reported its arrivals to the end of the load (done, or still watching a backfill
    # when the drain ended: the harness then stops the load, as it does without generators)
    load_end = json.loads((run / records.MANIFEST).read_text())["load_end_t"]
    assert {a["process"] for a in records.read_jsonl(run / records.ARRIVALS) if a["t"] >= load_end - 0.5} \
        == set(generators)
    assert [e["event"] for e in events if e["generator"].startswith("the generator on ")] == ["turned-away"]
    # the plan split exactly: each generator offered its share, and together the whole plan,
    # every arrival once (each arrival's first request is timed from its due time to the bit)
    summary = json.loads((run / records.SUMMARY).read_text())
    plan = ArrivalPlan.from_phases(json.loads((run / records.WORKLOAD).read_text()))
    seed, start = summary["manifest"]["seed"], next(e["load_start_t"] for e in events if e["event"] == "start")
    due: Counter[str] = Counter()
    for a in records.read_jsonl(run / records.ARRIVALS):
        due[a["process"]] += a["due"]
    assert due == {g: sum(1 for _ in plan.arrivals(random.Random(seed), part=i, parts=2))
                   for i, g in enumerate(generators)}, due
    planned = Counter(start + t for t, _ in plan.arrivals(random.Random(seed)))
    sent = Counter(r["t"] for r in records.read_jsonl(run / records.HISTORY) if r["t"] in planned)
    assert max(sent.values()) == 1, "an arrival sent twice"
    assert len(sent) >= 0.9 * len(planned), (len(sent), len(planned))   # a like with nothing seen sends nothing
    # every generator's records reached the run directory through the master, its CPU too
    cpu = Counter(s["process"] for s in records.read_jsonl(run / records.GENERATOR))
    assert cpu["generator-0"] >= 10 and cpu["generator-1"] >= 10 and cpu["locust-master"] >= 10, cpu
    history = list(records.read_jsonl(run / records.HISTORY))
    assert len(history) >= 0.9 * sum(due.values())
    assert not any((tmp_path / "two-host").iterdir())   # the joining generator left nothing where it ran
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["generator"]["verdict"] == "pass"
    assert set(checks["generator"]["evidence"]["generators"]) == set(generators)


def test_a_generator_that_dies_mid_run_makes_the_run_invalid(tmp_path: Path) -> None:
    run, out, remote = _run_with_a_remote_generator(tmp_path, "lost", "--duration", "15", kill_after_s=6)
    assert out.returncode == INVALID_EXIT, out.stdout[-4000:]
    assert "INVALID RUN" in out.stdout
    events = _events(run)
    lost = [e for e in events if e["event"] == "lost"]
    assert len(lost) == 1 and _joined_pid(events, lost[0]["generator"]) == remote.pid
    summary = json.loads((run / records.SUMMARY).read_text())
    check = next(c for c in summary["checks"] if c["name"] == "generator")
    assert check["verdict"] == "fail" and check["invalidates_run"]
    assert f"{lost[0]['generator']} lost at +" in check["summary"]
    # the one that lived was not lost, and reported its arrivals to the end
    survivor = next(g for g in ("generator-0", "generator-1") if g != lost[0]["generator"])
    load_end = json.loads((run / records.MANIFEST).read_text())["load_end_t"]
    assert {a["process"] for a in records.read_jsonl(run / records.ARRIVALS) if a["t"] >= load_end - 0.5} \
        == {survivor}
