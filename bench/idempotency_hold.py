"""What holding an idempotency key in the store costs Cassandra, per keyed post (guards.py):
the lightweight transaction every keyed post runs (INSERT IF NOT EXISTS), against what posts
that found Redis answering did before 2026-12-05 (read the hold, then write it plainly; here the
write is a statement of its own, where it was in the tweet's batch, which costs a little less),
which let two racing attempts of one key both make a tweet. Prints Cassandra's CPU (user + system,
from /proc) and the wall time per post, both sides interleaved over rounds, median and range.
Asserts nothing.

    .cache/venv/bin/python -m bench.idempotency_hold [--posts 600] [--in-flight 8] [--rounds 6] [--base-port 26000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.runtime.local import LocalRuntime
from harness.topology import Topology
from targets.feed.store import connect

HOLD = ("INSERT INTO feed.idempotency_keys (user_id, key_digest, tweet_id) VALUES (?, ?, ?)"
        " IF NOT EXISTS USING TTL 600")
READ = "SELECT tweet_id FROM feed.idempotency_keys WHERE user_id = ? AND key_digest = ?"
WRITE = "INSERT INTO feed.idempotency_keys (user_id, key_digest, tweet_id) VALUES (?, ?, ?) USING TTL 600"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=600, help="posts per side per round")
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--base-port", type=int, default=26000)
    args = ap.parse_args()
    topo = Topology(base_port=args.base_port)
    with tempfile.TemporaryDirectory(prefix="feedlab-bench-") as tmp:
        runtime = LocalRuntime(topo=topo, stack_dir=Path(tmp), target_env={"FEED_TOKEN_SECRET": secrets.token_hex(32)},
                               progress=lambda m: print(f"  stack: {m}", flush=True))
        runtime.up()
        try:
            pid = runtime.processes()["cassandra"][1].pid
            assert pid is not None
            cluster, session = connect(f"127.0.0.1:{topo.cassandra_port}")
            hold, read, write = (session.prepare(q) for q in (HOLD, READ, WRITE))

            def transaction(user: int, digest: str) -> None:
                session.execute(hold, (user, digest, user))

            def read_then_write(user: int, digest: str) -> None:
                if not session.execute(read, (user, digest)).one():
                    session.execute(write, (user, digest, user))

            def measure(post: Callable[[int, str], None]) -> tuple[float, float]:
                cpu, start = cpu_seconds(pid), time.perf_counter()
                with ThreadPoolExecutor(args.in_flight) as pool:
                    list(pool.map(lambda i: post(i, uuid.uuid4().hex), range(args.posts)))
                return ((cpu_seconds(pid) - cpu) / args.posts * 1000,
                        (time.perf_counter() - start) / args.posts * 1000)

            sides: dict[str, Callable[[int, str], None]] = {
                "lightweight transaction (now)": transaction, "read, then plain write (before)": read_then_write}
            got: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    got[name].append(measure(sides[name]))
                print(f"  round {r + 1}/{args.rounds} done", flush=True)
            cluster.shutdown()
            print(f"\n{args.posts} posts per side per round, {args.in_flight} in flight, {args.rounds} rounds:")
            for name, figures in got.items():
                cpu = [c for c, _ in figures]
                wall = [w for _, w in figures]
                print(f"{name:32}: Cassandra CPU {statistics.median(cpu):.2f} ms/post ({min(cpu):.2f}-{max(cpu):.2f}),"
                      f" wall {statistics.median(wall):.2f} ms/post ({min(wall):.2f}-{max(wall):.2f})")
        finally:
            runtime.down()


if __name__ == "__main__":
    main()
