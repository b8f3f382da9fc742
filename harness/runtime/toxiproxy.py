"""Toxiproxy: the only road from clients to the stores.

One proxy per client→store link: `redis-N` for each Redis node, `kafka`, `cassandra`. The proxy
list is given at start (`-config`), so proxies exist before any store or client starts.
"""

from __future__ import annotations

import json

import httpx

from harness.paths import tool
from harness.runtime.component import Component
from harness.runtime.process import ManagedProcess, ProcessSpec, wait_until


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
        for p in out:
            p["enabled"] = True
        return out

    def prepare(self) -> None:
        data = self.ctx.data(self.name)
        config = data / "proxies.json"
        config.write_text(json.dumps(self.proxies(), indent=2))
        argv = [str(tool("toxiproxy-server")), "-host", "127.0.0.1", "-port", str(self.topo.toxiproxy_port),
                "-config", str(config), "-proxy-metrics"]
        self.procs = {self.name: ManagedProcess(ProcessSpec(self.name, argv, self.ctx.log(self.name)))}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.topo.toxiproxy_port}"

    def wait_ready(self, deadline_s: float) -> None:
        wanted = {p["name"] for p in self.proxies()}

        def ready() -> bool:
            got = httpx.get(f"{self.api}/proxies", timeout=1).json()
            return wanted <= set(got)

        wait_until(ready, deadline_s=deadline_s, proc=self.procs[self.name], what="serving its proxies")
