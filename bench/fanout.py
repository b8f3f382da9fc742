"""Fan-out benchmark (issue 3): timeline inserts/s of the fan-out workers ÷ the ceiling of a
plain redis-py pipelined ZADD + ZREMRANGEBYRANK loop against the same Redis Cluster, same run.
Goal: >= 0.6. Prints figures; asserts nothing (timing goals live here, not in tests).

    .cache/venv/bin/python -m bench.fanout [--tweets 3000] [--base-port 26000]

1. Start the local stack on its own port block, seed the small graph, preheat its timelines.
2. Baseline: one process pipelining ZADD + ZREMRANGEBYRANK, 1,000 inserts per round trip per
   batch, into the same timeline keys through the same Toxiproxy listeners.
3. Workers: stop them, queue N tweet events of push-tier authors in Kafka (thresholds raised by
   runtime config so every author is pushed), start them, time until the lag is 0.
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer
from redis.cluster import ClusterNode, RedisCluster

from harness import seeding
from harness.runtime.local import LocalRuntime
from harness.settle import wait_for_fanout
from harness.topology import TWEETS_TOPIC, Topology
from targets.feed.cache import preheat, timeline_key
from targets.feed.snowflake import Snowflake, timestamp_ms
from targets.feed.store import Store, Tweet
from workloads.graph import GraphSize, GraphSpec


def baseline(topo: Topology, users: list[int], inserts: int, cap: int = 800) -> float:
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", topo.redis_proxy_port(i)) for i in range(1, 7)],
                      decode_responses=True)
    ids = Snowflake(9, 9)
    rng = random.Random(1)
    start = time.perf_counter()
    done = 0
    while done < inserts:
        pipe = rc.pipeline()
        for _ in range(1000):
            key, tid = timeline_key(rng.choice(users)), ids.next_id()
            pipe.zadd(key, {str(tid): timestamp_ms(tid)})
            pipe.zremrangebyrank(key, 0, -(cap + 2))
        pipe.execute()
        done += 1000
    elapsed = time.perf_counter() - start
    rc.close()
    return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tweets", type=int, default=3000)
    ap.add_argument("--base-port", type=int, default=26000)
    args = ap.parse_args()
    topo = Topology(base_port=args.base_port)
    graph, graph_folder = seeding.prepare(GraphSpec.preset(GraphSize.SMALL))
    with tempfile.TemporaryDirectory(prefix="feedlab-bench-") as tmp:
        runtime = LocalRuntime(topo=topo, stack_dir=Path(tmp), target_env={"FEED_TOKEN_SECRET": secrets.token_hex(32)},
                               progress=lambda m: print(f"  stack: {m}", flush=True))
        runtime.up()
        try:
            seeding.load(graph, graph_folder, topo)
            store = Store(f"127.0.0.1:{topo.cassandra_proxy_port}")
            store.set_runtime_config_sync("fanout.push_threshold", "1000000")   # everyone is pushed
            store.set_runtime_config_sync("fanout.pull_threshold", "2000000")
            store.close()
            users = list(graph.user_ids)
            authors = [a for a in graph.authors if graph.is_push_tier(a)]
            rng = random.Random(2)
            chosen = [rng.choice(authors) for _ in range(args.tweets)]
            inserts = sum(graph.follower_count(a) + 1 for a in chosen)
            print(f"baseline: pipelined ZADD+ZREMRANGEBYRANK, {inserts} inserts ...", flush=True)
            ceiling = baseline(topo, users, inserts)
            preheat(topo.redis_proxy_addresses(), users)   # the baseline's keys are the same timelines

            for w in topo.worker_names():
                runtime.kill(w)
            producer = Producer({"bootstrap.servers": f"127.0.0.1:{topo.kafka_proxy_port}", "acks": "all"})
            ids = Snowflake(8, 8)
            for author in chosen:
                tweet = Tweet(ids.next_id(), author, "bench", [], None).to_json()
                producer.produce(TWEETS_TOPIC, key=str(author).encode(),
                                 value=orjson.dumps({"type": "tweet", "tweet": tweet}))
                producer.poll(0)
            producer.flush(30)
            del producer   # before the stack stops, or librdkafka logs every reconnect attempt
            print(f"workers: {args.tweets} tweets queued ({inserts} timeline inserts); starting workers", flush=True)
            start = time.perf_counter()
            for w in topo.worker_names():
                runtime.restart(w)
            drained, lag, _ = wait_for_fanout(f"127.0.0.1:{topo.kafka_proxy_port}", deadline_s=600)
            elapsed = time.perf_counter() - start
            worker_rate = inserts / elapsed
            print()
            print(f"plain pipelined loop : {ceiling:10.0f} timeline inserts/s (1 process)")
            print(f"fan-out workers      : {worker_rate:10.0f} timeline inserts/s ({len(topo.worker_names())} workers, "
                  f"incl. start-up and WAIT 1; drained={drained}, lag={lag})")
            print(f"ratio                : {worker_rate / ceiling:10.2f}   (goal >= 0.6)")
        finally:
            runtime.down()


if __name__ == "__main__":
    main()
