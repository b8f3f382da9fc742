"""Worker-crash stall benchmark (issue 17's goal: stall <= 0.25 of the Kafka session, 2.5 s): the
time from a fan-out worker's SIGKILL to its `fanout` group's next generation without it, with
the workers' peer watch (targets/feed/peers.py) and without it (FEED_PEER_PROBE_MS=0, Kafka's
session alone). Prints figures; asserts nothing (timing goals live here, not in tests).

    .cache/venv/bin/python -m bench.worker_stall [--rounds 5] [--base-port 27000]

Kafka's log has the broker's local time without a zone, read here as this machine's local time
(the broker is a child of this process, with its environment).

Two local stacks run side by side (base port and base port + 1000), one per setting, idle. Each
round kills worker-1 in one and then in the other (interleaved), reads the coordinator's log for
the first "Stabilized group fanout generation" after the kill, restarts the worker and waits for
every lane's group to have both workers again.
"""

from __future__ import annotations

import argparse
import functools
import re
import secrets
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from harness.runtime.local import LocalRuntime
from harness.runtime.process import wait_until
from harness.settle import lane_group_sizes
from harness.topology import KAFKA_SESSION_TIMEOUT_MS, Topology

# The generation without the killed worker (a line "with 2 members" would be a join before it).
STABILIZED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] .*Stabilized group fanout generation \d+ "
                        r"\(\S+\) with 1 members")


def full(topo: Topology) -> bool:
    """Whether every lane's group has every worker."""
    return set(lane_group_sizes(f"127.0.0.1:{topo.kafka_proxy_port}").values()) == {topo.fanout_workers}


def stall_s(runtime: LocalRuntime) -> float:
    """SIGKILL worker-1; seconds until the coordinator stabilized the `fanout` group without it."""
    log = runtime.log_path("kafka")
    already = log.stat().st_size
    killed_at = time.time()
    runtime.kill("worker-1")
    found: list[float] = []

    def stabilized() -> bool:
        with log.open() as f:
            f.seek(already)
            for line in f:
                m = STABILIZED.match(line)
                if m:
                    found.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
                    return True
        return False

    wait_until(stabilized, deadline_s=60, proc=None, what="the fanout group's next generation", interval=0.2)
    return found[0] - killed_at


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base-port", type=int, default=27000)
    args = ap.parse_args()
    settings = {"peer watch": "200", "session only": "0"}
    stalls: dict[str, list[float]] = {name: [] for name in settings}
    session_s = KAFKA_SESSION_TIMEOUT_MS / 1000
    with tempfile.TemporaryDirectory(prefix="feedlab-bench-") as tmp:
        runtimes = {name: LocalRuntime(topo=Topology(base_port=args.base_port + 1000 * i),
                                       stack_dir=Path(tmp) / f"stack-{i}",
                                       target_env={"FEED_TOKEN_SECRET": secrets.token_hex(32),
                                                   "FEED_PEER_PROBE_MS": probe_ms})
                    for i, (name, probe_ms) in enumerate(settings.items())}
        try:
            for runtime in runtimes.values():
                runtime.up()
            for name, runtime in runtimes.items():   # both workers in every lane before the first kill
                wait_until(functools.partial(full, runtime.topo), deadline_s=90, proc=None, what=f"{name}'s groups")
            for r in range(1, args.rounds + 1):
                for name, runtime in runtimes.items():
                    stall = stall_s(runtime)
                    stalls[name].append(stall)
                    print(f"round {r}: {name}: stall {stall:.2f} s", flush=True)
                    runtime.restart("worker-1")
                    wait_until(functools.partial(full, runtime.topo), deadline_s=90, proc=None,
                               what=f"{name}'s groups")
        finally:
            for runtime in runtimes.values():
                runtime.down()
    print(f"\nstall from SIGKILL to the fanout group's generation without the worker, {args.rounds} rounds each, "
          f"interleaved (the Kafka session is {session_s:.0f} s, the goal {session_s / 4:.1f} s):")
    for name, values in stalls.items():
        print(f"  {name:13s} median {statistics.median(values):5.2f} s, range {min(values):.2f}-{max(values):.2f} s")


if __name__ == "__main__":
    main()
