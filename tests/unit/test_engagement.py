"""Engagement: the display form of counts, and what the counter aggregator counts."""

from __future__ import annotations

from typing import Any

import pytest

from targets.feed.engagement import MEMBERS_RECORDED, Engagement, display_count
from targets.feed.settings import Defects
from targets.feed.worker import MEMBERS_IN_STORE, decode_events, engagement_of, to_count

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("n", "shown"), [(0, "0"), (999, "999"), (1000, "1K"), (1234, "1.2K"), (1250000, "1.2M"),
                                          (3_000_000_000, "3B"), (999_949, "999.9K"), (999_950, "1M"),
                                          (999_999, "1M"), (999_999_999, "1B"), (2_500_000_000_000, "2500B")])
def test_like_counts_above_a_thousand_are_shown_approximately(n: int, shown: str) -> None:
    assert display_count(n) == shown


EVENTS = [{"type": "like", "tweet_id": str(100 + i % 7), "user_id": str(i + 1), "t": 1.0} for i in range(500)]


def test_every_like_event_is_counted() -> None:
    assert len(to_count(EVENTS, Defects())) == 500


def test_lose_counter_events_defect_drops_a_share() -> None:
    kept = len(to_count(EVENTS, Defects(lose_counter_share=0.3)))
    assert 0.6 * 500 < kept < 0.8 * 500


def test_each_kind_of_engagement_counts_its_own_member_under_its_own_counter() -> None:
    events: list[dict[str, Any]] = [
        {"type": "like", "tweet_id": "7", "user_id": "2", "t": 1.0},
        {"type": "retweet", "tweet_id": "7", "retweet_id": "70", "t": 1.0},
        {"type": "unretweet", "tweet_id": "7", "retweet_id": "70", "t": 1.0},
        {"type": "reply", "tweet_id": "7", "reply_id": "71", "t": 1.0},
        {"type": "unreply", "tweet_id": "7", "reply_id": "71", "t": 1.0}]
    assert to_count(events, Defects()) == [((7, "likes"), 2, 1.0), ((7, "retweets"), 70, 1.0),
                                           ((7, "unretweets"), 70, 1.0), ((7, "replies"), 71, 1.0),
                                           ((7, "unreplies"), 71, 1.0)]
    assert [k for k, _, _ in to_count(events, Defects(skip_reply_counts=True))] == [
        (7, "likes"), (7, "retweets"), (7, "unretweets")]


def test_served_counts_are_net_and_never_negative() -> None:
    assert Engagement.from_counts({"likes": 3, "retweets": 5, "unretweets": 2, "replies": 1, "unreplies": 1}) \
        == Engagement(3, 3, 0)
    assert Engagement.from_counts({"retweets": 0, "unretweets": 1}) == Engagement(0, 0, 0)   # undo counted first


def test_the_fan_out_lane_derives_reply_and_retweet_events_from_tweet_path_events() -> None:
    events: list[dict[str, Any]] = [
        {"type": "tweet", "tweet": {"tweet_id": "11", "author_id": "1", "reply_to": "5", "retweet_of": None}},
        {"type": "tweet", "tweet": {"tweet_id": "12", "author_id": "1", "reply_to": None, "retweet_of": "6"}},
        {"type": "tweet", "tweet": {"tweet_id": "13", "author_id": "1"}},
        {"type": "delete", "tweet_id": "11", "author_id": "1", "reply_to": "5"},
        {"type": "delete", "tweet_id": "12", "author_id": "1", "retweet_of": "6"},
        {"type": "backfill", "follower_id": "2", "author_id": "1"}]
    assert [(e["type"], e["tweet_id"], e.get("reply_id") or e.get("retweet_id")) for e in engagement_of(events)] == [
        ("reply", "5", "11"), ("retweet", "6", "12"), ("unreply", "5", "11"), ("unretweet", "6", "12")]


def test_events_that_cannot_be_counted_are_skipped_not_fatal() -> None:
    odd: list[dict[str, Any]] = [
        {"type": "share", "tweet_id": "1", "user_id": "2"}, {"type": "like", "tweet_id": "x", "user_id": "2"},
        {"type": "like", "user_id": "2"}, {"type": "like", "tweet_id": None, "user_id": "2"},
        {"type": "retweet", "tweet_id": "1", "user_id": "2"}]                 # a retweet is counted by its id
    assert to_count([*odd, EVENTS[0]], Defects()) == [((100, "likes"), 1, 1.0)]


def test_payloads_that_are_not_json_objects_are_skipped() -> None:
    payloads = [b'{"type": "like"}', b"\xff not json", b"[1, 2]", b"null", b""]
    assert decode_events(payloads) == [{"type": "like"}]


def test_the_counter_lane_reads_from_the_store_every_counter_whose_members_the_store_records() -> None:
    assert set(MEMBERS_IN_STORE) == set(MEMBERS_RECORDED)
