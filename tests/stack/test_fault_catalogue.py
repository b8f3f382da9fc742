"""The fault catalogue on the real stack: every family acts on the component or link it names
(by name or by role, never by PID), records what it did, and its heal leaves nothing for the
sweep to find. Every Toxiproxy toxic is accepted with the catalogue's parameter names."""

from __future__ import annotations

import time

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.crc import key_slot

from chaos.build import build
from chaos.catalogue import CATALOGUE
from chaos.fault import Fault
from harness.campaign import StoreConfig, chaos_stack
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack

TOXICS = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data")


def act(stack: Stack, action: str, target: str, **params: object) -> Fault:
    fault = build(action, target, dict(params), chaos_stack(stack.runtime))
    fault.invoke()
    return fault


def test_process_faults_act_on_components_by_name_and_by_role_and_heal(whole: Stack) -> None:
    rt = whole.runtime
    paused = act(whole, "pause", "worker-2")
    try:
        assert rt.states()["worker-2"] == "paused" and paused.window.events[-1]["signal"] == "SIGSTOP"
    finally:
        paused.heal()
    assert rt.states()["worker-2"] == "running" and paused.window.end_t is not None

    stopped = act(whole, "stop", "api-2")
    try:
        assert rt.states()["api-2"] != "running"
        with httpx.Client(base_url=whole.url, timeout=10) as c:   # nginx serves from the other instance
            assert all(c.get("/v1/feed", headers=whole.auth(7)).status_code == 200 for _ in range(10))
    finally:
        stopped.heal()
    assert httpx.get(f"http://127.0.0.1:{whole.topo.api_port(2)}/healthz", timeout=5).status_code == 200

    replica = act(whole, "kill", "redis-replica-1")
    try:
        node = replica.window.target
        assert node in rt.topo.redis_names() and rt.states()[node].startswith("exited")
        assert replica.window.events[0]["role"] == "redis-replica-1" and "slots" not in replica.window.events[0]
    finally:
        replica.heal()
    assert sorted(rt.redis.roles().values()) == ["master"] * 3 + ["slave"] * 3

    restarted = act(whole, "restart", "nginx")   # the invoke returns once it is ready again
    restarted.heal()
    assert httpx.get(f"{whole.url}/v1/feed", headers=whole.auth(7), timeout=10).status_code == 200
    assert [e["what"] for e in restarted.window.events] == ["restarted", "healed"]


def test_every_toxic_is_added_with_its_parameters_and_removed_by_its_heal(whole: Stack) -> None:
    proxies = whole.runtime.toxiproxy.client.list_proxies
    for name in TOXICS:
        fault = act(whole, name, "kafka", stream="upstream", toxicity=0.5)
        try:
            (toxic,) = proxies()["kafka"]["toxics"]
            defaults = CATALOGUE[name].with_defaults({})
            assert toxic["type"] == name and toxic["stream"] == "upstream" and toxic["toxicity"] == 0.5, toxic
            assert toxic["attributes"] == {k: v for k, v in defaults.items() if k not in ("stream", "toxicity")}, toxic
        finally:
            fault.heal()
        assert proxies()["kafka"]["toxics"] == [], name


def test_a_latency_toxic_slows_the_link_it_names(whole: Stack) -> None:
    store = StoreConfig(whole.topo)   # a new connection through the link, and one query

    def timed() -> float:
        t0 = time.monotonic()
        store.get_all()
        return time.monotonic() - t0

    fault = act(whole, "latency", "cassandra", latency=400, jitter=0)
    try:
        slowed = timed()
    finally:
        fault.heal()
    healed = timed()
    assert slowed >= 0.4 and healed < slowed, (slowed, healed)


def test_a_partition_of_a_redis_primary_takes_its_link_down_records_its_slots_and_heals(whole: Stack) -> None:
    rt = whole.runtime
    fault = act(whole, "partition", "redis-primary-1")
    try:
        node = fault.window.target
        assert node == rt.redis.primaries()[0] and not rt.toxiproxy.client.list_proxies()[node]["enabled"]
        (event,) = fault.window.events
        assert event["what"] == "link-down" and event["slots"] == [list(r) for r in rt.redis.slots_of(node)]
        with pytest.raises(httpx.TransportError):   # the client side of the link refuses
            httpx.get(f"http://127.0.0.1:{rt.topo.redis_proxy_port(rt.topo.redis_names().index(node) + 1)}",
                      timeout=2)
    finally:
        fault.heal()
    assert rt.toxiproxy.client.list_proxies()[node]["enabled"]


def test_a_shard_wipe_kills_a_primary_with_its_replica_and_the_shard_comes_back_empty(whole: Stack) -> None:
    rt = whole.runtime
    primary = rt.redis.primaries()[1]
    slots = rt.redis.slots_of(primary)
    key = next(k for k in (f"wipe-probe:{i}" for i in range(100_000))
               if any(lo <= key_slot(k.encode()) <= hi for lo, hi in slots))
    node = redis.Redis(port=rt.topo.redis_port(rt.topo.redis_names().index(primary) + 1), decode_responses=True)
    assert node.set(key, "held") and node.wait(1, 2000) == 1   # on the replica too
    fault = act(whole, "wipe-shard", "redis-primary-2")
    try:
        (event,) = fault.window.events
        assert event["components"][0] == primary and len(event["components"]) == 2
        assert all(rt.states()[n].startswith("exited") for n in event["components"]), rt.states()
        assert event["slots"] == [list(r) for r in slots] and fault.window.target == primary
        with httpx.Client(base_url=whole.url, timeout=10) as c:   # the store serves that shard's readers
            assert all(c.get("/v1/feed", headers=whole.auth(u)).status_code == 200 for u in range(1, 21))
    finally:
        fault.heal()
    assert sorted(rt.redis.roles().values()) == ["master"] * 3 + ["slave"] * 3
    shard = rt.redis.shard_of(key)
    node = redis.Redis(port=rt.topo.redis_port(rt.topo.redis_names().index(shard[0]) + 1), decode_responses=True)
    assert sorted(shard) == sorted(event["components"]) and node.get(key) is None   # gone from both
    assert [e["what"] for e in fault.window.events] == ["killed", "restarting", "healed"]


def test_an_invoke_that_fails_half_way_is_still_healed(whole: Stack) -> None:
    fault = build("kill", "redis-primary-1", {}, chaos_stack(whole.runtime))
    fault.failover_deadline_s = 0.01   # type: ignore[attr-defined]  # the kill happens, the wait for failover fails
    with pytest.raises(Exception, match="failover"):
        fault.invoke()
    fault.heal()
    assert sorted(whole.runtime.redis.roles().values()) == ["master"] * 3 + ["slave"] * 3
    assert [e["what"] for e in fault.window.events][-2:] == ["restarting", "healed"]


def test_the_links_in_front_nginx_to_one_api_instance_and_the_generator_to_nginx(whole: Stack) -> None:
    """`nginx->api-1` down: nginx sends every request to api-2 (reads and posts served, only
    api-2 counts them). `generator->nginx` down: the load generator's address refuses
    connections, while the harness's own address (probes, read-backs) still answers."""
    author, topo = 3121, whole.topo

    def requests_of(port: int) -> float:
        """API requests this instance answered (its scrapes aside), from its /metrics."""
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "feed_http_request_duration_seconds" for sample in family.samples
                   if sample.name.endswith("_count") and sample.labels.get("endpoint", "").startswith("/v1/"))

    fault = act(whole, "down", "nginx->api-1")
    try:
        assert fault.window.target == "nginx->api-1"
        before = [requests_of(topo.api_port(i)) for i in (1, 2)]
        with httpx.Client(base_url=whole.url, timeout=10) as c:
            reads = [c.get("/v1/feed", headers=whole.auth(author)).status_code for _ in range(20)]
            post = c.post("/v1/tweets", headers=whole.auth(author), json={"text": "front link"}).status_code
        after = [requests_of(topo.api_port(i)) for i in (1, 2)]
    finally:
        fault.heal()
    assert reads == [200] * 20 and post == 201
    assert after[0] - before[0] == 0 and after[1] - before[1] >= 21, (before, after)

    fault = act(whole, "down", "generator->nginx")
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{topo.load_url}/v1/feed", headers=whole.auth(author), timeout=5)
        assert httpx.get(f"{whole.url}/v1/feed", headers=whole.auth(author), timeout=5).status_code == 200
    finally:
        fault.heal()
    assert httpx.get(f"{topo.load_url}/v1/feed", headers=whole.auth(author), timeout=5).status_code == 200
