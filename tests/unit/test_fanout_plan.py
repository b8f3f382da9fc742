"""The fan-out worker's planner: tiers, deletion and backfill, and each defect switch."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from targets.feed.settings import Defects, Settings
from targets.feed.store import Tweet
from targets.feed.tiers import Tier, TierPolicy
from targets.feed.worker import parked_commands, plan, well_formed

pytestmark = pytest.mark.unit

SETTINGS = Settings(cassandra="-", redis_nodes=["-"], kafka="-", token_secret="-", push_threshold=2,
                    pull_threshold=4)
POLICY = TierPolicy(push_threshold=3, pull_threshold=5, throttle_writes_per_s=100)
# author 1: push tier (2 followers); 2: pull tier (5); 4: throttled band (3); 5: pinned to pull
FOLLOWERS = {1: [10, 11], 2: [10, 11, 12, 13, 14], 3: [], 4: [10, 11, 12], 5: [10]}
OVERRIDES = {5: "pull"}
UNFOLLOWED = (78, 2)   # (follower, author): unfollowed again before the backfill ran


def followers_of(author: int) -> list[int]:
    return FOLLOWERS.get(author, [])


def newest_of(author: int, limit: int) -> list[Tweet]:
    tweets = [Tweet(500 + i, author, f"t{i}", [], None, deleted=(i == 1)) for i in range(3)]
    return tweets[:limit]


def tweet_event(tweet_id: int, author: int) -> dict:  # type: ignore[type-arg]
    return {"type": "tweet", "tweet": Tweet(tweet_id, author, "x", [], None).to_json()}


def tier_of(author: int, follower_count: int) -> Tier:
    return POLICY.tier(follower_count, OVERRIDES.get(author))


def run(events: list[dict], **defects: object):  # type: ignore[no-untyped-def, type-arg]
    settings = replace(SETTINGS, defects=Defects(**defects))  # type: ignore[arg-type]
    return plan(events, settings, followers_of=followers_of, newest_of=newest_of, tier_of=tier_of,
                follows=lambda follower, author: (follower, author) != UNFOLLOWED)


def test_push_tier_tweets_go_to_every_follower_and_the_author() -> None:
    batch = run([tweet_event(100, 1)])
    assert sorted(batch.entries) == [(1, 100), (10, 100), (11, 100)]
    assert [t["tweet_id"] for t in batch.tweets] == ["100"]
    assert batch.tiers == {1: Tier.PUSH} and batch.throttled == []


def test_pull_tier_tweets_are_not_pushed_and_the_author_is_registered() -> None:
    batch = run([tweet_event(101, 2)])
    assert batch.entries == [(2, 101)] and batch.tiers == {2: Tier.PULL}


def test_the_middle_band_goes_to_the_throttled_lane() -> None:
    batch = run([tweet_event(102, 4)])
    assert batch.entries == [(4, 102)]                 # only the author's own timeline here
    assert [ev["tweet"]["tweet_id"] for ev in batch.throttled] == ["102"]
    assert batch.tiers == {4: Tier.THROTTLED}


def test_a_tier_override_on_the_user_wins_over_the_follower_count() -> None:
    batch = run([tweet_event(103, 5)])
    assert batch.entries == [(5, 103)] and batch.tiers == {5: Tier.PULL}


def test_drop_fanout_defect_skips_a_share_of_followers() -> None:
    events = [tweet_event(1000 + i, 1) for i in range(300)]
    healthy = len(run(events).entries) - 300          # minus the author's own entries
    broken = len(run(events, drop_fanout_share=0.2).entries) - 300
    assert healthy == 600 and 0.7 * 600 < broken < 0.9 * 600


def test_drop_signals_defect_skips_a_share_of_new_tweet_signals_and_no_timeline_write() -> None:
    events = [tweet_event(1000 + i, 1) for i in range(300)]
    healthy, broken = run(events), run(events, drop_signals_share=0.5)
    assert len(healthy.notify) == 600 and 0.4 * 600 < len(broken.notify) < 0.6 * 600
    assert broken.entries == healthy.entries


def test_a_deletion_is_a_fan_out_of_removals() -> None:
    batch = run([{"type": "delete", "tweet_id": "100", "author_id": "1"}])
    assert sorted(batch.removals) == [(1, 100), (10, 100), (11, 100)]
    assert batch.dropped == [100]


def test_skip_delete_fanout_defect_removes_nothing() -> None:
    batch = run([{"type": "delete", "tweet_id": "100", "author_id": "1"}], skip_delete_fanout=True)
    assert batch.removals == [] and batch.dropped == []


def test_backfill_brings_the_newest_live_tweets() -> None:
    batch = run([{"type": "backfill", "follower_id": "77", "author_id": "2"}])
    assert batch.entries == [(77, 500), (77, 502)]    # 501 is deleted


def test_no_backfill_for_a_follower_who_unfollowed_since() -> None:
    assert run([{"type": "backfill", "follower_id": "78", "author_id": "2"}]).entries == []


def test_never_backfill_defect() -> None:
    assert run([{"type": "backfill", "follower_id": "77", "author_id": "2"}], never_backfill=True).entries == []


def test_order_is_kept_within_a_batch() -> None:
    batch = run([tweet_event(100, 1), {"type": "delete", "tweet_id": "100", "author_id": "1"}])
    assert (10, 100) in batch.entries and (10, 100) in batch.removals   # applied add-then-remove


def test_a_failing_batch_is_retried_until_it_succeeds() -> None:
    from targets.feed.worker import until_done

    calls: list[int] = []
    sleeps: list[float] = []

    def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("store away")

    assert until_done("test", step, lambda: True, sleep=sleeps.append) is True
    assert len(calls) == 3 and sleeps == [0.1, 0.2]


def test_retrying_stops_when_the_worker_stops() -> None:
    from targets.feed.worker import until_done

    state = {"running": True}

    def step() -> None:
        state["running"] = False
        raise ConnectionError("still away")

    assert until_done("test", step, lambda: state["running"], sleep=lambda _s: None) is False


def test_malformed_events_are_skipped_so_they_cannot_stop_the_lane() -> None:
    good: list[dict[str, Any]] = [tweet_event(100, 1), {"type": "delete", "tweet_id": "100", "author_id": "1"},
            {"type": "backfill", "follower_id": "10", "author_id": "2"}]
    bad: list[dict[str, Any]] = [{"type": "tweet"}, {"type": "tweet", "tweet": {"tweet_id": "x", "author_id": "1"}},
           {"type": "delete", "tweet_id": "100"}, {"type": "backfill", "follower_id": 10, "author_id": "2"},
           {"type": "retweet", "tweet_id": "1"}, {"type": "delete", "tweet_id": "²", "author_id": "1"}]
    assert well_formed([bad[0], good[0], *bad[1:], *good[1:]]) == good


def test_parked_commands_are_read_back_and_malformed_ones_skipped() -> None:
    good = {"key": "timeline:{7}", "cmd": ["EVAL", "return 1", 1, "timeline:{7}", 1700000000000, "42", 800, 60]}
    bad: list[dict[str, Any]] = [{"key": 7, "cmd": ["ZREM"]}, {"key": "k"}, {"key": "k", "cmd": []},
                                 {"key": "k", "cmd": ["SET", {"a": 1}]}]
    assert parked_commands([bad[0], good, *bad[1:]]) == [("timeline:{7}", tuple(good["cmd"]))]
