"""Retweets and replies on the real stack (design §02: like, retweet and reply counts,
eventual): a retweet is idempotent per user, fanned out to the retweeter's followers through
the same tiers, served with its original and who retweeted it, gone with its original, and
undone on request; retweet and reply counts converge through the counter lane. Each new
behaviour's defect switch is shown to break exactly it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from targets.feed.cache import preheat
from targets.feed.store import Store
from tests.stack.conftest import SiblingWorker, Stack, drained, eventually, post

pytestmark = pytest.mark.stack

CONVERGE_S = 10   # design §02, DESIGN.md §5: counts converge within 10 s


def feed_items(c: httpx.Client, stack: Stack, reader: int) -> list[dict[str, Any]]:
    r = c.get("/v1/feed?limit=100", headers=stack.auth(reader))
    assert r.status_code == 200, r.text
    return list(r.json()["tweets"])


def retweets_of(items: list[dict[str, Any]], original: str) -> list[dict[str, Any]]:
    return [t for t in items if t["retweet_of"] and t["retweet_of"]["tweet_id"] == original]


def counts_seen(c: httpx.Client, stack: Stack, author: int, tweet_id: str) -> dict[str, int] | None:
    tweets = c.get(f"/v1/users/{author}/tweets?limit=100", headers=stack.auth(author)).json()["tweets"]
    return next((t["engagement"] for t in tweets if t["tweet_id"] == tweet_id), None)


def retweet(c: httpx.Client, stack: Stack, user: int, tweet_id: str, base: str = "") -> dict[str, Any]:
    r = c.post(f"{base}/v1/tweets/{tweet_id}/retweet", headers=stack.auth(user))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_retweet_reaches_the_retweeter_s_followers_with_its_original(client: httpx.Client, stack: Stack) -> None:
    author, retweeter, follower = 1301, 1302, 1303
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))   # not following the author
    original = post(client, stack, author, "worth passing on")
    first = retweet(client, stack, retweeter, original)
    assert first["retweeted"] is True and first["tweet_id"] == original and first["retweets"] == 1
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1)
    item = retweets_of(feed_items(client, stack, follower), original)[0]
    assert item["tweet_id"] == first["retweet_id"]
    assert item["author"] == {"user_id": str(retweeter), "handle": f"@user{retweeter}"}      # who retweeted it
    assert item["retweet_of"]["author"] == {"user_id": str(author), "handle": f"@user{author}"}
    assert item["text"] == item["retweet_of"]["text"] == "worth passing on"
    # idempotent per user: the same retweet again, and still one item
    again = [retweet(client, stack, retweeter, original) for _ in range(3)]
    assert {a["retweet_id"] for a in again} == {first["retweet_id"]} and {a["retweets"] for a in again} == {1}
    # retweeting the retweet retweets the original
    assert retweet(client, stack, retweeter, first["retweet_id"])["retweet_id"] == first["retweet_id"]
    assert drained(stack, 30)
    assert len(retweets_of(feed_items(client, stack, follower), original)) == 1
    own = client.get(f"/v1/users/{retweeter}/tweets", headers=stack.auth(follower)).json()["tweets"]
    assert own[0]["tweet_id"] == first["retweet_id"] and own[0]["retweet_of"]["tweet_id"] == original


def test_retweet_counts_converge_and_an_undo_takes_the_retweet_back(client: httpx.Client, stack: Stack) -> None:
    author, follower = 1311, 1315
    retweeters = (1312, 1313, 1314)
    client.post(f"/v1/users/{retweeters[0]}/follow", headers=stack.auth(follower))
    original = post(client, stack, author, "retweet me")
    for user in retweeters:
        retweet(client, stack, user, original)
    assert eventually(lambda: (counts_seen(client, stack, author, original) or {}).get("retweets") == 3,
                      within_s=CONVERGE_S)
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1)
    undo = client.delete(f"/v1/tweets/{original}/retweet", headers=stack.auth(retweeters[0]))
    assert undo.status_code == 200 and undo.json() == {"tweet_id": original, "retweeted": False, "retweets": 2}
    assert retweets_of(feed_items(client, stack, follower), original) == []               # at once for readers
    assert client.delete(f"/v1/tweets/{original}/retweet", headers=stack.auth(retweeters[0])).status_code == 200
    assert eventually(lambda: (counts_seen(client, stack, author, original) or {}).get("retweets") == 2,
                      within_s=CONVERGE_S)
    # retweeting again after an undo is a new retweet
    back = retweet(client, stack, retweeters[0], original)
    assert back["retweets"] == 3
    assert eventually(lambda: (counts_seen(client, stack, author, original) or {}).get("retweets") == 3,
                      within_s=CONVERGE_S)


def test_a_retweet_disappears_with_its_original(client: httpx.Client, stack: Stack) -> None:
    author, retweeter, follower = 1321, 1322, 1323
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))
    original = post(client, stack, author, "soon regretted")
    retweet(client, stack, retweeter, original)
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1)
    assert client.delete(f"/v1/tweets/{original}", headers=stack.auth(author)).status_code == 200
    assert retweets_of(feed_items(client, stack, follower), original) == []               # at once
    own = client.get(f"/v1/users/{retweeter}/tweets", headers=stack.auth(follower)).json()["tweets"]
    assert not any(t["retweet_of"] and t["retweet_of"]["tweet_id"] == original for t in own)
    assert client.post(f"/v1/tweets/{original}/retweet", headers=stack.auth(1324)).status_code == 404


def test_reply_counts_converge_and_a_deleted_reply_is_taken_off(client: httpx.Client, stack: Stack) -> None:
    author = 1331
    parent = post(client, stack, author, "ask me anything")
    replies = [client.post("/v1/tweets", headers=stack.auth(u),
                           json={"text": f"reply {u}", "reply_to_tweet_id": parent}) for u in (1332, 1333, 1334)]
    assert all(r.status_code == 201 for r in replies)
    assert eventually(lambda: (counts_seen(client, stack, author, parent) or {}).get("replies") == 3,
                      within_s=CONVERGE_S)
    gone = replies[0].json()["tweet_id"]
    assert client.delete(f"/v1/tweets/{gone}", headers=stack.auth(1332)).status_code == 200
    assert eventually(lambda: (counts_seen(client, stack, author, parent) or {}).get("replies") == 2,
                      within_s=CONVERGE_S)


def test_a_pull_tier_retweeter_s_retweets_are_merged_at_read_time(client: httpx.Client, stack: Stack,
                                                                  store: Store) -> None:
    """Through the same tiers: a retweeter in the pull tier (its override flag) is never pushed;
    its followers get its retweets by the celebrity merge."""
    author, celebrity, follower = 1341, 1342, 1343
    store.set_tier_override_sync(celebrity, "pull")
    try:
        client.post(f"/v1/users/{celebrity}/follow", headers=stack.auth(follower))
        post(client, stack, celebrity, "a celebrity's own tweet registers it in the pull tier")
        original = post(client, stack, author, "noticed by a celebrity")
        retweet(client, stack, celebrity, original)
        assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1, within_s=15)
    finally:
        store.set_tier_override_sync(celebrity, None)


# --- each new behaviour's defect switch breaks exactly it


def test_duplicate_retweets_defect_makes_a_second_retweet(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    base = sibling_api({"FEED_DEFECT_DUPLICATE_RETWEETS": "1"})
    author, retweeter, follower = 1351, 1352, 1353
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))
    original = post(client, stack, author, "retweeted twice by one user")
    ids = {retweet(client, stack, retweeter, original, base)["retweet_id"] for _ in range(2)}
    assert len(ids) == 2
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 2)


def test_keep_deleted_retweets_defect_serves_a_retweet_of_a_deleted_tweet(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    base = sibling_api({"FEED_DEFECT_KEEP_DELETED_RETWEETS": "1"})
    author, retweeter, follower = 1361, 1362, 1363
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))
    original = post(client, stack, author, "deleted, yet passed on")
    retweet(client, stack, retweeter, original)
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1)
    client.delete(f"/v1/tweets/{original}", headers=stack.auth(author))
    with httpx.Client(base_url=base, timeout=10) as sibling:
        assert len(retweets_of(feed_items(sibling, stack, follower), original)) == 1
    assert retweets_of(feed_items(client, stack, follower), original) == []   # the stack's own API: gone


def test_skip_retweet_undo_defect_leaves_the_retweet_served(
        client: httpx.Client, stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    base = sibling_api({"FEED_DEFECT_SKIP_RETWEET_UNDO": "1"})
    author, retweeter, follower = 1371, 1372, 1373
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))
    original = post(client, stack, author, "an undo that does nothing")
    retweet(client, stack, retweeter, original)
    assert eventually(lambda: len(retweets_of(feed_items(client, stack, follower), original)) == 1)
    r = httpx.delete(f"{base}/v1/tweets/{original}/retweet", headers=stack.auth(retweeter), timeout=10)
    assert r.status_code == 200 and r.json()["retweeted"] is False
    assert drained(stack, 30)
    assert len(retweets_of(feed_items(client, stack, follower), original)) == 1


def test_skip_retweet_fanout_defect_keeps_retweets_from_followers(
        client: httpx.Client, stack: Stack, sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    author, retweeter, follower = 1381, 1382, 1383
    client.post(f"/v1/users/{retweeter}/follow", headers=stack.auth(follower))
    # the follower's timeline exists, so its feed is read from it (a missing one is rebuilt from
    # the store, where the retweet is: the store path needs no fan-out)
    preheat(stack.topo.redis_proxy_addresses(), [follower])
    sibling_worker({"FEED_DEFECT_SKIP_RETWEET_FANOUT": "1"})
    original = post(client, stack, author, "passed on to nobody")
    rid = retweet(client, stack, retweeter, original)["retweet_id"]
    ordinary = post(client, stack, retweeter, "an ordinary tweet still reaches them")
    assert eventually(lambda: ordinary in [t["tweet_id"] for t in feed_items(client, stack, follower)])
    assert retweets_of(feed_items(client, stack, follower), original) == []
    assert rid in [t["tweet_id"] for t in feed_items(client, stack, retweeter)]   # the retweeter's own timeline


def test_skip_reply_counts_defect_leaves_replies_uncounted(
        client: httpx.Client, stack: Stack, sibling_worker: Callable[[dict[str, str]], SiblingWorker]) -> None:
    author = 1391
    sibling_worker({"FEED_DEFECT_SKIP_REPLY_COUNTS": "1"})
    parent = post(client, stack, author, "replies nobody counts")
    for u in (1392, 1393):
        assert client.post("/v1/tweets", headers=stack.auth(u),
                           json={"text": "a reply", "reply_to_tweet_id": parent}).status_code == 201
    client.post(f"/v1/tweets/{parent}/like", headers=stack.auth(1394))
    assert eventually(lambda: (counts_seen(client, stack, author, parent) or {}).get("likes") == 1,
                      within_s=CONVERGE_S)   # the lane ran, and counted the like
    assert drained(stack, 30)
    assert (counts_seen(client, stack, author, parent) or {}).get("replies") == 0
