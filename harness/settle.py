"""Settling: after the load stops, wait until the fan-out group has consumed everything (or,
for a target whose queues the harness cannot read, until marker tweets have arrived)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Collection
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

from harness.tokens import TokenSource
from harness.topology import ENGAGEMENT_TOPIC, RETRY_TOPIC, THROTTLED_TOPIC, TWEETS_PARTITIONS, TWEETS_TOPIC
from records import Ack, JsonlWriter
from workloads.graph import Graph

# The target's consumer groups and their topics, in the order events flow through them: the
# main lane hands the middle band's tweets on to the throttled lane.
LANES = (("fanout", TWEETS_TOPIC), ("fanout-throttled", THROTTLED_TOPIC), ("counters", ENGAGEMENT_TOPIC),
         ("fanout-retry", RETRY_TOPIC))


def consumer_lag(bootstrap: str, group: str = "fanout", topic: str = TWEETS_TOPIC) -> int:
    """Messages in `topic` not yet committed by `group` (read without joining the group)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "client.id": f"feedlab-lag-{uuid.uuid4().hex[:6]}"})
    try:
        parts = [TopicPartition(topic, p) for p in range(TWEETS_PARTITIONS)]
        committed = c.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            done = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - done)
        return lag
    finally:
        c.close()


def lane_group_sizes(bootstrap: str) -> dict[str, int]:
    """Members of each lane's consumer group, as the Kafka coordinator sees them."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_consumer_groups([group for group, _ in LANES], request_timeout=5)
    return {group: len(f.result().members) for group, f in futures.items()}


def wait_for_fanout(bootstrap: str, deadline_s: float) -> tuple[bool, int, float]:
    """Until every lane has consumed everything: (drained, last total lag seen, seconds waited).
    Lanes are read in flow order, so a drained main lane has handed on all it will."""
    start = time.monotonic()
    lag = -1
    while time.monotonic() - start < deadline_s:
        try:
            lag = sum(consumer_lag(bootstrap, group, topic) for group, topic in LANES)
        except Exception:  # noqa: BLE001 - Kafka briefly unreachable: keep waiting
            lag = -1
        if lag == 0:
            return True, 0, time.monotonic() - start
        time.sleep(0.5)
    return False, lag, time.monotonic() - start


MARKER_AUTHORS = 12   # push-tier authors who post a marker (the target's partitions are unknown)
MARKER_READERS = 3    # followers of each whose feeds are polled: any of them showing it will do
MARKER_POLL_S = 0.5
PUSHED_MARGIN = 0.9   # authors below this share of the push threshold stay pushed whatever the load follows


def wait_for_markers(api_url: str, tokens: TokenSource, graph: Graph, ledger: Path, deadline_s: float,
                     seed: int, unfollowed: Collection[tuple[int, int]] = ()) -> tuple[bool, int, float]:
    """Settling a target whose queues the harness cannot read (an external one): after the
    load, `MARKER_AUTHORS` push-tier authors each post a marker tweet, and each marker is
    awaited in one follower's first feed page. A queue delivers in order per key, so once a
    marker arrives what its author posted before it has too; authors the markers miss are not
    proven (the report says the settle was by markers). (every marker seen, markers missing,
    seconds waited); the markers are acknowledged tweets, so they go into the ledger. No marker
    posted proves nothing: not drained. Readers are followers in the seeded graph whose edge to
    the author the load did not unfollow (`unfollowed`: (follower, followee) pairs); the account
    the load pushes over a threshold (`rising`) and authors near the push threshold are not
    chosen (their tweets may be merged at read time)."""
    start = time.monotonic()
    rng = random.Random(seed * 7919 + 3)
    authors = [a for a in graph.authors if a != graph.rising and graph.follower_count(a) > 0
               and graph.follower_count(a) < PUSHED_MARGIN * graph.spec.push_threshold]
    rng.shuffle(authors)
    polled: dict[int, list[int]] = {}   # chosen author -> followers polled for its marker
    for author in authors:
        followers = [f for f in graph.followers_of(author) if (f, author) not in unfollowed]
        if followers:
            polled[author] = rng.sample(followers, min(MARKER_READERS, len(followers)))
            if len(polled) == MARKER_AUTHORS:
                break
    chosen = list(polled)
    waiting: dict[str, list[int]] = {}   # marker tweet -> followers polled for it
    with httpx.Client(base_url=api_url, timeout=5) as client, JsonlWriter(ledger) as out:
        for author in chosen:
            try:
                r = client.post("/v1/tweets", headers={"Authorization": f"Bearer {tokens.token(author)}"},
                                json={"text": f"settle marker {uuid.uuid4().hex[:8]}",
                                      "idempotency_key": str(uuid.uuid4())})
                if r.status_code != 201:
                    continue
                tweet = str(r.json()["tweet_id"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError):   # no answer, or not the API's
                continue
            out.write(Ack(tweet_id=tweet, author_id=author, ack_t=time.time(), source="settle"))
            waiting[tweet] = polled[author]
        posted = len(waiting)
        while waiting and time.monotonic() - start < deadline_s:
            for tweet, readers in list(waiting.items()):
                if any(_shows(client, tokens, reader, tweet) for reader in readers):
                    del waiting[tweet]
            if waiting:
                time.sleep(MARKER_POLL_S)
    missing = len(waiting) + len(chosen) - posted if chosen else MARKER_AUTHORS
    return posted > 0 and not missing, missing, time.monotonic() - start


def _shows(client: httpx.Client, tokens: TokenSource, reader: int, tweet: str) -> bool:
    try:
        r = client.get("/v1/feed?limit=50", headers={"Authorization": f"Bearer {tokens.token(reader)}"})
        return r.status_code == 200 and any(str(t.get("tweet_id")) == tweet for t in r.json()["tweets"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return False
