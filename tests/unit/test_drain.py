"""The campaign's drain: after the last arrival it waits for the requests still in flight, as
the load processes report them once a second."""

from __future__ import annotations

import time
from pathlib import Path

from harness.campaign import wait_for_in_flight
from records import ARRIVALS, ArrivalSample, JsonlWriter


def report(run_dir: Path, *rows: tuple[str, float, int]) -> None:
    with JsonlWriter(run_dir / ARRIVALS) as out:
        for process, t, in_flight in rows:
            out.write(ArrivalSample(t=t, process=process, due=0, sent=0, dropped=0, late=0, max_lag_ms=0.0,
                                    in_flight=in_flight))


def test_none_in_flight_before_the_end_of_the_load_is_not_drained(tmp_path: Path) -> None:
    """A report from before the end says nothing of a request sent after it (a large follow
    whose backfill watch went on past the end)."""
    end = time.time()
    report(tmp_path, ("locust-0", end - 0.4, 0))
    started = time.monotonic()
    assert not wait_for_in_flight(tmp_path, load_end=end, deadline=time.time() + 1.0)
    assert time.monotonic() - started >= 0.9   # waited to the deadline


def test_every_process_reporting_none_in_flight_since_the_end_is_drained(tmp_path: Path) -> None:
    end = time.time() - 2
    report(tmp_path, ("locust-0", end + 0.5, 3), ("locust-1", end + 0.6, 0), ("locust-0", end + 1.5, 0))
    assert wait_for_in_flight(tmp_path, load_end=end, deadline=time.time() + 30)


def test_a_process_with_requests_in_flight_is_waited_for(tmp_path: Path) -> None:
    end = time.time() - 2
    report(tmp_path, ("locust-0", end + 1.5, 0), ("locust-1", end + 1.5, 2))
    assert not wait_for_in_flight(tmp_path, load_end=end, deadline=time.time() + 0.6)
