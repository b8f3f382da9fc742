"""nginx: the load balancer in front of the API instances (and its stub_status for Prometheus)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from harness.runtime.component import Component, port_open
from harness.runtime.process import ProcessSpec, wait_until

# Every error nginx itself can answer (its own, not the API's: those pass through untouched, as
# proxy_intercept_errors is off) and the API's JSON error for it. 494 is nginx's internal code
# for a request header too large, which it would send as a 400: sent as 431, what HTTP calls it.
OWN_ERRORS: dict[int, tuple[int, str, str]] = {   # nginx's code -> (status sent, code, message)
    400: (400, "bad_request", "the request could not be parsed"),
    404: (404, "not_found", "Not Found"),
    405: (405, "method_not_allowed", "method not allowed"),
    408: (408, "request_timeout", "the request was not received in time"),
    411: (411, "length_required", "a request body needs a Content-Length"),
    413: (413, "too_large", "request body over 64 KiB"),
    414: (414, "uri_too_long", "the request URI is too long"),
    494: (431, "headers_too_large", "a request header field is too large"),
    500: (500, "internal", "the load balancer failed"),
    501: (501, "not_implemented", "the request uses a transfer coding this service does not implement"),
    502: (502, "unavailable", "no API instance answered"),
    503: (503, "unavailable", "the service is unavailable"),
    504: (504, "timeout", "no API instance answered in time"),
}


def scratch_paths(data: Path) -> str:
    """The http-block lines that keep nginx's temporary files under `data` (made here), not in
    a system directory the harness may not own."""
    lines = []
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (data / sub).mkdir(parents=True, exist_ok=True)
        lines.append(f"  {sub}_temp_path {data}/{sub};")
    return "\n".join(lines)


ERROR_PREFIX = "/__feedlab_error/"   # internal locations: a request from outside gets the API's 404


def request_uri_regex(path: str) -> str:
    """A Starlette route path ("/v1/users/{user_id}") as an nginx regex on `$request_uri` (the
    request as sent, with its query string: an error page's internal redirect changes `$uri`)."""
    return "^" + re.sub(r"\\\{[^}]+\\\}", "[^/?]+", re.escape(path)) + r"(\?|$)"


def allow_map(routes: Iterable[tuple[str, Iterable[str]]]) -> str:
    """An nginx `map` from the request path to the methods its route allows (the `Allow` header
    of nginx's own 405, e.g. to TRACE, which nginx refuses before proxying). First match wins,
    as in Starlette's router; a path no route has maps to "" (answered 404)."""
    lines = ["  map $request_uri $feed_allow {", '    default "";']
    for path, methods in routes:
        allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
        lines.append(f'    "~{request_uri_regex(path)}" "{", ".join(allowed)}";')
    lines.append("  }")
    return "\n".join(lines)


def error_pages() -> str:
    """The server-block lines that answer each of nginx's own errors with the API's JSON shape.
    Error pages are internal URIs, not named locations: nginx cannot redirect a request whose
    URI it could not parse (a 400, a 414) to a named location."""
    out = []
    for own, (status, code, message) in OWN_ERRORS.items():
        body = json.dumps({"error": {"code": code, "message": message}})
        # "=": the status the location returns (405's may be a 404 for a path no route has).
        out.append(f"    error_page {own} ={'' if own == 405 else status} {ERROR_PREFIX}{own};")
        out.append(f"    location = {ERROR_PREFIX}{own} {{")
        out.append("      internal;")
        out.append("      default_type application/json;")
        if own == 405:
            not_found = json.dumps({"error": {"code": "not_found", "message": "Not Found"}})
            out.append('      if ($feed_allow = "") {')
            out.append(f"        return 404 '{not_found}';")
            out.append("      }")
            out.append("      add_header Allow $feed_allow always;")
        out.append(f"      return {status} '{body}';")
        out.append("    }")
    return "\n".join(out)


class Nginx(Component):
    role = "nginx"
    name = "nginx"

    def prepare(self) -> None:
        from targets.feed.app import ROUTES  # the target's route table (a heavy import: only here)

        t = self.topo
        data = self.ctx.data(self.name)
        # max_fails=3: one slow response (a degraded read during a failover) must not eject an
        # instance; a frozen one still is, after three timeouts. Every instance is listed again
        # as a backup that is never ejected: when all are ejected at once (both stalled past
        # proxy_read_timeout on a machine saturated by a store failover), nginx answered every
        # request with a 502 "no live upstreams" for the 5 s of fail_timeout; slow answers are
        # better than none.
        # Each instance is reached through nginx's own Toxiproxy link to it (`nginx->api-N`).
        ports = [t.nginx_link_port(i) for i in range(1, t.api_instances + 1)]
        upstreams = "\n".join([f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;" for p in ports]
                               + [f"    server 127.0.0.1:{p} backup max_fails=0;" for p in ports])
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
{allow_map((route.path, route.methods or ()) for route in ROUTES)}
  upstream feed_api {{
{upstreams}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{t.nginx_port} backlog=4096;
    client_max_body_size 64k;
    # The balancer's own errors are JSON with a code, like every answer of the API (the API's
    # own error responses pass through untouched: proxy_intercept_errors is off).
{error_pages()}
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
      # Not on a 503: that is the API's answer about a store (or its request deadline), the same
      # from every instance, and nginx counts each such attempt against the instance: during
      # a store outage both were ejected and every request, reads included, got a 502.
      proxy_next_upstream error timeout http_502;
      # Two tries at most: with the backups listed, a request could otherwise wait out
      # proxy_read_timeout on every entry of the upstream.
      proxy_next_upstream_tries 2;
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
        self.procs = {self.name: self.ctx.spawn(ProcessSpec(self.name, argv, self.ctx.log(self.name), cwd=data,
                                                            image="nginx"))}

    def wait_ready(self, deadline_s: float) -> None:
        wait_until(lambda: port_open(self.topo.nginx_port), deadline_s=deadline_s, proc=self.procs[self.name],
                   what="listening")
