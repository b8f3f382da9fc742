"""What a run against a service feedlab did not start puts back of the seeded graph, so that the
next run need not seed it again (harness/api_seeding.py's note): the pairs the load touched, as
the graph has them. The calls themselves are proven on a reference stack in
tests/campaign/test_external_target.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import records
from harness.api_seeding import IN_USE, SEEDED, note, restore_calls
from harness.campaign import changed_pairs, load_was_whole
from workloads.graph import Graph, GraphSpec

pytestmark = pytest.mark.unit


def graph() -> Graph:
    """2 and 3 follow 1; 1 follows 3."""
    return Graph.from_followers(GraphSpec(users=4, celebrities=0, push_threshold=200, pull_threshold=1000),
                                {1: [2, 3], 3: [1]})


def test_a_pair_the_graph_has_is_followed_again_and_one_it_has_not_unfollowed() -> None:
    calls = restore_calls(graph(), [(2, 1), (4, 1), (2, 1), (3, 3), (1, 3)])
    assert calls == [("POST", "/v1/users/3/follow", 1, None),     # seeded: followed again
                     ("POST", "/v1/users/1/follow", 2, None),     # (once, though asked twice)
                     ("DELETE", "/v1/users/1/follow", 4, None)]   # not seeded: unfollowed
    assert restore_calls(graph(), []) == []


def test_every_follow_and_unfollow_the_load_asked_for_is_a_changed_pair_answered_or_not(tmp_path: Path) -> None:
    def request(op: str, user: int | None, target: str | None, status: int | None) -> dict[str, object]:
        return {"t": 1.0, "op": op, "latency_ms": 5.0, "status": status, "error": None if status else "timeout",
                "phase": "steady", "user": user, "target": target}
    with records.JsonlWriter(tmp_path / records.HISTORY) as out:
        for r in (request("follow", 2, "4", 200), request("unfollow", 3, "1", None),   # no answer: may have landed
                  request("follow_large", 1, "2", 200), request("rising_follow", 4, "3", 502),
                  request("feed", 2, None, 200), request("like", 2, "99", 200),        # not a follow
                  request("unfollow", None, "1", None)):                              # (no user: nothing to undo)
            out.write(r)
    assert changed_pairs(tmp_path) == {(2, 4), (3, 1), (1, 2), (4, 3)}


def test_the_note_names_the_graph_and_whether_a_run_may_have_changed_it() -> None:
    seeded, in_use = note(graph().digest(), SEEDED), note(graph().digest(), IN_USE)
    assert seeded == f"feedlab graph {graph().digest()} seeded" and in_use.endswith(" in use")
    assert len(seeded) <= 50 and len(in_use) <= 50   # a display name is at most 50 characters
    other = Graph.from_followers(GraphSpec(users=4, celebrities=0, push_threshold=200, pull_threshold=1000), {1: [2]})
    assert note(other.digest(), SEEDED) != seeded


def test_only_a_load_with_a_record_of_every_request_leaves_the_graph_noted_seeded(tmp_path: Path) -> None:
    assert load_was_whole(tmp_path, answered=True)
    assert not load_was_whole(tmp_path, answered=False)   # aborted, or requests outlived the drain
    with records.JsonlWriter(tmp_path / records.GENERATORS) as out:
        out.write({"t": 1.0, "event": "joined", "generator": "g-1"})
        out.write({"t": 2.0, "event": "lost", "generator": "g-1"})
    assert not load_was_whole(tmp_path, answered=True)   # what it sent since its last shipment is unknown
