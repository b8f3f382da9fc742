"""A distributed run's generator checks where the master would have it send load, as the
harness checks `--target`: a real Locust master and a real `feedlab generator`, and a load URL
off this machine, which the generator refuses before it sends anything (no stack needed)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

import records
from harness.load import LoadGenerator
from harness.tokens import SharedSecret
from workloads.arrivals import ArrivalPlan
from workloads.graph import Graph, GraphSpec
from workloads.scenario import resolve

pytestmark = pytest.mark.stack

OFF_MACHINE = "http://192.0.2.10:8080"   # TEST-NET-1 (RFC 5737): nobody's address; never contacted


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_generator_refuses_a_load_url_off_this_machine(tmp_path: Path) -> None:
    Graph.from_followers(GraphSpec(users=100, celebrities=0, push_threshold=10, pull_threshold=50),
                         {1: [2, 3]}).write(tmp_path)
    sc = resolve("steady-small")
    plan = ArrivalPlan.from_phases(sc.model_dump(mode="json")["workload"]["phases"])
    gen = LoadGenerator(run_dir=tmp_path, host=OFF_MACHINE, plan=plan, tokens=SharedSecret("s" * 32), seed=1,
                        generators=1, master_port=_free_port())
    try:
        with pytest.raises(RuntimeError) as refused:
            gen.start()
        assert re.search(r"the generator on \S+ \(pid \d+\) refused the run: the run's load URL "
                         r"'http://192.0.2.10:8080': 192.0.2.10 is not this machine's loopback", str(refused.value))
        assert "--allow-host 192.0.2.10" in str(refused.value)
        local = gen.local_generators[0]
        assert local.wait(timeout=30) is not None   # it leaves the run by itself
    finally:
        gen.stop()
    events = list(records.read_jsonl(tmp_path / records.GENERATORS))
    assert [e["event"] for e in events] == ["refused"]
    assert not (tmp_path / records.HISTORY).exists() or not (tmp_path / records.HISTORY).read_text()
