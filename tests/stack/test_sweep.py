"""The heal sweep on the real stack: what a fault could leave behind (a toxic, a disabled proxy,
a paused process, a chaos setting still on) is found, named and repaired, and a second sweep
finds nothing."""

from __future__ import annotations

import pytest

from chaos.ranker import FAIL_SHARE
from chaos.sweep import sweep
from harness.campaign import StoreConfig
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack


def test_the_sweep_finds_and_repairs_every_leftover(stack: Stack) -> None:
    rt = stack.runtime
    toxiproxy, config = rt.toxiproxy.client, StoreConfig(rt.topo)
    toxiproxy.add_toxic("redis-2", "left-behind", "latency", "downstream", latency=200)
    toxiproxy.set_enabled("kafka", False)
    rt.pause("worker-2")
    config.set(FAIL_SHARE, "1.0")
    try:
        found = sweep(toxiproxy, rt, rt.redis, config)
        broken = {f.broken: f.repaired for f in found.findings}
        assert broken == {"toxic left-behind (latency) on redis-2": True, "proxy kafka disabled": True,
                          "worker-2 paused": True, f"{FAIL_SHARE} = 1.0": True}, found.to_json()
        assert not found.clean and found.to_json()["clean"] is False
        again = sweep(toxiproxy, rt, rt.redis, config)
        assert again.clean, again.to_json()
        assert rt.states()["worker-2"] == "running" and config.get_all()[FAIL_SHARE] == "0"
        assert toxiproxy.list_proxies()["redis-2"]["toxics"] == [] and toxiproxy.list_proxies()["kafka"]["enabled"]
    finally:   # whatever the assertions said, the shared stack is left whole
        sweep(toxiproxy, rt, rt.redis, config)
