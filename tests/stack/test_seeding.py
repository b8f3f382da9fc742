"""Graph seeding through SSTables (harness/seeding.py) into the stack's real Cassandra."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness import seeding
from targets.feed.store import Store
from tests.stack.conftest import Stack
from workloads.graph import Graph, GraphSpec

pytestmark = pytest.mark.stack

# Ids no other stack test uses. The last users are above the ones every session registers
# (conftest.REGISTERED_USERS): this import registers them.
AUTHOR, FAN = 5001, 5002
SPEC = GraphSpec(users=262_000, celebrities=0, push_threshold=200, pull_threshold=1000)


def _graph(folder: Path, followers: dict[int, list[int]]) -> Graph:
    folder.mkdir()
    Graph.from_followers(SPEC, followers).write(folder)
    return Graph.read(folder)


def _followees(store: Store, user: int) -> list[int]:
    return [r.followee_id for r in store.session.execute(
        "SELECT followee_id FROM feed.follows WHERE follower_id = %s", (user,))]


def test_a_graph_written_as_sstables_is_imported_whole(stack: Stack, store: Store, tmp_path: Path) -> None:
    followers = {AUTHOR: list(range(5100, 5400)), 5003: [FAN, 5100], 5004: [FAN]}
    graph = _graph(tmp_path / "graph", followers)
    seeding.write_sstables(tmp_path / "graph")
    seeding.import_edges(graph, tmp_path / "graph", stack.topo)

    assert store.followers_sync(AUTHOR) == list(range(5100, 5400))
    assert store.followers_sync(5003) == [FAN, 5100]
    assert _followees(store, FAN) == [5003, 5004]
    assert _followees(store, 5100) == [AUTHOR, 5003]
    # Every user of the graph is registered, and acts without registering.
    last = SPEC.users
    assert httpx.get(f"{stack.url}/v1/users/{last}", headers=stack.auth(FAN)).json()["handle"] == f"@user{last}"
    assert httpx.get(f"{stack.url}/v1/feed", headers=stack.auth(last)).status_code == 200


def test_an_import_that_loads_nothing_is_an_error(stack: Stack, tmp_path: Path) -> None:
    """nodetool import exits 0 when it finds no SSTable; the count after it must catch that."""
    graph = _graph(tmp_path / "graph", {5501: [5502, 5503]})
    for table in seeding.TABLES:
        (tmp_path / "graph" / "sstables" / "feed" / table).mkdir(parents=True)   # no SSTables in them
    with pytest.raises(seeding.SeedingError, match="after nodetool import, user 5501 has 0 followers"):
        seeding.import_edges(graph, tmp_path / "graph", stack.topo)


def test_an_import_that_registers_nobody_is_an_error(stack: Stack, tmp_path: Path) -> None:
    spec = GraphSpec(users=263_000, celebrities=0, push_threshold=200, pull_threshold=1000)   # 263000: unregistered
    folder = tmp_path / "graph"
    folder.mkdir()
    Graph.from_followers(spec, {}).write(folder)
    for table in seeding.TABLES:
        (folder / "sstables" / "feed" / table).mkdir(parents=True)
    with pytest.raises(seeding.SeedingError, match="user 263000 is not registered as @user263000"):
        seeding.import_edges(Graph.read(folder), folder, stack.topo)


def test_a_writer_failure_says_why(tmp_path: Path) -> None:
    _graph(tmp_path / "graph", {5601: [5602]})
    edges = tmp_path / "graph" / "graph.edges"
    edges.write_bytes(b"NOTGRAPH" + edges.read_bytes()[8:])
    with pytest.raises(seeding.SeedingError, match="(?s)SSTable writer failed.*not a feedlab graph.edges file"):
        seeding.write_sstables(tmp_path / "graph")
    assert not (tmp_path / "graph" / "sstables").exists()
