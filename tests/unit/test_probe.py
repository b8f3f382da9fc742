"""The freshness probe's polling: every 0.1 s while a canary is young, then a tenth of its wait;
and how deep it looks for a canary in a feed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from harness.probe import next_page, next_poll_s

pytestmark = pytest.mark.unit


def test_a_young_canary_is_polled_at_the_poll_interval_then_at_a_tenth_of_its_wait() -> None:
    assert [next_poll_s(w, 0.1) for w in (0.0, 0.4, 1.0)] == [0.1, 0.1, pytest.approx(0.1)]
    assert next_poll_s(3.0, 0.1) == pytest.approx(0.3) and next_poll_s(20.0, 0.1) == pytest.approx(2.0)
    assert next_poll_s(3.0, 0.5) == 0.5


def test_a_canary_never_seen_costs_each_follower_a_few_dozen_polls_not_three_hundred() -> None:
    waited, reads = 0.0, 0
    while waited < 30.0:   # the probe's give_up_s
        reads += 1
        waited += next_poll_s(waited, 0.1)
    assert 40 <= reads <= 50, reads   # 10 in the first second, then about ln(30)/ln(1.1)


CANARY_AT = datetime(2026, 12, 7, 19, 45, 0, 500000, tzinfo=UTC)


def page(*created_at: str, cursor: str | None = "123") -> dict[str, Any]:
    return {"tweets": [{"tweet_id": str(i), "created_at": c} for i, c in enumerate(created_at)], "next_cursor": cursor}


def test_the_next_page_is_read_only_while_every_tweet_above_is_as_new_as_the_canary() -> None:
    assert next_page(page("2026-12-07T19:45:02.000Z", "2026-12-07T19:45:00.500Z"), CANARY_AT) == "123"
    assert next_page(page("2026-12-07T19:45:02.000Z", "2026-12-07T19:45:00.499Z"), CANARY_AT) is None  # older below
    assert next_page(page("2026-12-07T19:45:02.000Z", cursor=None), CANARY_AT) is None   # nothing further down
    assert next_page(page(), CANARY_AT) is None                                         # an empty feed


def test_times_that_cannot_be_compared_stop_at_the_first_page() -> None:
    assert next_page(page("2026-12-07T19:45:02"), CANARY_AT) == "123"   # no zone: read as UTC
    assert next_page(page("yesterday"), CANARY_AT) is None
    assert next_page({"tweets": [{"tweet_id": "1"}], "next_cursor": "9"}, CANARY_AT) is None
    assert next_page(page("2026-12-07T19:45:02.000Z"), None) is None   # the 201 gave no created_at
