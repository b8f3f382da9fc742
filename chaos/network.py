"""Network faults through Toxiproxy: a toxic on a link, or links down.

invoke: resolve the target (`redis-primary-1` is whichever node is that primary now) to its
link, then add the toxic (named `feedlab-<kind>-<id>`, so that the heal sweep can tell what is
left behind) or disable the proxy. A link that is down or that stops data (`timeout`) takes a
Redis primary's slots away from the clients: they are recorded, as a kill records them, for the
availability check. heal: remove the toxic or enable the proxy again.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from chaos.fault import Links, RedisClusterView, resolve_redis_role
from harness.topology import links_of, role_link
from records import FaultWindow

# toxics after which a store node is as good as gone to its clients
_CUTS = frozenset({"down", "partition", "timeout", "reset_peer"})


class _LinkFault:
    def __init__(self, name: str, target: str, links: Links, cluster: RedisClusterView) -> None:
        self.name = name
        self.target = target
        self.links = links
        self.cluster = cluster
        self.window = FaultWindow(name, target=target)
        self._link: str | None = None
        self._proxies: list[str] = []
        self._healed = False

    def _resolve(self) -> dict[str, Any]:
        """The link's node now (`redis-primary-1` is whichever node has that role), and the
        Toxiproxy proxies to act on: every client's link to the node, or one role's."""
        client, _, named = self.target.rpartition("->")
        node = resolve_redis_role(named, self.cluster)
        link = f"{client}->{node}" if client else node
        self.window.target = link
        self._proxies = [role_link(client, node)] if client else links_of(node)
        details: dict[str, Any] = {"link": link, "proxies": self._proxies}
        if node != named:
            details["role"] = named
        # a cut that takes a primary's slots away from readers (the API's link, or everyone's)
        if self.name in _CUTS and client in ("", "api") and node.startswith("redis-") \
                and node in self.cluster.primaries():
            details["slots"] = [list(r) for r in self.cluster.slots_of(node)]
        return details

    def heal(self) -> None:
        if self._link is None or self._healed:
            return
        for proxy in self._proxies:
            self._undo(proxy)
        self._healed = True
        self.window.end_t = time.time()
        self.window.event("healed", link=self._link)

    def _undo(self, proxy: str) -> None:
        raise NotImplementedError


class ToxicFault(_LinkFault):
    """One Toxiproxy toxic (latency, bandwidth, slow_close, timeout, reset_peer, slicer,
    limit_data) on one link."""

    def __init__(self, kind: str, target: str, links: Links, cluster: RedisClusterView, *, stream: str,
                 toxicity: float, **attributes: float) -> None:
        super().__init__(kind, target, links, cluster)
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = {k: int(v) for k, v in attributes.items()}
        self.toxic = f"feedlab-{kind}-{uuid.uuid4().hex[:8]}"

    def invoke(self) -> None:
        details = self._resolve()
        self.window.start_t = time.time()
        self._link = details["link"]
        for proxy in self._proxies:
            self.links.add_toxic(proxy, self.toxic, self.name, self.stream, self.toxicity, **self.attributes)
        self.window.event("toxic-added", toxic=self.toxic, stream=self.stream, toxicity=self.toxicity,
                          attributes=self.attributes, **details)

    def _undo(self, proxy: str) -> None:
        self.links.remove_toxic(proxy, self.toxic)


class LinkDown(_LinkFault):
    """The link disabled: connections refused, open ones dropped (`down`; `partition` is the
    same for every link of a node, which a node's name means too)."""

    def invoke(self) -> None:
        details = self._resolve()
        self.window.start_t = time.time()
        self._link = details["link"]
        for proxy in self._proxies:
            self.links.set_enabled(proxy, False)
        self.window.event("link-down", **details)

    def _undo(self, proxy: str) -> None:
        self.links.set_enabled(proxy, True)
