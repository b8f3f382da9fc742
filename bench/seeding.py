"""Graph seeding benchmark (issue 4: "large seeded in minutes, not hours"): how long each step
of getting a graph into a fresh stack takes, cold (nothing cached) and warm. Prints figures;
asserts nothing.

    .cache/venv/bin/python -m bench.seeding [--size large] [--base-port 26000]

1. Cold: generate the graph and write its SSTables into an empty graph cache (a temporary one,
   so the real cache is neither used nor disturbed); then the same again, warm (cache hits).
2. Start a stack on its own port block, import the SSTables (`nodetool import`, then a count)
   and preheat every timeline.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from harness import seeding
from harness.runtime.local import LocalRuntime
from harness.topology import Topology
from targets.feed.cache import preheat
from workloads.graph import GraphSize, GraphSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=[s.value for s in GraphSize], default=GraphSize.DEFAULT.value)
    ap.add_argument("--base-port", type=int, default=26000)
    args = ap.parse_args()
    spec = GraphSpec.preset(GraphSize(args.size))
    topo = Topology(base_port=args.base_port)
    with tempfile.TemporaryDirectory(prefix="feedlab-seedbench-") as tmp:
        work = Path(tmp)
        # A cache of its own: the jars and venv stay where they are, only graphs go to `work`.
        (work / "cache").mkdir()
        for name in ("jars", "bin"):
            os.symlink(seeding.cache_dir() / name, work / "cache" / name)
        os.environ["FEEDLAB_CACHE"] = str(work / "cache")

        def say(message: str) -> None:
            print(f"  {message}", flush=True)

        started = time.monotonic()
        graph, folder = seeding.prepare(spec, progress=say)
        cold = time.monotonic() - started
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        writer_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        started = time.monotonic()
        seeding.prepare(spec)
        warm = time.monotonic() - started
        sizes = {"graph.edges": (folder / "graph.edges").stat().st_size / 2**20,
                 "sstables": sum(f.stat().st_size for f in (folder / "sstables").rglob("*") if f.is_file()) / 2**20}
        runtime = LocalRuntime(topo=topo, stack_dir=work / "stack",
                               target_env={"FEED_TOKEN_SECRET": secrets.token_hex(16)})
        runtime.up()
        try:
            started = time.monotonic()
            seeding.import_edges(graph, folder, topo)
            imported = time.monotonic() - started
            started = time.monotonic()
            preheat(topo.redis_proxy_addresses(), list(graph.user_ids))
            preheated = time.monotonic() - started
        finally:
            runtime.down()
            shutil.rmtree(work / "stack", ignore_errors=True)
    print()
    print(f"graph                 : {args.size}, {spec.users:,} users, {graph.edge_count:,} follows "
          f"({2 * graph.edge_count + 2 * spec.users:,} rows with the users and their handles)")
    print(f"generate + SSTables   : {cold:7.1f} s cold, {warm:.2f} s warm (cached); peak memory: generator "
          f"{peak_gib:.2f} GiB, SSTable writer {writer_gib:.2f} GiB")
    print(f"on disk               : graph.edges {sizes['graph.edges']:.0f} MiB, SSTables {sizes['sstables']:.0f} MiB")
    print(f"nodetool import, check: {imported:7.1f} s")
    print(f"preheat timelines     : {preheated:7.1f} s")
    loaded = imported + preheated
    print(f"seeding a fresh stack : {cold + loaded:7.1f} s cold, {warm + loaded:.1f} s warm")


if __name__ == "__main__":
    main()
