"""The open workload model's arrival plan: rates, ramps, phases, Poisson counts, splitting."""

from __future__ import annotations

import random

import pytest

from workloads.arrivals import ArrivalPlan

pytestmark = pytest.mark.unit

PLAN = ArrivalPlan.from_phases([
    {"name": "steady", "duration": 100, "ramp": 0, "rates": {"feed": 20.0, "post": 2.0}},
    {"name": "spike", "duration": 50, "ramp": 10, "rates": {"feed": 40.0, "post": 100.0}},
])


def test_rates_follow_the_phases_and_ramp_linearly() -> None:
    assert PLAN.duration_s == 150 and PLAN.ops == ["feed", "post"]
    assert PLAN.rate("post", 50) == 2.0
    assert PLAN.rate("post", 105) == pytest.approx(2.0 + (100.0 - 2.0) * 0.5)   # half-way up the ramp
    assert PLAN.rate("post", 120) == 100.0 and PLAN.rate("post", 150) == 0.0
    assert PLAN.phase_at(99.9).name == "steady" and PLAN.phase_at(100).name == "spike"   # type: ignore[union-attr]
    assert PLAN.phase_at(150) is None
    assert PLAN.expected("post") == pytest.approx(200 + 10 * 51 + 40 * 100)


def test_arrivals_are_ordered_within_the_plan_and_as_many_as_the_rates_say() -> None:
    got = list(PLAN.arrivals(random.Random(1)))
    times = [t for t, _ in got]
    assert times == sorted(times) and 0 < times[0] and times[-1] < 150
    for op in PLAN.ops:
        n = sum(1 for _, o in got if o == op)
        assert n == pytest.approx(PLAN.expected(op), rel=0.06), op
    spike_posts = sum(1 for t, o in got if o == "post" and t >= 110)
    assert spike_posts == pytest.approx(4000, rel=0.06)


def test_a_seed_gives_the_same_arrivals() -> None:
    assert list(PLAN.arrivals(random.Random(3))) == list(PLAN.arrivals(random.Random(3)))
    assert list(PLAN.arrivals(random.Random(3))) != list(PLAN.arrivals(random.Random(4)))


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_parts_of_one_seed_split_the_whole_plan_exactly(parts: int) -> None:
    whole = list(PLAN.arrivals(random.Random(4)))
    split = [list(PLAN.arrivals(random.Random(4), part=i, parts=parts)) for i in range(parts)]
    assert sorted(a for part in split for a in part) == whole   # each arrival in one part, none added
    assert max(map(len, split)) - min(map(len, split)) <= 1


@pytest.mark.parametrize("part, parts", [(-1, 2), (2, 2), (0, 0)])
def test_a_part_outside_the_parts_is_refused(part: int, parts: int) -> None:
    with pytest.raises(ValueError, match="a part is"):
        next(PLAN.arrivals(random.Random(1), part=part, parts=parts))


def test_the_plan_round_trips_through_json() -> None:
    assert ArrivalPlan.from_phases(PLAN.to_json()) == PLAN
