"""`docker compose up` on the committed compose/docker-compose.yml serves the reference target:
every long-running service stays up (none restarted), every one-shot ends with 0, Prometheus
and its exporters answer, and through nginx a follower's feed gets a followed author's new tweet
(API, Cassandra, Kafka, a fan-out worker, Redis), with the token secret the project made for
itself, then with the one given at `up`; `down -v` leaves nothing. Run with Debian's
docker-compose (v1.29), which bin/setup installs."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from harness.compose import COMPOSE_FILE, SECRET, SECRET_FILE
from harness.paths import REPO
from harness.runtime.docker_engine import connect
from harness.runtime.local import check_ports_free
from harness.tokens import SharedSecret
from harness.topology import Topology
from tests.campaign.conftest import feedlab

pytestmark = pytest.mark.campaign

PROJECT = "feedlab-compose-test"
ONE_SHOT = {"stack-folders", "redis-cluster", "kafka-topics", "cassandra-schema"}
LABEL = f"com.docker.compose.project={PROJECT}"


def compose(*args: str, secret: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SECRET}
    if secret is not None:
        env[SECRET] = secret
    return subprocess.run(["docker-compose", "-p", PROJECT, "-f", str(REPO / "compose" / COMPOSE_FILE), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def service_states() -> dict[str, str]:
    """service -> "running" / "exited(N)", with ", restarted N" when the engine restarted it."""
    out = {}
    for c in connect().containers.list(all=True, ignore_removed=True, filters={"label": LABEL}):
        state = c.attrs["State"]
        text = "running" if state["Running"] else f"exited({state['ExitCode']})"
        if c.attrs.get("RestartCount"):
            text += f", restarted {c.attrs['RestartCount']}"
        out[c.labels["com.docker.compose.service"]] = text
    return out


def left_behind() -> list[str]:
    client = connect()
    containers = client.containers.list(all=True, ignore_removed=True, filters={"label": LABEL})
    volumes = client.volumes.list(filters={"label": LABEL})
    return [c.name for c in containers] + [v.name for v in volumes]


def fanned_out(topo: Topology) -> float:
    """Tweets the fan-out workers have fanned out since they started (their own counter): a feed
    read can also rebuild a cold timeline from Cassandra, which would hide a fan-out that never ran."""
    total = 0.0
    for i in range(1, topo.fanout_workers + 1):
        text = httpx.get(f"http://127.0.0.1:{topo.worker_metrics_port(i)}/metrics", timeout=5).text
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("feed_fanout_tweets_total{"))
    return total


def tweet_reaches_follower(api: httpx.Client, topo: Topology, tokens: SharedSecret, author: int, follower: int) -> None:
    def auth(user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.token(user)}"}

    for user in (author, follower):
        assert api.put("/v1/users/me", json={"handle": f"compose{user}"}, headers=auth(user)).status_code == 201
    assert api.post(f"/v1/users/{author}/follow", headers=auth(follower)).status_code == 200
    posted = api.post("/v1/tweets", json={"text": "hello from compose"}, headers=auth(author))
    assert posted.status_code == 201, posted.text
    tweet = posted.json()["tweet_id"]
    end = time.monotonic() + 15
    seen: list[str] = []
    while time.monotonic() < end and tweet not in seen:
        seen = [str(t["tweet_id"]) for t in api.get("/v1/feed", headers=auth(follower)).json()["tweets"]]
        time.sleep(0.2)
    assert tweet in seen, f"tweet {tweet} not in the follower's feed after 15 s: {seen}"
    while time.monotonic() < end and fanned_out(topo) < 1:
        time.sleep(0.2)
    assert fanned_out(topo) >= 1, "no fan-out worker fanned the tweet out"


def refused(api: httpx.Client, tokens: SharedSecret) -> bool:
    return api.get("/v1/feed", headers={"Authorization": f"Bearer {tokens.token(1)}"}).status_code == 401


def test_one_compose_up_serves_the_reference_target() -> None:
    topo = Topology()
    check_ports_free(topo.all_ports())          # the committed file uses the default ports
    images = feedlab("images", timeout=900)     # also tags them :latest, the names the file uses
    assert images.returncode == 0, images.stdout[-2000:] + images.stderr[-2000:]
    try:
        up = compose("up", "-d", timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        with httpx.Client(timeout=5) as http:
            assert http.get(f"{topo.prometheus_url}/-/ready").status_code == 200
            for port in (topo.redis_exporter_port, topo.nginx_exporter_port, topo.node_exporter_port):
                assert http.get(f"http://127.0.0.1:{port}/metrics").status_code == 200, port
        made = compose("exec", "-T", "api-1", "cat", str(SECRET_FILE)).stdout.strip()
        assert len(made) == 64, made
        with httpx.Client(base_url=topo.api_url, timeout=5) as api:
            assert refused(api, SharedSecret("x" * 64))
            tweet_reaches_follower(api, topo, SharedSecret(made), author=701, follower=702)

            given = "s" * 40                        # a secret given at `up` replaces the one made
            again = compose("up", "-d", secret=given, timeout=600)
            assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
            assert compose("exec", "-T", "api-2", "cat", str(SECRET_FILE)).stdout.strip() == given
            assert refused(api, SharedSecret(made))
            tweet_reaches_follower(api, topo, SharedSecret(given), author=703, follower=704)
        states = service_states()
        assert set(states) >= ONE_SHOT | {"toxiproxy", "kafka", "cassandra", "nginx", "prometheus", "node-exporter"}
        for name, state in states.items():
            assert state == ("exited(0)" if name in ONE_SHOT else "running"), (name, state, states)
    finally:
        down = compose("down", "-v", "--timeout", "15", timeout=300)
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
    assert left_behind() == []
