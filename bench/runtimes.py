"""The local and docker runtimes side by side (issue 18): for each, interleaved and repeated,

- `up` to ready: from the start of LocalRuntime.up() / DockerRuntime.up() to every component
  healthy (images already built: `feedlab images` first; its cold and warm times are its own);
- the idle stack's memory: the resident memory of every component's processes, summed (the same
  measure for both: psutil's RSS of each process tree; the containers' trees start at their
  docker-init), and, for docker, what the engine adds (dockerd, containerd and the shims);
- the default campaign (`feedlab run smoke`): feed p99 outside faults, freshness median, and
  its verdict.

Prints the median and range over the repeats. Asserts nothing.

    .cache/venv/bin/python -m bench.runtimes [--repeats 3] [--port 27000] [--no-campaign]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness.runtime.docker_runtime import DockerRuntime
from harness.runtime.local import LocalRuntime
from harness.topology import Topology

ENGINE = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")


def tree_rss(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in (root, *root.children(recursive=True)))
    except psutil.NoSuchProcess:
        return 0


def engine_rss() -> int:
    return sum(p.info["memory_info"].rss for p in psutil.process_iter(["name", "memory_info"])
               if p.info["name"] in ENGINE and p.info["memory_info"] is not None)


def up_and_idle(kind: str, port: int, workdir: Path) -> tuple[float, float, float]:
    """(seconds to ready, stack RSS MiB after 20 s idle, engine RSS MiB with the stack up)"""
    cls = DockerRuntime if kind == "docker" else LocalRuntime
    rt = cls(topo=Topology(base_port=port), stack_dir=workdir / f"{kind}-{time.time_ns()}",
             target_env={"FEED_TOKEN_SECRET": secrets.token_hex(32)})
    try:
        t0 = time.monotonic()
        rt.up()
        ready = time.monotonic() - t0
        time.sleep(20)
        rss = sum(tree_rss(proc.pid) for _c, proc in rt.processes().values())
        engine = engine_rss() if kind == "docker" else 0
    finally:
        rt.down()
    return ready, rss / 2**20, engine / 2**20


def campaign(kind: str, port: int, workdir: Path) -> tuple[float, float, str]:
    """(feed p99 ms outside faults, freshness median s, verdict) of `feedlab run smoke`."""
    run = workdir / f"smoke-{kind}-{time.time_ns()}"
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "smoke", "--runtime", kind, "--base-port", str(port),
                    "--run-dir", str(run)], capture_output=True, text=True, timeout=1800)
    summary = json.loads((run / "summary.json").read_text())
    headline = summary["headline"]
    return float(headline["feed_p99_ms"] or "nan"), float(headline["freshness_median_s"] or "nan"), \
        str(summary["verdict"])


def spread(values: list[float], fmt: str = ".1f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port", type=int, default=27000)
    ap.add_argument("--no-campaign", action="store_true", help="only `up` and idle memory")
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {k: {} for k in ("local", "docker")}
    verdicts: dict[str, list[str]] = {"local": [], "docker": []}
    with tempfile.TemporaryDirectory(prefix="feedlab-runtimes-bench-") as tmp:
        for r in range(args.repeats):
            for kind in (("local", "docker") if r % 2 == 0 else ("docker", "local")):
                ready, rss, engine = up_and_idle(kind, args.port, Path(tmp))
                got = results[kind]
                got.setdefault("ready_s", []).append(ready)
                got.setdefault("rss_mib", []).append(rss)
                got.setdefault("engine_mib", []).append(engine)
                line = f"repeat {r + 1} {kind:6}: up {ready:5.1f} s, idle stack {rss:6.0f} MiB"
                if kind == "docker":
                    line += f" (+ engine {engine:.0f} MiB)"
                if not args.no_campaign:
                    p99, fresh, verdict = campaign(kind, args.port, Path(tmp))
                    got.setdefault("p99_ms", []).append(p99)
                    got.setdefault("fresh_s", []).append(fresh)
                    verdicts[kind].append(verdict)
                    line += f"; smoke feed p99 {p99:.1f} ms, freshness median {fresh:.2f} s, {verdict}"
                print(line, flush=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"\nmedian (range) over {args.repeats} runs each, interleaved; git {sha}")
    for kind, got in results.items():
        line = (f"{kind:6}: up to ready {spread(got['ready_s'])} s; idle stack RSS {spread(got['rss_mib'], '.0f')} MiB")
        if kind == "docker":
            line += f" + engine {spread(got['engine_mib'], '.0f')} MiB"
        if "p99_ms" in got:
            line += (f"; smoke feed p99 {spread(got['p99_ms'])} ms, "
                     f"freshness median {spread(got['fresh_s'], '.2f')} s; verdicts {', '.join(verdicts[kind])}")
        print(line)


if __name__ == "__main__":
    main()
