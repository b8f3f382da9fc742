"""The local runtime: components by name, kill / pause / resume / restart, clear start-up errors."""

from __future__ import annotations

import contextlib
import os
import socket

import httpx
import psutil
import pytest

from harness.runtime.feed import WORKER_NICE
from harness.runtime.local import LocalRuntime, PortInUse
from harness.topology import Topology
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack


def states(stack: Stack) -> dict[str, str]:
    return {s.name: s.state for s in stack.runtime.status()}


def test_every_component_is_running_and_scraped(stack: Stack) -> None:
    got = states(stack)
    expected = {"toxiproxy", "kafka", "cassandra", "nginx", "prometheus", "redis-exporter", "nginx-exporter",
                "node-exporter", *stack.topo.redis_names(), *stack.topo.api_names(), *stack.topo.worker_names()}
    assert set(got) == expected
    assert set(got.values()) == {"running"}
    roles = stack.runtime.redis.roles()
    assert sorted(roles.values()) == ["master"] * 3 + ["slave"] * 3


def test_clients_reach_stores_only_through_toxiproxy(stack: Stack) -> None:
    """Redis nodes announce their proxy ports; Kafka advertises its proxy port."""
    import redis

    direct = redis.Redis(port=stack.topo.redis_port(1), decode_responses=True)
    nodes = str(direct.execute_command("CLUSTER", "NODES")).splitlines()
    announced = {int(line.split()[1].split("@")[0].rsplit(":", 1)[1]) for line in nodes}
    assert announced == {stack.topo.redis_proxy_port(i) for i in range(1, 7)}
    from confluent_kafka.admin import AdminClient

    brokers = AdminClient({"bootstrap.servers": f"127.0.0.1:{stack.topo.kafka_proxy_port}"}) \
        .list_topics(timeout=10).brokers
    assert {b.port for b in brokers.values()} == {stack.topo.kafka_proxy_port}


def niceness(stack: Stack, name: str) -> set[int]:
    """The nice value of every thread of the component `name` (one that ended meanwhile, such as a
    client library's short-lived helper thread, is left out: it has no priority left to check)."""
    pid = next(s.pid for s in stack.runtime.status() if s.name == name)
    assert pid is not None, name
    nices = set()
    for thread in psutil.Process(pid).threads():
        with contextlib.suppress(psutil.NoSuchProcess):
            nices.add(psutil.Process(thread.id).nice())
    return nices


def workers_nice() -> set[int]:
    """A worker's threads' nice: WORKER_NICE above the harness's own, 19 at most."""
    return {min(19, os.nice(0) + WORKER_NICE)}


def test_the_fan_out_workers_run_below_the_read_path(stack: Stack) -> None:
    """Every thread of a worker (librdkafka's too) at WORKER_NICE, the API instances at the
    harness's own priority."""
    for name in stack.topo.worker_names():
        assert niceness(stack, name) == workers_nice(), name
    for name in stack.topo.api_names():
        assert niceness(stack, name) == {os.nice(0)}, name


def test_kill_and_restart_a_worker_by_name(stack: Stack) -> None:
    stack.runtime.kill("worker-2")
    assert states(stack)["worker-2"].startswith("exited")
    stack.runtime.restart("worker-2")
    assert states(stack)["worker-2"] == "running"
    assert niceness(stack, "worker-2") == workers_nice()   # a restart keeps its priority


def test_pause_and_resume_an_api_instance(stack: Stack) -> None:
    stack.runtime.pause("api-1")
    assert states(stack)["api-1"] == "paused"
    # nginx sends GETs to the other instance while api-1 is frozen
    r = httpx.get(f"{stack.url}/healthz", timeout=5)
    stack.runtime.resume("api-1")
    assert r.status_code == 200
    assert states(stack)["api-1"] == "running"
    assert httpx.get(f"http://127.0.0.1:{stack.topo.api_port(1)}/healthz", timeout=5).status_code == 200


def test_unknown_component_name_is_a_clear_error(stack: Stack) -> None:
    with pytest.raises(KeyError, match="no component named 'redis-9'"):
        stack.runtime.kill("redis-9")


def test_port_in_use_is_named_before_anything_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    topo = Topology(base_port=24000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", topo.kafka_port))
        s.listen()
        runtime = LocalRuntime(topo=topo, stack_dir=tmp_path, target_env={"FEED_TOKEN_SECRET": "x" * 32})
        with pytest.raises(PortInUse, match=f"port {topo.kafka_port} on 127.0.0.1 is already in use"):
            runtime.up()
    assert all(s.pid is None for s in runtime.status())
