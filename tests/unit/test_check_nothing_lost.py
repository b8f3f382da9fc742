from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.checks import Verdict, nothing_lost
from harness.final_reads import timelines_to_read
from records import Ack, FinalRead, Request

from .conftest import T0, RunSpec

pytestmark = pytest.mark.unit


def _replace_read(spec: RunSpec, read: FinalRead) -> None:
    spec.final_reads = [r for r in spec.final_reads if (r.kind, r.user_id) != (read.kind, read.user_id)]
    spec.final_reads.append(read)


def test_everything_where_it_belongs_passes(spec: RunSpec, run_dir: Path) -> None:
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result
    assert result.evidence["acked"] == 6
    assert result.evidence["checked_pairs"] == 3 + 5  # follower 2: tweets of 1; follower 3: of 1 and 2


def test_tweet_missing_from_one_follower_timeline_fails(spec: RunSpec, run_dir: Path) -> None:
    _replace_read(spec, FinalRead("timeline", 3, ["1006", "1005", "1004", "1003", "1001"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["missing_from_timeline"] == 1
    example = result.evidence["missing_from_timeline_examples"][0]
    assert example == {"tweet_id": "1002", "author": 1, "follower": 3, "ack_t": T0 + 6, "ack_in_fault": False}


def test_tweet_missing_from_store_fails(spec: RunSpec, run_dir: Path) -> None:
    _replace_read(spec, FinalRead("author", 2, ["1005"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["missing_from_store"] == 1
    assert result.evidence["missing_from_store_examples"][0]["tweet_id"] == "1004"


def test_celebrity_tweets_are_not_expected_in_timelines(spec: RunSpec, run_dir: Path) -> None:
    spec.final_reads = [FinalRead(r.kind, r.user_id, [t for t in r.tweet_ids if t != "1006"])
                        if r.kind == "timeline" else r for r in spec.final_reads]
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_tweets_trimmed_by_the_timeline_cap_are_not_missing(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["timeline_cap"] = 2
    _replace_read(spec, FinalRead("timeline", 2, ["1003", "1002"]))
    _replace_read(spec, FinalRead("timeline", 3, ["1005", "1004"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result
    assert result.evidence["trimmed_by_cap"] == 1 + 3


def test_below_the_cap_a_missing_newest_tweet_is_still_caught(spec: RunSpec, run_dir: Path) -> None:
    spec.manifest["timeline_cap"] = 2
    _replace_read(spec, FinalRead("timeline", 3, ["1004", "1003"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert [m["tweet_id"] for m in result.evidence["missing_from_timeline_examples"]] == ["1005"]


def test_indeterminate_write_that_landed_takes_a_cap_slot(spec: RunSpec, run_dir: Path) -> None:
    # 1099 was never acked (the post timed out) but landed; it pushes 1002 past a cap of 2.
    spec.manifest["timeline_cap"] = 2
    spec.acks = [a for a in spec.acks if a.author_id == 1]
    _replace_read(spec, FinalRead("timeline", 2, ["1099", "1003"]))
    _replace_read(spec, FinalRead("timeline", 3, ["1099", "1003"]))
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_the_followers_own_tweets_take_cap_slots(spec: RunSpec, run_dir: Path) -> None:
    # User 2 is both a follower of 1 and an author: its own 1004 and 1005 sit in its home
    # timeline, newer than 1003, so with a cap of 2 none of author 1's tweets is due there.
    spec.manifest["timeline_cap"] = 2
    _replace_read(spec, FinalRead("timeline", 2, ["1005", "1004"]))
    _replace_read(spec, FinalRead("timeline", 3, ["1005", "1004"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.evidence


def test_incomplete_read_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    _replace_read(spec, FinalRead("timeline", 3, ["1006", "1005"], complete=False, error="page budget"))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN
    unknown = [{"kind": "timeline", "user": 3, "why": "page budget"}]
    assert result.evidence["unknown_users_examples"] == unknown


def test_missing_read_is_unknown_but_a_definite_loss_still_fails(spec: RunSpec, run_dir: Path) -> None:
    spec.final_reads = [r for r in spec.final_reads if (r.kind, r.user_id) != ("timeline", 3)]
    _replace_read(spec, FinalRead("timeline", 2, ["1003", "1002"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["unknown_users"] == 1


def test_without_a_graph_timelines_are_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.graph = None
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def test_empty_ledger_is_unknown(spec: RunSpec, run_dir: Path) -> None:
    spec.acks = []
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN


def test_ack_inside_fault_is_flagged(spec: RunSpec, run_dir: Path) -> None:
    spec.acks.append(Ack("1010", 2, T0 + 31))
    _replace_read(spec, FinalRead("author", 2, ["1010", "1005", "1004"]))
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["missing_from_timeline_examples"][0]["ack_in_fault"] is True


def test_a_sampled_read_back_checks_the_sample_and_says_so(spec: RunSpec, run_dir: Path) -> None:
    """Large graphs: the campaign reads a seeded sample of timelines; the check draws the same."""
    spec.manifest["final_reads_max_timelines"] = 1
    sampled = timelines_to_read([2, 3], 1, spec.manifest["seed"])
    other = ({2, 3} - set(sampled)).pop()
    spec.final_reads = [r for r in spec.final_reads if (r.kind, r.user_id) != ("timeline", other)]
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result
    assert (result.evidence["timelines_checked"], result.evidence["timelines_due"]) == (1, 2)
    assert "timelines of a sample of 1 of 2 followers" in result.summary

    _replace_read(spec, FinalRead("timeline", sampled[0], []))   # the sampled follower lost everything
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.FAIL


def test_the_timeline_sample_is_seeded_and_bounded() -> None:
    everyone = list(range(1, 1001))
    assert timelines_to_read(everyone, None, 1) == everyone == timelines_to_read(everyone, 1000, 1)
    sample = timelines_to_read(everyone, 100, 1)
    assert len(sample) == 100 and sample == sorted(sample) and sample == timelines_to_read(everyone, 100, 1)
    assert sample != timelines_to_read(everyone, 100, 2)


def test_a_delete_that_got_no_answer_may_have_landed(spec: RunSpec, run_dir: Path) -> None:
    """The author's DELETE timed out at nginx, yet the tweet is gone: not lost, and not expected
    in timelines; the same tweet with its DELETE refused (a 4xx) is lost."""
    _replace_read(spec, FinalRead("author", 1, ["1003", "1001"]))
    _replace_read(spec, FinalRead("timeline", 2, ["1006", "1003", "1001"]))
    _replace_read(spec, FinalRead("timeline", 3, ["1006", "1005", "1004", "1003", "1001"]))
    spec.requests.append(Request(t=T0 + 30, op="delete", latency_ms=3000, status=502, error="HTTP 502",
                                 user=1, target="1002"))
    assert nothing_lost.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.requests[-1] = replace(spec.requests[-1], status=403, error=None)
    result = nothing_lost.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["missing_from_store"] == 1
