"""The fan-out worker's planner: tiers, deletion and backfill, and each defect switch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from targets.feed.settings import Defects, Settings
from targets.feed.store import Tweet
from targets.feed.worker import plan

pytestmark = pytest.mark.unit

SETTINGS = Settings(cassandra="-", redis_nodes=["-"], kafka="-", token_secret="-", push_threshold=2,
                    pull_threshold=4)
FOLLOWERS = {1: [10, 11, 12], 2: [10, 11, 12, 13, 14], 3: []}   # 1 push tier, 2 pull tier


def followers_of(author: int) -> list[int]:
    return FOLLOWERS.get(author, [])


def newest_of(author: int, limit: int) -> list[Tweet]:
    tweets = [Tweet(500 + i, author, f"t{i}", [], None, deleted=(i == 1)) for i in range(3)]
    return tweets[:limit]


def tweet_event(tweet_id: int, author: int) -> dict:  # type: ignore[type-arg]
    return {"type": "tweet", "tweet": Tweet(tweet_id, author, "x", [], None).to_json()}


def run(events: list[dict], **defects: object):  # type: ignore[no-untyped-def, type-arg]
    settings = replace(SETTINGS, defects=Defects(**defects))  # type: ignore[arg-type]
    return plan(events, settings, followers_of=followers_of, newest_of=newest_of)


def test_push_tier_tweets_go_to_every_follower_and_the_author() -> None:
    batch = run([tweet_event(100, 1)])
    assert sorted(batch.entries) == [(1, 100), (10, 100), (11, 100), (12, 100)]
    assert [t["tweet_id"] for t in batch.tweets] == ["100"]


def test_pull_tier_tweets_are_not_pushed() -> None:
    assert run([tweet_event(101, 2)]).entries == [(2, 101)]


def test_drop_fanout_defect_skips_a_share_of_followers() -> None:
    events = [tweet_event(1000 + i, 1) for i in range(200)]
    healthy = len(run(events).entries)
    broken = len(run(events, drop_fanout_share=0.2).entries)
    assert healthy == 800 and 0.7 * 800 < broken < 0.95 * 800


def test_a_deletion_is_a_fan_out_of_removals() -> None:
    batch = run([{"type": "delete", "tweet_id": "100", "author_id": "1"}])
    assert sorted(batch.removals) == [(1, 100), (10, 100), (11, 100), (12, 100)]
    assert batch.dropped == [100]


def test_skip_delete_fanout_defect_removes_nothing() -> None:
    batch = run([{"type": "delete", "tweet_id": "100", "author_id": "1"}], skip_delete_fanout=True)
    assert batch.removals == [] and batch.dropped == []


def test_backfill_brings_the_newest_live_tweets() -> None:
    batch = run([{"type": "backfill", "follower_id": "77", "author_id": "2"}])
    assert batch.entries == [(77, 500), (77, 502)]    # 501 is deleted


def test_never_backfill_defect() -> None:
    assert run([{"type": "backfill", "follower_id": "77", "author_id": "2"}], never_backfill=True).entries == []


def test_order_is_kept_within_a_batch() -> None:
    batch = run([tweet_event(100, 1), {"type": "delete", "tweet_id": "100", "author_id": "1"}])
    assert (10, 100) in batch.entries and (10, 100) in batch.removals   # applied add-then-remove
