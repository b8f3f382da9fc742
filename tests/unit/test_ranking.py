"""The ranker's content-type signal: video over images over text (design §09)."""

from __future__ import annotations

import pytest

from targets.feed.ranking import score
from targets.feed.store import Media, Tweet

pytestmark = pytest.mark.unit

TWEET_ID = 7_400_000_000_000_000_000


def scored(*content_types: str) -> float:
    media = [Media(f"m_{i}", t) for i, t in enumerate(content_types)]
    tweet = Tweet(TWEET_ID, 1, "same text, same age, same likes", media, None).to_json()
    return score(tweet, now_s=1_800_000_000, mutual=False)


def test_video_beats_images_beats_text() -> None:
    assert scored("video/mp4") > scored("image/png") > scored()


def test_the_richest_media_counts() -> None:
    assert scored("image/gif", "video/mp4") == scored("video/mp4")
    assert scored("image/jpeg", "image/webp") == scored("image/jpeg")


def test_media_survive_the_cached_object_round_trip() -> None:
    tweet = Tweet(TWEET_ID, 1, "x", [Media("m_1", "video/mp4"), Media("m_2", "image/png")], None)
    assert Tweet.from_json(tweet.to_json()) == tweet
