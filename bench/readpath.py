"""Read-path benchmark (issue 3): GET /v1/feed requests/s at p99 < 200 ms ÷ the same figure for
a bare Starlette JSON route served the same way (same uvicorn flags and ports, behind the same
nginx), on the same machine in the same run. Goal >= 0.5. Also: the feed's p99 at the default
campaign's steady read rate (goal < 50 ms). Prints figures; asserts nothing.

    .cache/venv/bin/python -m bench.readpath [--base-port 26000] [--step-s 20]

1. Start the local stack on its own port block, seed the small graph, post tweets through the
   API until timelines hold a few pages, wait for fan-out to drain, read every user's feed
   once, warm up for one step at the campaign's read rate (steady state: follow sets and
   timelines cached).
2. Feed: step the offered rate up (feedlab's own load process, the campaigns' open model:
   feed reads by power-law users, 30 % of them reading a second page) until p99 >= 200 ms,
   errors >= 1 %, or the generator could not keep its schedule (an arrival dropped, more than
   1 % late, or 90 % of a core busy).
3. Two floors (bench/bare_app.py): the API instances are replaced, on the same ports, by an
   app that makes a feed page's Redis reads and answers a canned page; same steps. The reads
   floor makes the feed's reads (the page script, then the hydration reads of the ids it
   gave); its figure ÷ the bare route's is the most this design's read path can reach here,
   whatever its code: it says whether the goal is reachable on this machine. The one-read
   floor makes only the page script: the most any feed making one Redis call per page could
   reach.
4. Bare route: the bare app on the same ports; same steps.

Latency is measured from each request's intended send time (coordinated omission counted), as
in a campaign. Locust's FastHttpUser with a constant throughput per user, used here before,
added latency of its own that grew with the rate (20 ms p50 at 1,000/s against the bare app
alone, where this generator measures 1 ms), which capped both sides by p99 long before their
CPU. The load process runs on the same 2 cores as the target.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import random
import re
import secrets
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from bench.open_load import OpenStep, run_open_load
from harness import seeding
from harness.runtime.local import LocalRuntime
from harness.runtime.process import ManagedProcess, wait_until
from harness.settle import wait_for_fanout
from harness.topology import Topology
from targets.feed.auth import issue_token
from workloads.graph import Graph, GraphSize, GraphSpec
from workloads.scenario import resolve

P99_LIMIT_MS = 200.0
SATURATED_CPU = 90.0
CPU_RATE = 300   # arrivals/s of the CPU-accounting step (about 1.3 requests each): well under both capacities
FEED_STEPS = (50, 100, 200, 300, 400, 500, 650, 800, 1000, 1250, 1500)
@dataclasses.dataclass(frozen=True)
class Yardstick:
    factory: str   # the uvicorn factory in bench/bare_app.py
    name: str
    does: str
    bounds: str    # what its figure ÷ the bare route's says ("" for the bare route itself)


# Measured after the feed, in this order; the bare route last: every ratio is of its figure.
YARDSTICKS = {
    "page_reads": Yardstick("bench.bare_app:create_page_reads_app", "reads floor",
                            "the feed's Redis reads for each page, then a canned page",
                            "the most this design's read path could reach here, whatever its code"),
    "one_read": Yardstick("bench.bare_app:create_one_read_app", "one-read floor",
                          "one Redis call per page, then a canned page",
                          "the most a feed making one Redis call per page could reach here"),
    "bare": Yardstick("bench.bare_app:create_app", "bare route",
                      "a bare Starlette JSON route, served the same way", ""),
}
BARE_STEPS = (100, 200, 400, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000)


@dataclasses.dataclass(frozen=True)
class Load:
    """What every step needs: the seeded graph, the token secret, a folder for run directories."""
    graph: Graph
    secret: str
    workdir: Path
    steps: itertools.count[int] = dataclasses.field(default_factory=itertools.count)


def holds(step: OpenStep) -> bool:
    return (step.p99_ms < P99_LIMIT_MS and step.errors < 0.01 * max(1, step.requests) and step.generator_valid
            and step.cores * 100 < SATURATED_CPU)


def line(step: OpenStep) -> str:
    if step.cores * 100 >= SATURATED_CPU:
        flag = "  GENERATOR SATURATED"
    elif step.dropped:
        flag = "  ARRIVALS DROPPED (the target held the generator's in-flight limit)"
    elif not step.generator_valid:
        flag = "  ARRIVALS LATE"
    else:
        flag = ""
    return (f"  offered {step.offered:6.0f}/s  achieved {step.achieved:7.1f}/s  p50 {step.p50_ms:6.1f} ms  "
            f"p99 {step.p99_ms:6.1f} ms  errors {step.errors:5d}/{step.requests:<6d} "
            f"generator {step.cores * 100:5.1f} % of a core, dropped {step.dropped}, late {step.late_share:.1%}{flag}")


def run_step(url: str, rate: float, seconds: int, load: Load) -> OpenStep:
    return run_open_load(url, {"feed": rate}, seconds, load.workdir / f"step-{next(load.steps)}-{int(rate)}",
                         load.graph, load.secret)


def cpu_seconds(runtime: LocalRuntime, extra: Sequence[ManagedProcess] = ()) -> dict[str, float]:
    """CPU seconds used so far by each kind of stack process ("api", "redis", "toxiproxy", ...),
    children included."""
    pids = [(s.name, s.pid) for s in runtime.status() if s.pid] + [(p.spec.name, p.pid) for p in extra if p.pid]
    out: dict[str, float] = {}
    for name, pid in pids:
        try:
            procs = [psutil.Process(pid)]
            procs += procs[0].children(recursive=True)
            used = sum(t.user + t.system for t in (p.cpu_times() for p in procs))
        except psutil.Error:
            continue
        kind = re.sub(rf"^({'|'.join(YARDSTICKS)})-", "", re.sub(r"-\d+$", "", name))
        out[kind] = out.get(kind, 0.0) + used
    return out


def cpu_per_request(name: str, runtime: LocalRuntime, url: str, rate: float, seconds: int, load: Load,
                    extra: Sequence[ManagedProcess] = ()) -> float:
    """One step at `rate`, with the CPU each kind of stack process spent per request (ms of one
    core): where a request's cost goes, and so the most requests/s 2 cores could serve."""
    before = cpu_seconds(runtime, extra)
    step = run_step(url, rate, seconds, load)
    after = cpu_seconds(runtime, extra)
    served = step.achieved * seconds
    per = {k: (after[k] - before.get(k, 0.0)) * 1000 / served for k in after if served}
    shown = sorted(((k, v) for k, v in per.items() if v >= 0.005), key=lambda kv: -kv[1])
    total = sum(per.values())
    print(f"{name}: CPU per request at {step.achieved:.0f}/s, ms of one core: "
          + ", ".join(f"{k} {v:.2f}" for k, v in shown) + f"; total {total:.2f} "
          f"(the stack alone could serve at most {2000 / total:.0f}/s on 2 cores)", flush=True)
    return total


def capacity(name: str, url: str, steps: tuple[int, ...], seconds: int, load: Load) -> tuple[float, list[OpenStep]]:
    """The highest achieved rate of a step that held; stepping stops at the first that did not."""
    print(f"{name}:", flush=True)
    best, done = 0.0, []
    for rate in steps:
        step = run_step(url, rate, seconds, load)
        done.append(step)
        print(line(step), flush=True)
        if not holds(step):
            break
        best = max(best, step.achieved)
    return best, done


def fill_timelines(url: str, secret: str, users: list[int], tweets: int) -> None:
    rng = random.Random(3)
    authors = [rng.choice(users) for _ in range(tweets)]

    with httpx.Client(base_url=url, timeout=10) as client, ThreadPoolExecutor(8) as pool:   # one pool of connections
        def one(author: int) -> None:
            client.post("/v1/tweets", json={"text": f"bench tweet by {author}"},
                        headers={"Authorization": f"Bearer {issue_token(secret, author)}"})

        list(pool.map(one, authors))


def read_every_feed(url: str, secret: str, users: list[int]) -> None:
    """One feed read per user, so every follow set is cached before anything is measured (the
    warm-up step alone, drawing users at random, left about half of them to the first step)."""
    with httpx.Client(base_url=url, timeout=10) as client, ThreadPoolExecutor(8) as pool:
        def one(user: int) -> None:
            client.get("/v1/feed?limit=20", headers={"Authorization": f"Bearer {issue_token(secret, user)}"})

        list(pool.map(one, users))


def healthy(url: str) -> bool:
    return httpx.get(url, timeout=1).status_code == 200


def swap_in(runtime: LocalRuntime, workdir: Path, kind: str, replacing: Sequence[ManagedProcess],
            ) -> list[ManagedProcess]:
    """The API instances (or the `replacing` yardstick processes on their ports) replaced by
    uvicorn serving yardstick `kind` (a key of YARDSTICKS), same flags, same ports."""
    started = []
    for p in replacing:
        p.stop()
    for name in runtime.topo.api_names():
        spec = runtime.processes()[name][1].spec
        if not replacing:
            runtime.kill(name)
        argv = [a if a != "targets.feed.app:create_app" else YARDSTICKS[kind].factory for a in spec.argv]
        proc = ManagedProcess(dataclasses.replace(spec, name=f"{kind}-{name}", argv=argv,
                                                  log=workdir / f"{kind}-{name}.log"))
        proc.start()
        started.append(proc)
        health = f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/healthz"
        wait_until(functools.partial(healthy, health), deadline_s=30, proc=proc, what="healthy")
    return started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-port", type=int, default=26000)
    ap.add_argument("--step-s", type=int, default=20, help="seconds of load per step")
    ap.add_argument("--tweets", type=int, default=4000, help="tweets posted before measuring")
    args = ap.parse_args()
    topo = Topology(base_port=args.base_port)
    graph, graph_folder = seeding.prepare(GraphSpec.preset(GraphSize.SMALL))
    steady = resolve("smoke").workload.phases[0].rates   # the default campaign's steady phase: all its reads
    campaign_read_rate = steady.feed + steady.delta + steady.profile
    secret = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="feedlab-bench-") as tmp:
        workdir = Path(tmp)
        runtime = LocalRuntime(topo=topo, stack_dir=workdir / "stack", target_env={"FEED_TOKEN_SECRET": secret},
                               progress=lambda m: print(f"  stack: {m}", flush=True))
        runtime.up()
        yardstick: list[ManagedProcess] = []
        try:
            seeding.load(graph, graph_folder, topo)
            users = list(graph.user_ids)
            print(f"posting {args.tweets} tweets through the API ...", flush=True)
            fill_timelines(topo.api_url, secret, users, args.tweets)
            wait_for_fanout(f"127.0.0.1:{topo.kafka_proxy_port}", deadline_s=300)
            load = Load(graph=graph, secret=secret, workdir=workdir / "load")
            print(f"reading each of the {len(users)} users' feeds once ...", flush=True)
            read_every_feed(topo.api_url, secret, users)

            print(f"warm-up at the default campaign's steady read rate ({campaign_read_rate:.0f}/s), not counted:",
                  flush=True)
            print(line(run_step(topo.api_url, campaign_read_rate, args.step_s, load)), flush=True)
            print(f"feed at the default campaign's steady read rate ({campaign_read_rate:.0f}/s):", flush=True)
            at_campaign = run_step(topo.api_url, campaign_read_rate, args.step_s * 2, load)
            print(line(at_campaign), flush=True)
            feed_cpu = cpu_per_request("GET /v1/feed", runtime, topo.api_url, CPU_RATE, args.step_s, load)
            feed_rps, _ = capacity("GET /v1/feed (the reference target)", topo.api_url, FEED_STEPS, args.step_s, load)
            cpu, rps = {}, {}
            for kind, y in YARDSTICKS.items():
                yardstick = swap_in(runtime, workdir, kind, yardstick)
                cpu[kind] = cpu_per_request(y.name, runtime, topo.api_url, CPU_RATE, args.step_s, load, extra=yardstick)
                rps[kind], _ = capacity(f"{y.name} ({y.does})", topo.api_url, BARE_STEPS, args.step_s, load)
            print()
            print(f"feed p99 at {campaign_read_rate:.0f} reads/s : {at_campaign.p99_ms:8.1f} ms   (goal < 50 ms)")
            print(f"feed at p99 < 200 ms: {feed_rps:6.0f} requests/s")
            for kind, y in YARDSTICKS.items():
                print(f"{y.name} at p99 < 200 ms: {rps[kind]:6.0f} requests/s")

            def of_bare(n: float) -> float:
                return n / rps["bare"] if rps["bare"] else float("nan")

            print(f"ratio (feed ÷ bare route): {of_bare(feed_rps):5.2f}   (goal >= 0.5)")
            for kind, y in YARDSTICKS.items():
                if y.bounds:
                    print(f"{y.name} ÷ bare route: {of_bare(rps[kind]):5.2f}   ({y.bounds})")
            print(f"stack CPU per request: feed {feed_cpu:.2f} ms, "
                  + ", ".join(f"{y.name} {cpu[kind]:.2f} ms" for kind, y in YARDSTICKS.items())
                  + f" (bare ÷ feed {cpu['bare'] / feed_cpu:.2f})")
        finally:
            for p in yardstick:
                p.stop()
            runtime.down()


if __name__ == "__main__":
    main()
