"""Fan-out tiers: thresholds, overrides, and runtime configuration applied safely."""

from __future__ import annotations

import pytest

from targets.feed.tiers import Tier, TierPolicy

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

