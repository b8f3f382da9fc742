"""nginx: the load balancer in front of the API instances (and its stub_status for Prometheus)."""

from __future__ import annotations

from pathlib import Path

from harness.runtime.component import Component, port_open
from harness.runtime.process import ManagedProcess, ProcessSpec, wait_until


def scratch_paths(data: Path) -> str:
    """The http-block lines that keep nginx's temporary files under `data` (made here), not in
    a system directory the harness may not own."""
    lines = []
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (data / sub).mkdir(parents=True, exist_ok=True)
        lines.append(f"  {sub}_temp_path {data}/{sub};")
    return "\n".join(lines)


class Nginx(Component):
    role = "nginx"
    name = "nginx"

    def prepare(self) -> None:
        t = self.topo
        data = self.ctx.data(self.name)
        # max_fails=3: one slow response (a degraded read during a failover) must not eject an
        # instance; a frozen one still is, after three timeouts.
        upstreams = "\n".join(f"    server 127.0.0.1:{t.api_port(i)} max_fails=3 fail_timeout=5s;"
                              for i in range(1, t.api_instances + 1))
        conf = f"""
daemon off;
# One process: the kernel kills it with its owner (PR_SET_PDEATHSIG), which would not reach the
# worker processes of a master; one event loop is plenty for this machine's load.
master_process off;
pid {data}/nginx.pid;
error_log {self.ctx.log(self.name)} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{scratch_paths(data)}
  upstream feed_api {{
{upstreams}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{t.nginx_port} backlog=4096;
    client_max_body_size 64k;
    # The balancer's own errors are JSON with a code, like every answer of the API (the API's
    # own error responses pass through untouched: proxy_intercept_errors is off).
    error_page 413 @too_large;
    error_page 502 @bad_gateway;
    error_page 504 @gateway_timeout;
    location @too_large {{
      default_type application/json;
      return 413 '{{"error": {{"code": "too_large", "message": "request body over 64 KiB"}}}}';
    }}
    location @bad_gateway {{
      default_type application/json;
      return 502 '{{"error": {{"code": "unavailable", "message": "no API instance answered"}}}}';
    }}
    location @gateway_timeout {{
      default_type application/json;
      return 504 '{{"error": {{"code": "timeout", "message": "no API instance answered in time"}}}}';
    }}
    location /v1/stream {{
      # Server-Sent Events: long-lived, never buffered; the API sends a comment every 15 s.
      proxy_pass http://feed_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 1h;
    }}
    location / {{
      proxy_pass http://feed_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      # An API instance that is down or dies mid-request: try the other one (GETs only;
      # a POST is never replayed by the balancer, the client's idempotency key does that).
      proxy_next_upstream error timeout http_502 http_503;
      # A frozen instance (paused, or stuck) accepts connections but never answers: give up
      # after 3 s, well above any healthy response, and retry idempotent requests elsewhere.
      proxy_connect_timeout 1s;
      proxy_read_timeout 3s;
      proxy_buffering off;
    }}
  }}
  server {{
    listen 127.0.0.1:{t.nginx_status_port};
    location /stub_status {{ stub_status; }}
  }}
}}
"""
        path = data / "nginx.conf"
        path.write_text(conf)
        argv = ["nginx", "-p", str(data), "-c", str(path), "-e", str(self.ctx.log(self.name))]
        self.procs = {self.name: ManagedProcess(ProcessSpec(self.name, argv, self.ctx.log(self.name), cwd=data))}

    def wait_ready(self, deadline_s: float) -> None:
        wait_until(lambda: port_open(self.topo.nginx_port), deadline_s=deadline_s, proc=self.procs[self.name],
                   what="listening")
