"""The social graph: generated reproducibly, written as graph.json + graph.edges, read back mapped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import records
from workloads.graph import Graph, GraphSize, GraphSpec, generate

pytestmark = pytest.mark.unit

SMALL = GraphSpec.preset(GraphSize.SMALL)


@pytest.fixture(scope="module")
def small() -> Graph:
    return generate(SMALL)


def test_the_same_spec_gives_the_same_graph_and_another_seed_another(small: Graph) -> None:
    assert generate(SMALL).digest() == small.digest()
    assert generate(GraphSpec.preset(GraphSize.SMALL, seed=2)).digest() != small.digest()


def test_the_shape_follows_the_spec(small: Graph) -> None:
    assert len(small.celebrities) == SMALL.celebrities
    assert all(list(small.followers_of(a)) == sorted(set(small.followers_of(a))) for a in small.authors)
    assert all(a not in small.followers_of(a) for a in small.authors)   # nobody follows themselves
    rising = small.rising
    assert small.is_push_tier(rising)
    assert all(small.follower_count(a) <= small.follower_count(rising) for a in small.authors if small.is_push_tier(a))


def test_a_written_graph_reads_back_identical(small: Graph, tmp_path: Path) -> None:
    small.write(tmp_path)
    back = Graph.read(tmp_path)
    assert back.digest() == small.digest() and back.edge_count == small.edge_count
    assert back.celebrities == small.celebrities and back.rising == small.rising
    author = small.authors[10]
    assert list(back.followers_of(author)) == list(small.followers_of(author))
    follower = small.followers_of(author)[0]
    assert back.follows(follower, author) and not back.follows(author, author)
    meta = json.loads((tmp_path / records.GRAPH).read_text())
    assert meta["edge_count"] == small.edge_count and "followers" not in meta   # the edges are binary
    assert (tmp_path / records.GRAPH_EDGES).stat().st_size == 8 + 4 * (2 + SMALL.users + 2 + small.edge_count)


def test_a_graph_json_with_its_followers_inline_still_reads(tmp_path: Path) -> None:
    """Run directories from before graph.edges listed every follower in graph.json."""
    records.write_json(tmp_path / records.GRAPH, {"seed": 7, "users": 6, "hash": "h", "push_threshold": 2,
                                                  "pull_threshold": 5, "followers": {"1": [3, 2], "5": [1]}})
    graph = Graph.read(tmp_path)
    assert list(graph.followers_of(1)) == [2, 3] and list(graph.followers_of(5)) == [1]
    assert graph.followers_of(7) == () and graph.authors == [1, 5]
    assert graph.follows(3, 1) and not graph.follows(4, 1)
    records.write_json(tmp_path / records.GRAPH, {"users": 6, "pull_threshold": 5, "followers": {"9": [1]}})
    with pytest.raises(ValueError, match=r"within 1..6: authors \[9\]"):
        Graph.read(tmp_path)


def test_a_damaged_edges_file_is_refused(small: Graph, tmp_path: Path) -> None:
    small.write(tmp_path)
    edges = tmp_path / records.GRAPH_EDGES
    whole = edges.read_bytes()
    edges.write_bytes(whole[:-4])
    with pytest.raises(ValueError, match="truncated"):
        Graph.read(tmp_path)
    edges.write_bytes(b"NOTGRAPH" + whole[8:])
    with pytest.raises(ValueError, match="not a feedlab graph.edges file"):
        Graph.read(tmp_path)
