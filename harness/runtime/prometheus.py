"""Prometheus and the exporters that let it see every component.

Scraped every second: the API instances and fan-out workers (their own /metrics: the lag and
freshness figures the checks judge), nginx (stub_status exporter), Toxiproxy (its proxy metrics)
and the machine (node_exporter). Every SLOW_SCRAPE_S: Kafka and Cassandra (JMX exporter agents)
and every Redis node (one redis_exporter, multi-target), whose figures only draw the report's
resource lanes. Scraped every second, those three cost the idle stack 17 % of a core (Cassandra
9.8 % of a core, 1.8 % with Prometheus stopped; Kafka 11.8 against 6.7; the Redis exporter 2.5),
taken from the stack under test on a 2-core machine.
"""

from __future__ import annotations

import httpx
import yaml

from harness.runtime.component import Component
from harness.runtime.process import ProcessSpec, wait_until

SLOW_SCRAPE_S = 5


class Prometheus(Component):
    role = "prometheus"

    def _config(self) -> dict[str, object]:
        t = self.topo

        def job(name: str, ports: list[int], path: str = "/metrics", every_s: int = 1) -> dict[str, object]:
            return {"job_name": name, "metrics_path": path, "scrape_interval": f"{every_s}s",
                    "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}

        redis_targets = [f"redis://127.0.0.1:{t.redis_port(i)}" for i in range(1, len(t.redis_names()) + 1)]
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "5s"},
            "scrape_configs": [
                job("feed-api", [t.api_port(i) for i in range(1, t.api_instances + 1)]),
                job("fanout-worker", [t.worker_metrics_port(i) for i in range(1, t.fanout_workers + 1)]),
                job("kafka", [t.kafka_jmx_exporter_port], every_s=SLOW_SCRAPE_S),
                job("cassandra", [t.cassandra_jmx_exporter_port], every_s=SLOW_SCRAPE_S),
                job("nginx", [t.nginx_exporter_port]),
                job("node", [t.node_exporter_port]),
                job("toxiproxy", [t.toxiproxy_port]),
                {"job_name": "redis", "metrics_path": "/scrape", "scrape_interval": f"{SLOW_SCRAPE_S}s",
                 "static_configs": [{"targets": redis_targets}],
                 "relabel_configs": [
                     {"source_labels": ["__address__"], "target_label": "__param_target"},
                     {"source_labels": ["__param_target"], "target_label": "instance"},
                     {"target_label": "__address__", "replacement": f"127.0.0.1:{t.redis_exporter_port}"}]},
            ],
        }

    def prepare(self) -> None:
        t = self.topo
        data = self.ctx.data("prometheus")
        conf = data / "prometheus.yml"
        conf.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        specs = [
            ProcessSpec("prometheus", [
                "/usr/bin/prometheus", f"--config.file={conf}", f"--storage.tsdb.path={data / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{t.prometheus_port}", "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=2d"], self.ctx.log("prometheus"), cwd=data, image="prometheus"),
            ProcessSpec("redis-exporter", [
                "/usr/bin/prometheus-redis-exporter", f"-web.listen-address=127.0.0.1:{t.redis_exporter_port}"],
                self.ctx.log("redis-exporter"), image="exporters"),
            ProcessSpec("nginx-exporter", [
                "/usr/bin/prometheus-nginx-exporter", f"-web.listen-address=127.0.0.1:{t.nginx_exporter_port}",
                f"-nginx.scrape-uri=http://127.0.0.1:{t.nginx_status_port}/stub_status"],
                self.ctx.log("nginx-exporter"), image="exporters"),
            ProcessSpec("node-exporter", [
                "/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{t.node_exporter_port}",
                "--collector.disable-defaults", "--collector.cpu", "--collector.meminfo", "--collector.loadavg",
                "--collector.netdev"], self.ctx.log("node-exporter"), image="exporters"),
        ]
        self.procs = {s.name: self.ctx.spawn(s) for s in specs}

    def wait_ready(self, deadline_s: float) -> None:
        url = f"http://127.0.0.1:{self.topo.prometheus_port}/-/ready"
        wait_until(lambda: httpx.get(url, timeout=1).status_code == 200, deadline_s=deadline_s,
                   proc=self.procs["prometheus"], what="ready")
