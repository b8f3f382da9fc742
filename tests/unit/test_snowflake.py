"""Snowflake ids: layout, monotonic per process, unique across machines, safe when the clock steps back."""

from __future__ import annotations

import time

import pytest

from targets.feed import snowflake
from targets.feed.snowflake import Snowflake, timestamp_ms

pytestmark = pytest.mark.unit


class Clock:
    """time.time for the module under test, moved by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(1_790_000_000.0)
    monkeypatch.setattr(snowflake.time, "time", c)
    return c


def test_an_id_is_time_datacenter_machine_and_sequence(clock: Clock) -> None:
    ids = Snowflake(datacenter_id=3, machine_id=17)
    first, second = ids.next_id(), ids.next_id()
    assert timestamp_ms(first) == int(clock.t * 1000)
    assert (first >> 17) & 31 == 3 and (first >> 12) & 31 == 17
    assert first & 0xFFF == 0 and second == first + 1      # same millisecond: the sequence counts
    assert first < 2**63


def test_ids_keep_increasing_when_the_clock_steps_back(clock: Clock) -> None:
    ids = Snowflake(1, 1)
    before = [ids.next_id() for _ in range(3)]
    clock.t -= 5.0                                           # NTP steps the clock back 5 s
    after = [ids.next_id() for _ in range(3)]
    seq = before + after
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    assert timestamp_ms(after[-1]) == timestamp_ms(before[0])   # held on the last millisecond used
    clock.t += 10.0
    assert timestamp_ms(ids.next_id()) == int(clock.t * 1000)  # and follows the clock once it is ahead


def test_a_full_millisecond_borrows_the_next_one(clock: Clock) -> None:
    ids = Snowflake(0, 0)
    seq = [ids.next_id() for _ in range(4096 * 2 + 10)]     # three milliseconds' worth, clock frozen
    assert seq == sorted(seq) and len(set(seq)) == len(seq)
    assert timestamp_ms(seq[-1]) == int(clock.t * 1000) + 2


def test_two_machines_never_share_an_id(clock: Clock) -> None:
    a, b = Snowflake(0, 1), Snowflake(0, 2)
    assert not {a.next_id() for _ in range(100)} & {b.next_id() for _ in range(100)}


def test_ids_follow_the_real_clock() -> None:
    ids = Snowflake(0, 0)
    now_ms = time.time() * 1000
    assert abs(timestamp_ms(ids.next_id()) - now_ms) < 1000


@pytest.mark.parametrize(("dc", "machine"), [(-1, 0), (32, 0), (0, 32)])
def test_out_of_range_datacenter_or_machine_is_refused(dc: int, machine: int) -> None:
    with pytest.raises(ValueError):
        Snowflake(dc, machine)
