"""Which shards' readers the store serves: a shard whose timeline read failed here, or whose
primary the cluster shows failing or replaced, until RESYNC_S after the last such sign; no
other shard. (The failover on the real stack is tests/stack/test_degradation.py's.)"""

from __future__ import annotations

from typing import Any

import pytest

from targets.feed.resync import ShardHolds

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def nodes(*primaries: tuple[str, str, list[list[str]]]) -> dict[str, dict[str, Any]]:
    """CLUSTER NODES as redis-py parses it: (node id, flags, slot ranges) of each node."""
    return {f"127.0.0.1:{7000 + i}": {"node_id": n, "flags": f, "slots": s}
            for i, (n, f, s) in enumerate(primaries)}


HEALTHY = nodes(("a", "master", [["0", "5460"]]), ("b", "myself,master", [["5461", "10922"]]),
                ("c", "master", [["10923", "16383"]]), ("d", "slave", []))


def test_a_failed_read_holds_its_whole_shard_until_quiet_for_resync_s() -> None:
    clock = Clock()
    holds = ShardHolds(clock, resync_s=20)
    holds.cluster_nodes(HEALTHY)
    assert not holds.held(100)
    holds.failed(100)
    clock.t += 15
    holds.failed(5000)                     # the outage goes on: the quiet period starts again
    clock.t += 19
    assert holds.held(0) and holds.held(5460)
    assert not holds.held(5461) and not holds.held(16383)   # other shards: the cache
    clock.t += 1
    assert not holds.held(100)


def test_a_failing_or_promoted_primary_holds_its_shard_for_an_instance_that_saw_no_failure() -> None:
    clock = Clock()
    holds = ShardHolds(clock, resync_s=20)
    holds.cluster_nodes(HEALTHY)
    holds.cluster_nodes(nodes(("a", "master,fail?", [["0", "5460"]]), ("b", "master", [["5461", "10922"]]),
                              ("c", "master", [["10923", "16383"]]), ("d", "slave", [])))
    assert holds.held(7) and not holds.held(6000)
    clock.t += 30                          # the suspicion lapsed
    holds.cluster_nodes(HEALTHY)
    assert not holds.held(7)
    promoted = nodes(("a", "master,fail", []), ("b", "master", [["5461", "10922"]]),
                     ("c", "master", [["10923", "16383"]]), ("d", "master", [["0", "5460"]]))
    holds.cluster_nodes(promoted)
    clock.t += 19
    holds.cluster_nodes(promoted)          # the same primary again: no new hold
    assert holds.held(7) and not holds.held(12000)
    clock.t += 1
    assert not holds.held(7)


def test_before_the_cluster_answered_a_failed_read_holds_its_slot_alone() -> None:
    holds = ShardHolds(Clock(), resync_s=20)
    holds.failed(42)
    assert holds.held(42) and not holds.held(43)
