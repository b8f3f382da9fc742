"""Fan-out tiers: thresholds, overrides, and runtime configuration applied safely."""

from __future__ import annotations

import pytest

from targets.feed.tiers import Pacer, Tier, TierPolicy

pytestmark = pytest.mark.unit

POLICY = TierPolicy(push_threshold=200, pull_threshold=1000, throttle_writes_per_s=5000)


@pytest.mark.parametrize(("followers", "tier"), [(0, Tier.PUSH), (199, Tier.PUSH), (200, Tier.THROTTLED),
                                                 (999, Tier.THROTTLED), (1000, Tier.PULL), (10**6, Tier.PULL)])
def test_bands(followers: int, tier: Tier) -> None:
    assert POLICY.tier(followers) is tier


def test_an_override_pins_the_tier() -> None:
    assert POLICY.tier(10, "pull") is Tier.PULL
    assert POLICY.tier(10**6, "push") is Tier.PUSH


def test_an_unknown_override_is_ignored() -> None:
    assert POLICY.tier(10, "celebrity") is Tier.PUSH
    assert POLICY.tier(10**6, "") is Tier.PULL


def test_runtime_config_moves_the_bands() -> None:
    moved = POLICY.with_config({"fanout.push_threshold": "50", "fanout.pull_threshold": "100",
                                "fanout.throttle_writes_per_s": "10"})
    assert moved.tier(60) is Tier.THROTTLED and moved.tier(100) is Tier.PULL
    assert moved.throttle_writes_per_s == 10


@pytest.mark.parametrize("config", [{"fanout.push_threshold": "lots"}, {"fanout.pull_threshold": "-5"},
                                    {"fanout.push_threshold": "²"}, {"fanout.pull_threshold": "9" * 5000},
                                    {"fanout.push_threshold": "500", "fanout.pull_threshold": "100"}])
def test_bad_runtime_config_keeps_the_current_bands(config: dict[str, str]) -> None:
    assert POLICY.with_config(config) == POLICY



class FakeTime:
    """A clock that only moves when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        self.slept += s


def test_the_pacer_holds_the_rate_across_tweets() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    for _ in range(30):            # 30 middle-band tweets of 100 followers each, at 5,000 writes/s
        pacer.take(100, 5000)
    assert t.slept == pytest.approx(29 * 100 / 5000)   # 0.58 s: the rate, not 100 ms per tweet (2.9 s)


def test_the_pacer_does_not_save_up_idle_time() -> None:
    t = FakeTime()
    pacer = Pacer(t.clock, t.sleep)
    pacer.take(500, 5000)
    t.now += 60                    # a quiet minute
    for _ in range(3):
        pacer.take(500, 5000)
    assert t.slept == pytest.approx(2 * 0.1)           # no burst of a minute's worth after idling
