"""The SSE check on hand-written runs: the healthy run of tests/unit/conftest.py (authors 1
and 2 are pushed, with followers [2, 3] and [3]; 9 is pull tier, with 5 followers) with user 3
listening. Tweets 1001-1003 by 1 are acked at T0+5..7, 1004 and 1005 by 2 at T0+8 and T0+9."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks import Verdict, run_all_checks, sse
from records import Ack, FollowChange, Signal, StreamSpan
from tests.unit.conftest import FAULT_START, T0, RunSpec

pytestmark = pytest.mark.unit


PUSHED = ("1001", "1002", "1003", "1004")


def listening(spec: RunSpec, *tweets: str, opened: float = T0, closed: float = T0 + 60) -> None:
    spec.streams = [StreamSpan(user=3, opened_t=opened, closed_t=closed, status=200)]
    acked = {a.tweet_id: a for a in spec.acks}
    spec.signals = [Signal(t=acked[t].ack_t + 0.4, user=3, tweet_id=t, author_id=acked[t].author_id) for t in tweets]


def test_every_signal_delivered_to_a_listening_follower_passes(spec: RunSpec, run_dir: Path) -> None:
    listening(spec, *PUSHED, "1005")
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["steady"]["expected"] == 5   # 1006 is pull tier: merged at read time, not signalled
    assert result.evidence["steady"]["delay_p99_s"] == pytest.approx(0.4)


def test_a_signal_never_delivered_fails_naming_the_listener_and_the_tweet(spec: RunSpec, run_dir: Path) -> None:
    listening(spec, *PUSHED)
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["missing_examples"][0] == {"listener": 3, "tweet": "1005", "author": 2, "ack_t": T0 + 9}
    assert "user 3 never told of tweet 1005 by 2" in result.summary


def test_a_late_signal_fails_on_its_delay(spec: RunSpec, run_dir: Path) -> None:
    listening(spec, *PUSHED)
    spec.signals.append(Signal(t=T0 + 9 + 12, user=3, tweet_id="1005", author_id=2))   # bound 10 s
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["steady"]["delay_max_s"] == pytest.approx(12)


def test_only_followers_whose_stream_was_open_through_the_bound_are_owed_a_signal(spec: RunSpec,
                                                                                   run_dir: Path) -> None:
    listening(spec, *PUSHED, closed=T0 + 18.5)   # closed 9.5 s after 1005's ack: not owed it
    assert sse.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.graph_changes = [FollowChange(t=T0 + 8.5, follower=3, followee=2, following=False)]
    listening(spec, *PUSHED)                     # unfollowed before 1005: not owed it either
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["steady"]["expected"] == 4


def test_signals_lost_in_a_fault_window_are_evidence_not_a_failure(spec: RunSpec, run_dir: Path) -> None:
    spec.acks.append(Ack(tweet_id="1007", author_id=2, ack_t=FAULT_START + 1))
    listening(spec, *PUSHED, "1005")
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS
    assert result.evidence["fault"] == {**result.evidence["fault"], "expected": 1, "delivered": 0}


def test_no_stream_is_not_exercised_and_nothing_owed_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating
    spec.streams = [StreamSpan(user=3, opened_t=None, closed_t=T0 + 1, status=503, error="HTTP 503")]
    result = sse.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and result.evidence["refused_by_status"] == {"503": 1}


def test_sse_decides_the_run_only_when_the_scenario_makes_it_gate(spec: RunSpec, run_dir: Path) -> None:
    listening(spec, *PUSHED)
    (result,) = [r for r in run_all_checks(spec.write(run_dir)) if r.name == sse.NAME]
    assert result.verdict is Verdict.FAIL and not result.gating
    spec.manifest["checks"] = {"sse": "gate"}
    (result,) = [r for r in run_all_checks(spec.write(run_dir)) if r.name == sse.NAME]
    assert result.verdict is Verdict.FAIL and result.gating
