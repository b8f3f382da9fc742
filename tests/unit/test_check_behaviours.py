"""The behaviour checkers on hand-written runs (Jepsen's way): each one's anomalies, a clean
history passing, and its unknown case. The healthy run is tests/unit/conftest.py's: authors 1
and 2 push tier (followers [2, 3] and [3]), 9 a pull-tier celebrity (followers 1-5); tweets
1001-1003 by 1, 1004-1005 by 2, 1006 by 9, acked at T0+5..T0+10."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.checks import (
    Verdict,
    backfill,
    celebrity_merge,
    deletion,
    duplicates,
    engagement,
    pagination,
    ranking,
    run_all_checks,
    unfollow,
)
from records import Action, FaultWindow, FollowChange, Observation, Request
from tests.unit.conftest import T0, RunSpec

pytestmark = pytest.mark.unit

AUTHORS = {"1001": 1, "1002": 1, "1003": 1, "1004": 2, "1005": 2, "1006": 9}


def obs(t: float, user: int, ids: list[str], op: str = "feed", **kw: Any) -> Observation:
    originals = kw.pop("originals", [None] * len(ids))
    authors = kw.pop("authors", [AUTHORS.get(originals[n] or i, 5) for n, i in enumerate(ids)])
    return Observation(sent_t=t, t=t + 0.02, user=user, op=op, ids=ids, authors=authors, originals=originals,
                       likes=kw.pop("likes", [0] * len(ids)), **kw)


def final(spec: RunSpec, kind: str, user: int, **changes: Any) -> None:
    spec.final_reads = [replace(r, **changes) if (r.kind, r.user_id) == (kind, user) else r for r in spec.final_reads]


# --- deletion


def deleted_1002(spec: RunSpec) -> None:
    spec.actions = [Action(t=T0 + 20, kind="delete", user=1, tweet="1002")]
    final(spec, "author", 1, tweet_ids=["1003", "1001"])
    final(spec, "timeline", 2, tweet_ids=["1006", "1003", "1001"])
    final(spec, "timeline", 3, tweet_ids=["1006", "1005", "1004", "1003", "1001"])


def test_deletion_passes_when_the_tweet_leaves_within_the_bound(spec: RunSpec, run_dir: Path) -> None:
    deleted_1002(spec)
    spec.observations = [obs(T0 + 21, 2, ["1003", "1002"]), obs(T0 + 50, 2, ["1003", "1001"])]
    result = deletion.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["lag_max_s"] == pytest.approx(1.02)


def test_deletion_fails_on_a_tweet_served_past_the_bound_or_after_settle(spec: RunSpec, run_dir: Path) -> None:
    deleted_1002(spec)
    spec.observations = [obs(T0 + 81, 3, ["1003", "1002"])]                   # 61 s after the delete
    final(spec, "timeline", 2, tweet_ids=["1006", "1003", "1002", "1001"])   # and still there after settle
    result = deletion.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["served_late_examples"][0]["reader"] == 3
    assert result.evidence["served_after_settle_examples"][0] == {
        "tweet": "1002", "served_as": "1002", "reader": 2, "read": "timeline", "reason": "deleted tweet",
        "deleted_t": T0 + 20}
    assert "tweet 1002 deleted, still served to user 3" in result.summary


def test_a_retweet_of_a_deleted_tweet_counts_as_serving_it_and_an_undone_retweet_as_deleted(
        spec: RunSpec, run_dir: Path) -> None:
    deleted_1002(spec)
    spec.actions.append(Action(t=T0 + 22, kind="unretweet", user=4, tweet="1004", ids=["2001"]))
    spec.observations = [obs(T0 + 90, 3, ["2002", "2001"], originals=["1002", "1004"], authors=[5, 4])]
    result = deletion.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert {(e["tweet"], e["served_as"]) for e in result.evidence["served_late_examples"]} == {
        ("1002", "2002"), ("2001", "2001")}
    assert result.evidence["served_by_reason"] == {"retweet of a deleted tweet": 1, "undone retweet": 1}


def test_deletion_is_not_exercised_without_deletes(spec: RunSpec, run_dir: Path) -> None:
    result = deletion.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


# --- unfollow


def test_unfollow_fails_when_the_unfollowed_author_is_still_served(spec: RunSpec, run_dir: Path) -> None:
    spec.graph_changes = [FollowChange(t=T0 + 30, follower=3, followee=2, following=False)]
    spec.observations = [obs(T0 + 29, 3, ["1005"]), obs(T0 + 31, 3, ["1006", "1005"])]
    result = unfollow.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["served_after_unfollow"] == 1           # the read before the unfollow is fine
    assert result.evidence["served_after_settle"] == 2              # 1004 and 1005 in 3's final feed
    assert "user 3 served tweet 1005 of 2 after unfollowing it" in result.summary


def test_an_unfollowed_account_s_tweet_made_before_the_run_fails_in_the_final_feed(
        spec: RunSpec, run_dir: Path) -> None:
    """900 is not in the ledger (a service feedlab did not start keeps earlier runs' tweets):
    its author is known from a read that served it."""
    spec.graph_changes = [FollowChange(t=T0 + 30, follower=3, followee=2, following=False)]
    final(spec, "timeline", 3, tweet_ids=["1006", "1003", "900"])
    assert unfollow.check(spec.write(run_dir)).verdict is Verdict.PASS   # whose 900 is, nothing says
    spec.observations = [obs(T0 + 20, 3, ["900"], authors=[2])]
    result = unfollow.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["served_after_settle_examples"][0]["tweet"] == "900"


def test_unfollow_passes_once_filtered_and_a_refollow_ends_the_span(spec: RunSpec, run_dir: Path) -> None:
    spec.graph_changes = [FollowChange(t=T0 + 30, follower=3, followee=2, following=False),
                          FollowChange(t=T0 + 40, follower=3, followee=2, following=True)]
    spec.observations = [obs(T0 + 31, 3, ["1006", "1003"]), obs(T0 + 41, 3, ["1006", "1005"])]
    result = unfollow.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["reads_checked"] == 1


def test_only_follows_and_unfollows_that_change_something_are_judged(spec: RunSpec, run_dir: Path) -> None:
    """The workload records every acknowledged follow: one of an account already followed (3
    follows 2 in the seeded graph) changes nothing, and must not take the pair out of the
    nothing-lost check or count as a new follower; nor does an unfollow of a pair not followed."""
    def change(t: float, follower: int, following: bool) -> FollowChange:
        return FollowChange(t=T0 + t, follower=follower, followee=2, following=following)

    spec.graph_changes = [change(20, 3, True), change(30, 3, False), change(35, 3, True), change(36, 3, True),
                          change(50, 3, False), change(55, 3, False), change(10, 4, True)]
    run = spec.write(run_dir)
    assert [(c.t - T0, c.follower, c.following) for c in run.graph_changes] == [
        (10, 4, True), (30, 3, False), (35, 3, True), (50, 3, False)]


def test_unfollow_is_not_exercised_without_unfollows(spec: RunSpec, run_dir: Path) -> None:
    assert not unfollow.check(spec.write(run_dir)).gating


# --- duplicates


def retried(spec: RunSpec, ids: list[str]) -> None:
    spec.actions = [Action(t=T0 + 12, kind="post_retry", user=1, ids=ids, key="k1", text="retried k1")]
    final(spec, "author", 1, texts={"1003": "retried k1", "1002": "b", "1001": "c"})


def test_a_retried_post_made_once_passes(spec: RunSpec, run_dir: Path) -> None:
    retried(spec, ["1003"])
    assert duplicates.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_a_retry_answered_with_another_tweet_fails(spec: RunSpec, run_dir: Path) -> None:
    retried(spec, ["1003", "1007"])
    result = duplicates.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "made tweets 1003, 1007" in result.summary


def test_an_unanswered_attempt_that_made_a_tweet_fails_by_its_text(spec: RunSpec, run_dir: Path) -> None:
    retried(spec, ["1003"])
    final(spec, "author", 1, texts={"1003": "retried k1", "1002": "retried k1", "1001": "c"})
    result = duplicates.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["stored_twice_examples"][0]["tweets"] == ["1002", "1003"]


def test_a_repeated_retweet_must_answer_the_same_retweet_unless_undone_between(spec: RunSpec, run_dir: Path) -> None:
    spec.actions = [Action(t=T0 + 1, kind="retweet", user=4, tweet="1001", ids=["2001"]),
                    Action(t=T0 + 2, kind="retweet", user=4, tweet="1001", ids=["2001"]),
                    Action(t=T0 + 3, kind="unretweet", user=4, tweet="1001", ids=["2001"]),
                    Action(t=T0 + 4, kind="retweet", user=4, tweet="1001", ids=["2002"])]
    assert duplicates.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.actions.append(Action(t=T0 + 5, kind="retweet", user=4, tweet="1001", ids=["2003"]))
    result = duplicates.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "user 4 retweeted 1001 twice: 2002, 2003" in result.summary


def test_duplicates_is_not_exercised_without_retries(spec: RunSpec, run_dir: Path) -> None:
    assert not duplicates.check(spec.write(run_dir)).gating


# --- engagement


def liked(spec: RunSpec, shown_after_settle: list[int]) -> None:
    spec.actions = [Action(t=T0 + 20 + u, kind="like", user=u, tweet="1001") for u in (4, 5, 6)]
    spec.actions += [Action(t=T0 + 30, kind="like", user=4, tweet="1001"),          # a repeat counts once
                     Action(t=T0 + 21, kind="retweet", user=5, tweet="1001", ids=["2001"]),
                     Action(t=T0 + 22, kind="reply", user=6, tweet="1001", ids=["1008"])]
    final(spec, "author", 1, counts={"1001": shown_after_settle, "1002": [0, 0, 0], "1003": [0, 0, 0]})


def test_engagement_passes_when_counts_match_what_was_acknowledged(spec: RunSpec, run_dir: Path) -> None:
    liked(spec, [3, 1, 1])
    spec.observations = [obs(T0 + 40, 2, ["1001"], likes=[3])]
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["likes_acknowledged"] == 3


def test_engagement_fails_on_a_lost_like_or_reply(spec: RunSpec, run_dir: Path) -> None:
    liked(spec, [2, 1, 0])
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert {(w["count"], w["shown"]) for w in result.evidence["wrong_after_settle_examples"]} == {
        ("likes", 2), ("replies", 0)}


def test_a_like_that_got_no_answer_widens_the_accepted_count(spec: RunSpec, run_dir: Path) -> None:
    liked(spec, [4, 1, 1])
    assert engagement.check(spec.write(run_dir)).verdict is Verdict.FAIL
    spec.requests.append(Request(t=T0 + 25, op="like", latency_ms=10_000, status=0, error="timeout", user=7,
                                 target="1001"))
    assert engagement.check(spec.write(run_dir)).verdict is Verdict.PASS


def test_engagement_fails_when_a_count_lags_past_the_bound_outside_faults(spec: RunSpec, run_dir: Path) -> None:
    liked(spec, [3, 1, 1])
    spec.observations = [obs(T0 + 27, 2, ["1001"], likes=[1]),     # 3 s after the 3rd like: not yet due
                         obs(T0 + 33, 2, ["1001"], likes=[2]),     # inside the fault window: not judged
                         obs(T0 + 50, 2, ["2009", "1001"], originals=["1001", None], authors=[8, 1], likes=[2, 2])]
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["not_converged"] == 2 and result.evidence["reads_judged"] == 3
    assert result.evidence["not_converged_examples"][0]["likes_acked_by_then"] == 3


def test_engagement_is_unknown_without_a_final_read_and_not_exercised_without_actions(
        spec: RunSpec, run_dir: Path) -> None:
    assert not engagement.check(spec.write(run_dir)).gating
    liked(spec, [3, 1, 1])
    spec.final_reads = [r for r in spec.final_reads if r.kind != "author"]
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and result.gating


def test_a_liked_tweet_gone_after_a_delete_that_got_no_answer_is_not_an_unknown_count(
        spec: RunSpec, run_dir: Path) -> None:
    liked(spec, [3, 1, 1])
    final(spec, "author", 1, counts={"1002": [0, 0, 0], "1003": [0, 0, 0]})   # 1001 is not there any more
    assert engagement.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN
    spec.requests.append(Request(t=T0 + 40, op="delete", latency_ms=3000, status=502, error="HTTP 502", user=1,
                                 target="1001"))   # its author's delete, answered by the balancer's 502
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["tweets_gone_by_unanswered_delete"] == ["1001"]


def test_a_tweet_not_in_the_ledger_is_judged_only_for_counts_below_what_was_acknowledged(
        spec: RunSpec, run_dir: Path) -> None:
    """A service feedlab did not start keeps earlier runs' likes: 900, made before this run
    (not in the ledger), may show more than the run acknowledged, never fewer."""
    spec.actions = [Action(t=T0 + 20 + u, kind="like", user=u, tweet="900") for u in (4, 5)]
    spec.observations = [obs(T0 + 15, 2, ["900"], authors=[1], likes=[7])]
    final(spec, "author", 1, counts={"900": [9, 3, 0], "1001": [0, 0, 0]})
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["tweets_not_in_ledger"] == 1 and "1 not in this run's ledger" in result.summary
    final(spec, "author", 1, counts={"900": [1, 3, 0], "1001": [0, 0, 0]})   # a like acknowledged, lost
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["wrong_after_settle_examples"] == [
        {"tweet": "900", "count": "likes", "shown": 1, "acknowledged": 2, "not_in_ledger": True}]
    # a tweet the run made started at zero: more likes than acknowledged is wrong
    spec.actions = [Action(t=T0 + 20 + u, kind="like", user=u, tweet="1001") for u in (4, 5)]
    final(spec, "author", 1, counts={"1001": [9, 0, 0]})
    assert engagement.check(spec.write(run_dir)).evidence["wrong_after_settle_examples"] == [
        {"tweet": "1001", "count": "likes", "shown": 9, "acknowledged": 2}]


def test_a_tweet_not_in_the_ledger_seen_only_inside_retweets_is_not_judged(spec: RunSpec, run_dir: Path) -> None:
    """Liked through a retweet of it (2009 by 8 shows 900): its author was never served, so its
    final counts were never read; not an unknown that would leave the run undecided."""
    spec.actions = [Action(t=T0 + 21, kind="like", user=4, tweet="900")]
    spec.observations = [obs(T0 + 15, 2, ["2009"], originals=["900"], authors=[8])]
    result = engagement.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary
    assert result.evidence["tweets_not_in_ledger_unread_examples"] == ["900"]
    assert "1 not in the ledger and shown only inside retweets, not judged" in result.summary


# --- pagination


def test_pages_out_of_order_or_repeating_an_id_fail(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = [obs(T0 + 1, 2, ["1003", "1001", "1002"]), obs(T0 + 2, 2, ["1003", "1003"]),
                         obs(T0 + 3, 2, ["1001", "1002"], op="delta"), obs(T0 + 4, 2, ["1003", "1002"], op="delta")]
    result = pagination.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["bad_pages"] == 3


def walk(ids_by_page: list[list[str]]) -> list[Observation]:
    return [obs(T0 + 50 + n, 3, ids, op="walk", walk="w1", page=n) for n, ids in enumerate(ids_by_page)]


def test_a_walk_neither_repeating_nor_skipping_passes(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = walk([["1006", "1005"], ["1004", "1003"], ["1002", "1001"]])
    result = pagination.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["page_boundaries"] == 2


def test_a_walk_repeating_or_skipping_a_tweet_fails(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = walk([["1006", "1005"], ["1005", "1003"], ["1002", "1001"]])   # 1005 again; 1004 skipped
    assert pagination.check(spec.write(run_dir)).evidence["skipped"] == 0   # 1004 never seen: maybe not there yet
    spec.observations.insert(0, obs(T0 + 40, 3, ["1005", "1004"]))             # it was
    result = pagination.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert result.evidence["repeated_examples"][0]["tweet"] == "1005"
    assert result.evidence["skipped_examples"][0]["tweet"] == "1004"


def test_a_walk_not_showing_a_tweet_the_run_took_down_is_left_to_the_deletion_check(
        spec: RunSpec, run_dir: Path) -> None:
    """A target that keeps a deleted tweet in its timelines (skip-delete-fanout) shows it in some
    reads and not in others: the deletion check fails that run, pagination does not."""
    spec.observations = [obs(T0 + 40, 3, ["1005", "1004"]), *walk([["1006", "1005"], ["1003", "1002"]])]
    spec.actions = [Action(t=T0 + 45, kind="delete", user=2, tweet="1004")]
    assert pagination.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.actions = [Action(t=T0 + 45, kind="unfollow", user=3, other=2)]
    spec.graph_changes = [FollowChange(t=T0 + 45, follower=3, followee=2, following=False)]
    assert pagination.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.actions, spec.graph_changes = [], []
    assert pagination.check(spec.write(run_dir)).evidence["skipped_examples"][0]["tweet"] == "1004"


def test_a_walk_leaving_out_an_unfollowed_account_s_tweet_made_before_the_run_skips_nothing(
        spec: RunSpec, run_dir: Path) -> None:
    """3 unfollows 2 and follows it again: the walk in between left out 900, a tweet of 2's from
    before the run (not in the ledger), and the final feed has it back. Whose 900 is, the read
    that served it says."""
    spec.observations = [obs(T0 + 40, 3, ["1005", "900"], authors=[2, 2]), *walk([["1006", "1005"], ["1003", "800"]])]
    spec.graph_changes = [FollowChange(t=T0 + 45, follower=3, followee=2, following=False),
                          FollowChange(t=T0 + 58, follower=3, followee=2, following=True)]
    final(spec, "timeline", 3, tweet_ids=["1006", "1005", "1003", "900", "800"])
    result = pagination.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary


def test_a_walk_not_showing_a_tweet_acknowledged_during_a_fault_is_left_to_freshness(
        spec: RunSpec, run_dir: Path) -> None:
    """After a failover the promoted cache may lack a tweet fanned out during the fault, which a
    reader was served from the store meanwhile: late fan-out (the design's staleness), not a
    cursor that jumps."""
    spec.observations = [obs(T0 + 40, 3, ["1005", "1004"]), *walk([["1006", "1005"], ["1003", "1002"]])]
    spec.acks = [replace(a, ack_t=T0 + 32) if a.tweet_id == "1004" else a for a in spec.acks]   # fault: 30-35 s
    result = pagination.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["not_judged_fanned_out_in_a_fault"] == 1
    assert "1 missing from a walk but fanned out during a fault, left to freshness" in result.summary
    spec.acks = [replace(a, ack_t=T0 + 24) if a.tweet_id == "1004" else a for a in spec.acks]   # 6 s before it
    assert pagination.check(spec.write(run_dir)).verdict is Verdict.FAIL


# --- backfill


def followed_large(spec: RunSpec) -> None:
    spec.actions = [Action(t=T0 + 10, kind="follow_large", user=6, other=9, ids=["1006"])]   # bound ends before
    spec.graph_changes = [FollowChange(t=T0 + 10, follower=6, followee=9, following=True)]   # the fault (30 s)


def test_backfill_within_the_bound_passes(spec: RunSpec, run_dir: Path) -> None:
    followed_large(spec)
    spec.observations = [obs(T0 + 11, 6, []), obs(T0 + 13, 6, ["1006"], op="backfill")]
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["delay_max_s"] == pytest.approx(3.02)


def test_no_backfill_within_the_bound_fails(spec: RunSpec, run_dir: Path) -> None:
    followed_large(spec)
    spec.observations = [obs(T0 + 11 + s, 6, ["1001"], op="backfill") for s in range(12)]
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "user 6 followed 9 and lacked 1006" in result.summary


def test_a_backfilled_retweet_whose_original_was_deleted_since_is_not_owed(spec: RunSpec, run_dir: Path) -> None:
    """9's newest items when followed: its retweet 2001 of 1004, whose author deleted 1004 a
    moment later; a retweet goes with its original, so the backfill rightly leaves it out."""
    followed_large(spec)
    spec.actions[0] = replace(spec.actions[0], ids=["2001", "1006"])
    spec.actions += [Action(t=T0 + 9, kind="retweet", user=9, tweet="1004", ids=["2001"]),
                     Action(t=T0 + 10.2, kind="delete", user=2, tweet="1004")]
    spec.observations = [obs(T0 + 11 + s, 6, ["1006"], op="backfill") for s in range(12)]
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS, result.summary


def test_a_full_first_page_is_held_only_to_the_tweets_newer_than_its_last_item(spec: RunSpec, run_dir: Path) -> None:
    """In a write spike the follower's feed fills with newer tweets: 9's older tweet 1001 lies
    past a full first page (more after it), so the page is judged on 1006 alone; a page that
    could hold neither says nothing."""
    followed_large(spec)
    spec.actions[0] = replace(spec.actions[0], ids=["1006", "1001"])
    spec.observations = [obs(T0 + 11, 6, ["1009", "1008", "1006", "1005"], op="backfill", has_more=True)]
    assert backfill.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.observations = [obs(T0 + 11 + s, 6, ["1009", "1008", "1005"], op="backfill", has_more=True)
                         for s in range(12)]                                       # 1006 could be there: late
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["late_examples"][0]["missing"] == ["1006"]
    spec.observations = [obs(T0 + 11 + s, 6, ["1009", "1008"], op="backfill", has_more=True) for s in range(12)]
    assert backfill.check(spec.write(run_dir)).verdict is Verdict.UNKNOWN          # could hold neither


def test_a_read_sent_within_the_bound_is_on_time_and_fault_time_does_not_count_against_it(
        spec: RunSpec, run_dir: Path) -> None:
    followed_large(spec)
    late_answer = replace(obs(T0 + 19.9, 6, ["1006"], op="backfill"), t=T0 + 20.3)   # sent in time, answered after
    spec.observations = [obs(T0 + 11 + s, 6, ["1001"], op="backfill") for s in range(8)] + [late_answer]
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["delay_max_s"] == pytest.approx(10.3)
    # followed at 25 s: the fault (30-35 s) adds its 5 s to the bound, so a backfill seen at 39 s is on time
    spec.actions = [replace(a, t=T0 + 25) for a in spec.actions]
    spec.observations = [obs(T0 + 26 + s, 6, ["1001"], op="backfill") for s in range(13)] + [
        obs(T0 + 39, 6, ["1006"], op="backfill")]
    result = backfill.check(spec.write(run_dir))
    assert result.verdict is Verdict.PASS and result.evidence["bound_extended_by_faults"] == 1, result.summary
    spec.observations = [obs(T0 + 26 + s, 6, ["1001"], op="backfill") for s in range(16)]   # never: late
    assert backfill.check(spec.write(run_dir)).verdict is Verdict.FAIL


# --- celebrity merge


def test_a_follower_s_first_page_must_carry_the_pull_tier_tweet(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = [obs(T0 + 50, 3, ["1006", "1005"]), obs(T0 + 51, 2, ["1003", "1002"], has_more=False)]
    result = celebrity_merge.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL
    assert "user 2's feed lacked tweet 1006 of pull-tier account 9" in result.summary


def test_a_page_too_early_or_too_full_to_hold_it_is_not_judged(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = [obs(T0 + 12, 2, ["1003"]),                           # 2 s after the celebrity's ack
                         obs(T0 + 50, 3, ["1008", "1007"], has_more=True)]     # the page ends above it
    result = celebrity_merge.check(spec.write(run_dir))
    assert result.verdict is Verdict.UNKNOWN and not result.gating


def test_a_final_feed_without_the_pull_tier_tweet_fails(spec: RunSpec, run_dir: Path) -> None:
    spec.observations = [obs(T0 + 50, 3, ["1006", "1005"])]
    final(spec, "timeline", 2, tweet_ids=["1003", "1002", "1001"])
    result = celebrity_merge.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and result.evidence["missing_from_final_feeds"] == 1


def test_an_unfollow_that_got_no_answer_may_have_landed(spec: RunSpec, run_dir: Path) -> None:
    """A 504 from nginx is no answer: the unfollow may have been applied (Jepsen's indeterminate
    operation), so the follower's feed is not expected to hold the account's tweets either way."""
    spec.observations = [obs(T0 + 50, 3, ["1006", "1005"])]
    final(spec, "timeline", 2, tweet_ids=["1003", "1002", "1001"])
    spec.requests.append(Request(t=T0 + 30, op="unfollow", latency_ms=6000, status=504, error="HTTP 504",
                                 user=2, target="9"))
    assert celebrity_merge.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.requests[-1] = replace(spec.requests[-1], status=404, error=None)   # a 4xx is an answer: nothing changed
    assert celebrity_merge.check(spec.write(run_dir)).verdict is Verdict.FAIL


# --- ranking fallback


def test_ranked_reads_while_the_ranker_fails_must_be_answered(spec: RunSpec, run_dir: Path) -> None:
    assert not ranking.check(spec.write(run_dir)).gating                    # no ranker fault: not exercised
    spec.faults.append(FaultWindow(name="degrade-ranker", target="ranker", start_t=T0 + 40, end_t=T0 + 50))
    spec.requests += [Request(t=T0 + 41 + s, op="ranked", latency_ms=30, status=200) for s in range(5)]
    assert ranking.check(spec.write(run_dir)).verdict is Verdict.PASS
    spec.requests.append(Request(t=T0 + 47, op="ranked", latency_ms=30, status=503, error="HTTP 503"))
    result = ranking.check(spec.write(run_dir))
    assert result.verdict is Verdict.FAIL and "5 of 6 ranked reads answered" in result.summary


def test_a_crashing_behaviour_checker_is_an_unknown_not_a_crash(spec: RunSpec, run_dir: Path) -> None:
    spec.actions = [Action(t=T0 + 20, kind="delete", user=1, tweet="1002")]
    spec.observations = [Observation(sent_t=T0 + 90, t=T0 + 91, user=2, op="feed", ids=["x"], authors=[1],
                                     originals=[None], likes=[0])]
    by_name = {r.name: r for r in run_all_checks(spec.write(run_dir))}
    assert by_name["pagination"].verdict is Verdict.UNKNOWN and "crashed" in by_name["pagination"].summary
