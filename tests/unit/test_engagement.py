"""Engagement: the display form of counts, and what the counter aggregator counts."""

from __future__ import annotations

from typing import Any

import pytest

from targets.feed.cache import display_count
from targets.feed.settings import Defects
from targets.feed.worker import decode_events, likes_to_count

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("n", "shown"), [(0, "0"), (999, "999"), (1000, "1K"), (1234, "1.2K"), (1250000, "1.2M"),
                                          (3_000_000_000, "3B"), (999_949, "999.9K"), (999_950, "1M"),
                                          (999_999, "1M"), (999_999_999, "1B"), (2_500_000_000_000, "2500B")])
def test_like_counts_above_a_thousand_are_shown_approximately(n: int, shown: str) -> None:
    assert display_count(n) == shown


EVENTS = [{"type": "like", "tweet_id": str(100 + i % 7), "user_id": str(i), "t": 1.0} for i in range(500)]


def test_every_like_event_is_counted() -> None:
    assert len(likes_to_count(EVENTS, Defects())) == 500


def test_lose_counter_events_defect_drops_a_share() -> None:
    kept = len(likes_to_count(EVENTS, Defects(lose_counter_share=0.3)))
    assert 0.6 * 500 < kept < 0.8 * 500


def test_events_that_are_not_likes_are_skipped_not_fatal() -> None:
    odd: list[dict[str, Any]] = [
        {"type": "retweet", "tweet_id": "1", "user_id": "2"}, {"type": "like", "tweet_id": "x", "user_id": "2"},
        {"type": "like", "user_id": "2"}, {"type": "like", "tweet_id": None, "user_id": "2"}]
    assert likes_to_count([*odd, EVENTS[0]], Defects()) == [(100, 0, 1.0)]


def test_payloads_that_are_not_json_objects_are_skipped() -> None:
    payloads = [b'{"type": "like"}', b"\xff not json", b"[1, 2]", b"null", b""]
    assert decode_events(payloads) == [{"type": "like"}]
