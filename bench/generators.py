"""Generator throughput with 1 and 2 generator processes (issue 18): feedlab's load as a
Locust master and N generators (`feedlab run --generators N`, workloads/distributed.py), against
nginx answering a static feed page on this machine (bench.generator's), at rising arrival
rates; 1 and 2 generators interleaved at each rate, each pair repeated. Prints, per rate and
per N, the answered requests/s and the cores the generators and their master kept busy, as the
median and range over the repeats, and whether the load was valid (no arrival dropped, at most
1 % late). Asserts nothing.

    .cache/venv/bin/python -m bench.generators [--port 28900] [--step-s 15] [--repeats 2]

The machine has 2 cores and nginx shares them: two generators cannot double one generator's
rate here; the figure says how far the split goes on one host, and what the master costs.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
from pathlib import Path

from bench.generator import start_nginx
from bench.open_load import OpenStep, run_open_load
from workloads.graph import GraphSize, GraphSpec, generate
from workloads.scenario import resolve

RATES = (1000, 2000, 4000, 6000, 8000)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=28900)
    ap.add_argument("--step-s", type=int, default=15, help="seconds of load per step")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    graph = generate(GraphSpec.preset(GraphSize.SMALL))
    mix = resolve("smoke").workload.phases[0].rates.as_dict()
    total = sum(mix.values())
    with tempfile.TemporaryDirectory(prefix="feedlab-generators-bench-") as tmp:
        workdir = Path(tmp)
        nginx = start_nginx(workdir, args.port)
        try:
            for rate in RATES:
                steps: dict[int, list[OpenStep]] = {1: [], 2: []}
                for r in range(args.repeats):
                    for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                        steps[n].append(run_open_load(url, {op: rate * v / total for op, v in mix.items()},
                                                      args.step_s, workdir / f"{rate}-{n}-{r}", graph,
                                                      secrets.token_hex(16), generators=n,
                                                      master_port=args.port + 1))
                for n, got in steps.items():
                    valid = sum(s.generator_valid for s in got)
                    print(f"offered {rate:5d}/s, {n} generator(s): answered {spread([s.achieved for s in got])}/s "
                          f"on {spread([s.cores * 100 for s in got])} % of a core; valid in {valid} of {len(got)}; "
                          f"p99 {spread([s.p99_ms for s in got])} ms", flush=True)
        finally:
            nginx.stop()


if __name__ == "__main__":
    main()
