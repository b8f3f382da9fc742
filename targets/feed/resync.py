"""Timeline shards whose readers stay on the store path while the shard catches up (design §10,
timeline cache node failure: "fall back to reading directly from Cassandra while cache
rebuilds").

While a timeline shard cannot answer, its readers are served by the store fan-in, which holds
every tweet stored. When the shard answers again (a replica promoted, a link back), it does not
yet hold the appends the fan-out worker could not give it meanwhile: they wait in the worker's
batch or in its retry lane a few seconds more. A reader served from the store during the
outage and by the shard just after it would see tweets it was shown disappear, then come back
(a page walk skipping them). So a shard is *held*, its readers served from the store, until
RESYNC_S after the last sign of trouble. Two signs, because each API instance must know by
itself (a reader's pages go to either instance):
- a timeline read of the shard failed in this instance (any fault: a dead node, a cut link);
- the cluster, polled every WATCH_S, shows the shard's primary failing or replaced by a
  promotion (an instance that served none of the shard's reads during the outage still knows).

A shard is a slot range of CLUSTER NODES; until the first poll answers, a failed read holds
its slot alone.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from typing import Any

# In the default campaign's Redis primary kill (failover 3.7 s after the kill), the fan-out lag
# of tweets posted at the kill peaked at 9.75 s: their appends landed about 6 s after the
# failover. A failover slower than the worker's PARK_AFTER_S (10 s) parks them, and the retry
# lane applies them once the shard answers. RESYNC_S leaves room over both.
RESYNC_S = 20.0
WATCH_S = 0.5
SLOTS = 16384

Range = tuple[int, int]


class ShardHolds:
    """Which slot ranges' readers the store serves now (one per API process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, resync_s: float = RESYNC_S) -> None:
        self._clock = clock
        self._resync_s = resync_s
        self._ranges: list[Range] = []          # sorted, from the last CLUSTER NODES
        self._primary: dict[Range, str] = {}    # range -> its primary's node id
        self._until: dict[Range, float] = {}

    def cluster_nodes(self, nodes: Mapping[str, Mapping[str, Any]]) -> None:
        """A CLUSTER NODES reply as redis-py parses it (address -> node_id, flags, slots): a range
        whose primary is failing, or is another node than at the last poll, is held."""
        primaries: dict[Range, str] = {}
        failing: set[Range] = set()
        for node in nodes.values():
            if "master" not in str(node["flags"]):
                continue
            for lo, *hi in node["slots"]:
                rng = (int(lo), int(hi[0] if hi else lo))
                primaries[rng] = str(node["node_id"])
                if "fail" in str(node["flags"]):    # fail, or fail? (suspected by the node asked)
                    failing.add(rng)
        now = self._clock()
        for rng, node_id in primaries.items():
            if rng in failing or self._primary.get(rng, node_id) != node_id:
                self._until[rng] = now + self._resync_s
        self._primary, self._ranges = primaries, sorted(primaries)

    def failed(self, slot: int) -> None:
        """A timeline read of `slot` failed in this process: hold its shard."""
        self._until[self._range_of(slot)] = self._clock() + self._resync_s

    def held(self, slot: int) -> bool:
        """Whether the readers of `slot` are to be served from the store."""
        if not self._until:
            return False
        rng = self._range_of(slot)
        until = self._until.get(rng)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._until[rng]
        return False

    def _range_of(self, slot: int) -> Range:
        i = bisect.bisect_right(self._ranges, (slot, SLOTS)) - 1
        if i >= 0 and self._ranges[i][0] <= slot <= self._ranges[i][1]:
            return self._ranges[i]
        return (slot, slot)
