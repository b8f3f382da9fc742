"""The compose project (compose/) is generated from the runtimes' own components: the committed
files are exactly what `feedlab compose` writes, and they cover every process of the stack."""

from __future__ import annotations

import pytest
import yaml

from harness.compose import COMPOSE_FILE, SECRET, render
from harness.paths import REPO
from harness.runtime.feed import WORKER_NICE
from harness.runtime.process import cpu_weight
from harness.topology import Topology

pytestmark = pytest.mark.unit


def services(text: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return yaml.safe_load(text)["services"]


def test_the_committed_compose_project_is_what_feedlab_compose_writes() -> None:
    stale = render(Topology()).differences(REPO / "compose")
    assert stale == [], f"compose/ is stale; run `feedlab compose` and commit: {stale}"


def test_every_process_of_the_stack_is_a_service_of_both_compose_files() -> None:
    topo = Topology()
    processes = {"toxiproxy", "kafka", "cassandra", "nginx", "prometheus", "redis-exporter", "nginx-exporter",
                 "node-exporter", *topo.redis_names(), *topo.api_names(), *topo.worker_names()}
    project = render(topo)
    for path in (COMPOSE_FILE, f"upstream/{COMPOSE_FILE}"):
        svcs = services(project.files[path])
        assert processes <= set(svcs), (path, processes - set(svcs))
        for name in processes:
            svc = svcs[name]
            assert svc["network_mode"] == "host" and svc["mem_limit"] and svc["cpus"] > 0, (path, name)
            assert svc.get("cpu_shares") == (cpu_weight(WORKER_NICE) if name in topo.worker_names() else None), \
                (path, name)
            assert svc["depends_on"]["stack-folders"] == {"condition": "service_completed_successfully"}


def test_the_ports_follow_the_base_port_and_no_variable_is_required() -> None:
    project = render(Topology(base_port=25000))
    text = project.files[COMPOSE_FILE]
    assert "listen 127.0.0.1:25500 " in project.files["stack/data/nginx/nginx.conf"]
    assert "19500" not in text and "19000" not in text
    svcs = services(text)
    assert svcs["api-1"]["environment"][SECRET] == f"${{{SECRET}:-}}"    # optional: `down` works without it
    assert ":?" not in text
    # the config files are mounted read-only where the component's argv names them
    assert "./stack/data/kafka/server.properties:/feedlab/stack/data/kafka/server.properties:ro" in \
        svcs["kafka"]["volumes"]
