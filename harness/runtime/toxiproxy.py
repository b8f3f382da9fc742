"""Toxiproxy: the only road from clients to the stores.

One proxy per client→store link: `redis-N` for each Redis node, `kafka`, `cassandra`, which the
harness and the nodes' replication use, and one per client role and node (`api-to-redis-2`,
`worker-to-kafka`: topology.CLIENT_ROLES), which the API instances and the fan-out workers use.
In front, the load generator's link to nginx (`generator-to-nginx`) and nginx's to each API
instance (`nginx-to-api-1`).
The proxy list is given at start (`-config`), so proxies exist before any store or client starts.

`ToxiproxyApi` is the one client of its REST API (proxies up and down, toxics added and
removed, proxies of a test's own). It is a few httpx calls rather than `toxiproxy-python`:
that client was last released in 2019, pulls in `future`, and keeps the server's address on
the class, so two stacks in one process would share it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from harness.runtime.component import Component
from harness.runtime.process import ProcessSpec, wait_until
from harness.topology import CLIENT_ROLES, GENERATOR_LINK, nginx_link, role_link


class Toxiproxy(Component):
    role = "toxiproxy"
    name = "toxiproxy"

    def proxies(self) -> list[dict[str, object]]:
        t = self.topo
        out: list[dict[str, object]] = [
            {"name": "kafka", "listen": f"127.0.0.1:{t.kafka_proxy_port}", "upstream": f"127.0.0.1:{t.kafka_port}"},
            {"name": "cassandra", "listen": f"127.0.0.1:{t.cassandra_proxy_port}",
             "upstream": f"127.0.0.1:{t.cassandra_port}"},
        ]
        for i, name in enumerate(t.redis_names(), start=1):
            out.append({"name": name, "listen": f"127.0.0.1:{t.redis_proxy_port(i)}",
                        "upstream": f"127.0.0.1:{t.redis_port(i)}"})
        for role in CLIENT_ROLES:   # each client role's own links (topology.CLIENT_ROLES)
            out.append({"name": role_link(role, "kafka"), "listen": f"127.0.0.1:{t.kafka_link_port(role)}",
                        "upstream": f"127.0.0.1:{t.kafka_listener_port(role)}"})
            out.append({"name": role_link(role, "cassandra"), "listen": f"127.0.0.1:{t.cassandra_link_port(role)}",
                        "upstream": f"127.0.0.1:{t.cassandra_port}"})
            for i, name in enumerate(t.redis_names(), start=1):
                out.append({"name": role_link(role, name), "listen": f"127.0.0.1:{t.redis_link_port(role, i)}",
                            "upstream": f"127.0.0.1:{t.redis_port(i)}"})
        # the links in front: the load generator's to nginx, nginx's to each API instance
        out.append({"name": GENERATOR_LINK, "listen": f"127.0.0.1:{t.generator_link_port}",
                    "upstream": f"127.0.0.1:{t.nginx_port}"})
        for i, name in enumerate(t.api_names(), start=1):
            out.append({"name": nginx_link(name), "listen": f"127.0.0.1:{t.nginx_link_port(i)}",
                        "upstream": f"127.0.0.1:{t.api_port(i)}"})
        for p in out:
            p["enabled"] = True
        return out

    def prepare(self) -> None:
        data = self.ctx.data(self.name)
        config = data / "proxies.json"
        config.write_text(json.dumps(self.proxies(), indent=2))
        argv = [self.ctx.layout.toxiproxy, "-host", "127.0.0.1", "-port", str(self.topo.toxiproxy_port),
                "-config", str(config), "-proxy-metrics"]
        # Unset, LOG_LEVEL means every level, trace included: several JSON lines per connection
        # on every link (1,000-1,900 a second in a `shard-lost` fault window, 72 % of them trace
        # and debug; 30,843 lines in one run, 7,804 at `info`). `info` keeps each accepted
        # client and every warning and error. Toxiproxy's CPU hardly moved (17.1 % of a core in
        # that window, 16.4 % at `info`, one run each): this is for the run directory's size.
        self.procs = {self.name: self.ctx.spawn(ProcessSpec(self.name, argv, self.ctx.log(self.name),
                                                            env={"LOG_LEVEL": "info"}, image="toxiproxy"))}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.topo.toxiproxy_port}"

    @property
    def client(self) -> ToxiproxyApi:
        return ToxiproxyApi(self.api)

    def wait_ready(self, deadline_s: float) -> None:
        wanted = {p["name"] for p in self.proxies()}

        def ready() -> bool:
            got = httpx.get(f"{self.api}/proxies", timeout=1).json()
            return wanted <= set(got)

        wait_until(ready, deadline_s=deadline_s, proc=self.procs[self.name], what="serving its proxies")


LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class ToxiproxyApi:
    """Toxiproxy's REST API at `url` (the server's own, `Topology.toxiproxy_port`). Faults go
    only to a Toxiproxy on 127.0.0.1, and its proxies lead only to 127.0.0.1."""
    url: str

    def __post_init__(self) -> None:
        if httpx.URL(self.url).host != LOOPBACK:
            raise ValueError(f"Toxiproxy API {self.url!r}: feedlab drives only a Toxiproxy on {LOOPBACK}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = httpx.request(method, f"{self.url}{path}", json=body, timeout=5)
        r.raise_for_status()
        return r.json() if r.content else None

    def list_proxies(self) -> dict[str, dict[str, Any]]:
        """Every proxy by name, with `enabled` and its `toxics`."""
        return dict(self._call("GET", "/proxies"))

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Disabled: its connections are closed and new ones refused."""
        self._call("POST", f"/proxies/{proxy}", {"enabled": enabled})

    def add_toxic(self, proxy: str, name: str, kind: str, stream: str, toxicity: float = 1.0,
                  **attributes: int) -> None:
        """A toxic (`kind`: latency, timeout, bandwidth, ...) on the `stream` ("upstream": to the
        store, "downstream": its replies), on a `toxicity` share of the connections."""
        self._call("POST", f"/proxies/{proxy}/toxics",
                   {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes})

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Gone afterwards: a toxic that is not there (an add that never arrived) is no error."""
        try:
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise

    def create_proxy(self, name: str, upstream: str) -> str:
        """A new proxy to `upstream` ("127.0.0.1:port") on a free loopback port; the address it
        listens on."""
        if upstream.rsplit(":", 1)[0] != LOOPBACK:
            raise ValueError(f"proxy upstream {upstream!r}: feedlab proxies only to {LOOPBACK}")
        created = self._call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream,
                                                  "enabled": True})
        return str(created["listen"])

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    @contextmanager
    def down(self, proxies: Iterable[str]) -> Iterator[None]:
        """The `proxies` disabled for the body, enabled again however it ends."""
        names = list(proxies)
        try:
            for name in names:
                self.set_enabled(name, False)
            yield
        finally:
            for name in names:
                self.set_enabled(name, True)

    @contextmanager
    def toxic(self, proxy: str, name: str, kind: str, stream: str, **attributes: int) -> Iterator[None]:
        """A toxic for the body, removed however it ends."""
        self.add_toxic(proxy, name, kind, stream, **attributes)
        try:
            yield
        finally:
            self.remove_toxic(proxy, name)
