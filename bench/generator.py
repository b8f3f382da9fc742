"""Generator-efficiency benchmark (issue 4): requests/s per core of feedlab's workload process
÷ the same figure for a plain Locust FastHttpUser, both against nginx answering a static 2 KB
JSON on this machine, in the same run. Goal >= 0.8. Prints figures; asserts nothing.

    .cache/venv/bin/python -m bench.generator [--port 28900] [--step-s 15]

- Plain Locust: FastHttpUser GETs in a closed loop (no wait), flat out, one process: its
  requests/s over its CPU (cores busy) is the ceiling of one Locust process here.
- feedlab: the campaign's own load process (harness.load.LoadGenerator running
  workloads/locustfile.py, open model, the steady mix of operations, every request recorded in
  history.jsonl as in a campaign) at rising arrival rates. A step counts while the generator is
  valid by its own rules (no dropped arrival, at most 1 % late); its requests/s over its CPU is
  feedlab's figure, taken at the highest valid step. From 1,000 arrivals/s per process the
  workload sends arrivals due within 0.5 ms on one wake-up (workloads/locustfile.py, BATCH_S).

nginx answers every path and method with the same body, which is shaped like a feed page so
the workload's parsing runs as in a campaign. CPU is sampled once a second (median of the
samples, so start-up does not count). The machine has other work: nginx shares it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from pathlib import Path

from bench.locust_run import run_locust
from bench.open_load import OpenStep, cores_busy, run_open_load
from harness.runtime.component import port_open
from harness.runtime.nginx import scratch_paths
from harness.runtime.process import ManagedProcess, ProcessSpec, wait_until
from workloads.graph import Graph, GraphSize, GraphSpec, generate
from workloads.scenario import resolve

PLAIN_LOCUSTFILE = Path(__file__).with_name("plain_locustfile.py")
FEEDLAB_STEPS = (250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000)


def body_2kb() -> str:
    """A feed page of about 2 KB: what the workload parses (tweets, next_cursor, tweet_id, retweet_id)."""
    tweets = [{"tweet_id": str(7_100_000_000_000_000 + i), "author": {"user_id": str(100 + i)}, "text": "x" * 120,
               "created_at": "2026-11-24T12:00:00Z", "likes": i, "media": []} for i in range(9)]
    # tweet_id and retweet_id: what a post, a like and a retweet read from their answers
    return json.dumps({"tweets": tweets, "next_cursor": None, "tweet_id": "7100000000000000001",
                       "retweet_id": "7100000000000000002"})


def start_nginx(workdir: Path, port: int) -> ManagedProcess:
    data = workdir / "nginx"
    body = body_2kb().replace("'", "\\'")
    conf = data / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
pid {data}/nginx.pid;
error_log {data}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{scratch_paths(data)}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
}}
""")
    proc = ManagedProcess(ProcessSpec("bench-nginx", ["nginx", "-p", str(data), "-c", str(conf)],
                                      data / "nginx.log", cwd=data))
    proc.start()
    wait_until(lambda: port_open(port), deadline_s=15, proc=proc, what="listening")
    return proc


def plain_locust(url: str, seconds: int, workdir: Path) -> tuple[float, float]:
    """(requests/s, cores busy) of a plain FastHttpUser flat out."""
    prefix = workdir / "plain"
    row, samples = run_locust(PLAIN_LOCUSTFILE, url, users=32, seconds=seconds, prefix=prefix,
                              log=workdir / "plain-locust.log")
    return float(row["Requests/s"]), cores_busy(samples[2:])


def feedlab_step(url: str, rate: float, seconds: int, workdir: Path, graph: Graph) -> OpenStep:
    mix = resolve("smoke").workload.phases[0].rates.as_dict()
    total = sum(mix.values())
    return run_open_load(url, {op: rate * r / total for op, r in mix.items()}, seconds,
                         workdir / f"feedlab-{int(rate)}", graph, secrets.token_hex(16))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=28900)
    ap.add_argument("--step-s", type=int, default=15, help="seconds of load per step")
    args = ap.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    graph = generate(GraphSpec.preset(GraphSize.SMALL))
    with tempfile.TemporaryDirectory(prefix="feedlab-genbench-") as tmp:
        workdir = Path(tmp)
        nginx = start_nginx(workdir, args.port)
        try:
            plain_rps, plain_cores = plain_locust(url, args.step_s, workdir)
            plain_per_core = plain_rps / plain_cores if plain_cores else float("nan")
            print(f"plain Locust FastHttpUser, flat out : {plain_rps:7.0f} requests/s on {plain_cores:.2f} cores "
                  f"= {plain_per_core:7.0f} per core", flush=True)
            best = None
            for rate in FEEDLAB_STEPS:
                step = feedlab_step(url, rate, args.step_s, workdir, graph)
                per_core = step.achieved / step.cores if step.cores else float("nan")
                print(f"feedlab workload, offered {rate:5.0f}/s: achieved {step.achieved:7.1f}/s on "
                      f"{step.cores:.2f} cores = {per_core:7.0f} per core; dropped {step.dropped}, "
                      f"late {step.late_share:.1%}{'' if step.generator_valid else '  (generator invalid: stop)'}",
                      flush=True)
                if not step.generator_valid:
                    break
                best = (step, per_core)
            print()
            if best is None:
                print("feedlab's workload was not valid at the lowest step")
                return
            step, per_core = best
            print(f"feedlab workload at its highest valid step ({step.offered:.0f}/s): {per_core:7.0f} requests/s "
                  "per core")
            print(f"plain Locust FastHttpUser                     : {plain_per_core:7.0f} requests/s per core")
            print(f"ratio                                         : {per_core / plain_per_core:7.2f}   (goal >= 0.8)")
        finally:
            nginx.stop()


if __name__ == "__main__":
    main()
