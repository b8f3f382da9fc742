"""One real reference stack for the whole `stack` tier (started once, stopped at the end).

It runs on its own port block, so a stack a developer has up on the default ports is left
alone. At the end of the session every process it started must be gone.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from harness import seeding
from harness.runtime.local import LocalRuntime
from harness.runtime.process import ManagedProcess
from harness.settle import lane_group_sizes, wait_for_fanout
from harness.topology import Topology
from targets.feed.auth import issue_token
from targets.feed.store import Store
from workloads.graph import Graph, GraphSpec

# FEEDLAB_STACK_TESTS_PORT: another port block, to run some of these beside a suite that holds this one
BASE_PORT = int(os.environ.get("FEEDLAB_STACK_TESTS_PORT", "21000"))
# Users 1 to this are registered at the start of the session (handle "user<id>"); ids above it
# are not, for tests of registration and of unknown users.
REGISTERED_USERS = 260_000
SECRET = secrets.token_hex(32)   # this test session's token secret (the stack is started with it)


def eventually(check: Callable[[], bool], within_s: float = 10) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def drained(stack: Stack, within_s: float) -> bool:
    """Whether every fan-out lane consumed everything within `within_s` (the harness's settle step)."""
    return wait_for_fanout(f"127.0.0.1:{stack.topo.kafka_proxy_port}", within_s)[0]


def feed_ids(c: httpx.Client, stack: Stack, user: int) -> list[str]:
    return [t["tweet_id"] for t in c.get("/v1/feed?limit=100", headers=stack.auth(user)).json()["tweets"]]


def post(c: httpx.Client, stack: Stack, author: int, text: str) -> str:
    r = c.post("/v1/tweets", headers=stack.auth(author), json={"text": text})
    assert r.status_code == 201, r.text
    return str(r.json()["tweet_id"])


def metric_total(ports: Iterable[int], name: str, **labels: str) -> float:
    """A Prometheus counter summed over the processes serving /metrics on `ports` (0 where it
    has no sample yet), its samples picked by `labels`."""
    total = 0.0
    for port in ports:
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


class Stack:
    def __init__(self, runtime: LocalRuntime, secret: str) -> None:
        self.runtime = runtime
        self.topo = runtime.topo
        self.secret = secret
        self.url = runtime.topo.api_url

    def auth(self, user_id: int) -> dict[str, str]:
        """Headers to act as `user_id` (registered if below REGISTERED_USERS)."""
        return {"Authorization": f"Bearer {issue_token(self.secret, user_id)}"}


def register_users(topo: Topology, workdir: Path) -> None:
    """Register users 1 to REGISTERED_USERS as a campaign seeds its graph's users (SSTables of
    feed.users and feed.handles, imported), so that every test acts as an existing account."""
    folder = workdir / "registry"
    folder.mkdir()
    Graph.from_followers(GraphSpec(users=REGISTERED_USERS, celebrities=0, push_threshold=200, pull_threshold=1000),
                         {}).write(folder)
    seeding.write_sstables(folder)
    seeding.import_edges(Graph.read(folder), folder, topo)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    secret = SECRET
    stack_dir: Path = tmp_path_factory.mktemp("stack")
    runtime = LocalRuntime(topo=Topology(base_port=BASE_PORT), stack_dir=stack_dir,
                           target_env={"FEED_TOKEN_SECRET": secret, "FEED_PUSH_THRESHOLD": "200",
                                       "FEED_PULL_THRESHOLD": "1000"})
    runtime.up()
    pids: list[int] = []
    try:
        register_users(runtime.topo, stack_dir)
        yield Stack(runtime, secret)
    finally:
        pids = [s.pid for s in runtime.status() if s.pid]
        runtime.down()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left behind after down(): {alive}"


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client on the stack's load balancer."""
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


@pytest.fixture
def store(stack: Stack) -> Iterator[Store]:
    """The stack's Cassandra, for set-ups the API has no call for (bulk follows, tier flags)."""
    s = Store(f"127.0.0.1:{stack.topo.cassandra_proxy_port}")
    yield s
    s.close()


@pytest.fixture
def rc(stack: Stack) -> Iterator[redis.RedisCluster]:
    """The stack's Redis Cluster, to look at what the target keeps there."""
    c = redis.RedisCluster(host="127.0.0.1", port=stack.topo.redis_proxy_port(1), decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def sibling_api(stack: Stack, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start an extra API instance with its own settings (a defect switch, a small rate limit)
    against the same stores; returns its base URL. Stopped after the test."""
    from harness.runtime.process import ProcessSpec, wait_until

    started: list[ManagedProcess] = []

    def start(extra_env: dict[str, str]) -> str:
        port = stack.topo.base_port + 590 + len(started)
        argv = [sys.executable, "-m", "uvicorn", "--factory", "targets.feed.app:create_app", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-access-log"]
        env = {**stack.runtime.feed.env(), "FEED_MACHINE_ID": str(20 + len(started)), **extra_env}
        proc = ManagedProcess(ProcessSpec(f"sibling-{port}", argv, tmp_path / f"sibling-{port}.log", env=env))
        proc.start()
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, deadline_s=30, proc=proc,
                   what="healthy")
        return url

    yield start
    for proc in started:
        proc.stop()


def group_sizes(stack: Stack) -> dict[str, int]:
    """Members of each fan-out worker consumer group (lane), as the Kafka coordinator sees them."""
    return lane_group_sizes(f"127.0.0.1:{stack.topo.kafka_proxy_port}")


@dataclasses.dataclass
class SiblingWorker:
    metrics: str                    # its /metrics URL
    proc: ManagedProcess
    hand_back: Callable[[], None]   # stop it and give the lanes back to the stack's workers


@pytest.fixture
def sibling_worker(stack: Stack, tmp_path: Path) -> Iterator[Callable[[dict[str, str]], SiblingWorker]]:
    """Hand the fan-out work to one worker started with its own settings (a defect switch) for
    the test: the stack's workers are paused, and their partitions move to it once their Kafka
    sessions expire (about 10 s). Afterwards (or at `hand_back`) it stops, the workers resume,
    and the test waits until they own every lane again."""
    from harness.runtime.feed import WORKER_NICE
    from harness.runtime.process import ProcessSpec, wait_until

    workers = stack.topo.worker_names()
    started: list[ManagedProcess] = []

    def hand_back() -> None:
        was_started = bool(started)
        for proc in started:
            proc.stop()
        started.clear()
        for w in workers:
            stack.runtime.resume(w)
        if was_started:
            assert eventually(lambda: set(group_sizes(stack).values()) == {len(workers)}, within_s=60)

    def start(extra_env: dict[str, str]) -> SiblingWorker:
        port = stack.topo.base_port + 599
        env = {**stack.runtime.feed.env(), "FEED_METRICS_PORT": str(port), **extra_env}
        proc = ManagedProcess(ProcessSpec(f"sibling-worker-{port}", [sys.executable, "-m", "targets.feed.worker"],
                                          tmp_path / "sibling-worker.log", env=env, nice=WORKER_NICE))
        for w in workers:
            stack.runtime.pause(w)
        proc.start()
        started.append(proc)
        wait_until(lambda: set(group_sizes(stack).values()) == {1}, deadline_s=60, proc=proc,
                   what="the only member of every lane", interval=1.0)
        return SiblingWorker(f"http://127.0.0.1:{port}/metrics", proc, hand_back)

    try:
        yield start
    finally:
        hand_back()


@pytest.fixture
def whole(stack: Stack) -> Iterator[Stack]:
    """The shared stack for a test that breaks it: proven whole afterwards, whatever the
    assertions said (the heal sweep finds nothing left behind)."""
    from chaos.sweep import sweep
    from harness.campaign import StoreConfig

    yield stack
    rt = stack.runtime
    left = sweep(rt.toxiproxy.client, rt, rt.redis, StoreConfig(rt.topo))
    assert left.clean, left.to_json()
