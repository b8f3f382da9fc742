"""Time to first report of the default campaign, warm (issue 4): `feedlab run smoke` from the
command to report.html, with the time each stage took (from the run's manifest). Also prints
the campaign's headline figures and the generator's share of the machine. Prints; asserts nothing.

    .cache/venv/bin/python -m bench.time_to_report [--base-port 23000]

"Warm" means installed and cached (`bin/setup` ran): the stack itself starts from nothing, as
every campaign's does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-port", type=int, default=23000)
    ap.add_argument("--scenario", default="smoke")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="feedlab-ttr-") as tmp:
        run = Path(tmp) / "run"
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "harness.cli", "run", args.scenario, "--base-port",
                              str(args.base_port), "--run-dir", str(run)], capture_output=True, text=True)
        wall = time.time() - t0
        report = run / records.REPORT
        if not report.exists():
            print(out.stdout[-3000:], out.stderr[-3000:])
            raise SystemExit(f"no report (exit {out.returncode})")
        written = report.stat().st_mtime - t0
        m = json.loads((run / records.MANIFEST).read_text())
        summary = json.loads((run / records.SUMMARY).read_text())
        stages = [("stack up, graph generated and seeded", m["started_t"], m["load_start_t"]),
                  ("load (the scenario's phases)", m["load_start_t"], m["load_end_t"]),
                  ("settle (fan-out drained)", m["load_end_t"], m["settle_end_t"]),
                  ("final reads, metrics, stack down", m["settle_end_t"], m["ended_t"]),
                  ("checks, gates and reports", m["ended_t"], t0 + written)]
        print(f"feedlab run {args.scenario}: exit {out.returncode}, report after {written:.1f} s "
              f"(command took {wall:.1f} s)")
        for name, a, b in stages:
            print(f"  {name:40s} {b - a:7.1f} s")
        h = summary["headline"]
        print(f"verdict {summary['verdict']}; feed p99 outside faults {h['feed_p99_ms']:.1f} ms; freshness median "
              f"{h['freshness_median_s']:.2f} s; generator {h['generator_machine_share']:.1%} of the machine")
        for op, sides in h["p99_ms_by_op"].items():
            print(f"  {op:15s} p99 outside faults {sides['outside_faults'] or 0:8.1f} ms, "
                  f"inside {sides['inside_faults'] or 0:8.1f} ms")
        print(f"  target: {json.dumps(h['target'])}")


if __name__ == "__main__":
    main()
