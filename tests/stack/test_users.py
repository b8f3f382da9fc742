"""The user registry (design §07 users) on the real stack: registration, unique and fixed
handles, a user acting only once registered, unknown users as 404, and the author object
(with its handle) and media objects of the feed's tweets (design §05b)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.stack.conftest import Stack, eventually

pytestmark = pytest.mark.stack


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def test_a_user_acts_only_once_registered(client: httpx.Client, stack: Stack) -> None:
    newcomer = 270_011
    headers = stack.auth(newcomer)
    refused = client.post("/v1/tweets", headers=headers, json={"text": "too early"})
    assert refused.status_code == 403 and code(refused) == "not_registered"
    assert client.get("/v1/feed", headers=headers).status_code == 403

    created = client.put("/v1/users/me", headers=headers, json={"handle": "@Newcomer_270011", "display_name": "New"})
    assert created.status_code == 201, created.text
    profile = created.json()
    assert (profile["user_id"], profile["handle"], profile["display_name"]) == ("270011", "@Newcomer_270011", "New")

    again = client.put("/v1/users/me", headers=headers, json={"handle": "newcomer_270011"})   # a retry, any case
    assert again.status_code == 200 and again.json()["handle"] == "@Newcomer_270011"
    assert client.get("/v1/users/270011", headers=stack.auth(1512)).json() == profile
    assert client.post("/v1/tweets", headers=headers, json={"text": "now"}).status_code == 201


def test_handles_are_unique_regardless_of_case_and_fixed(client: httpx.Client, stack: Stack) -> None:
    first, second = 270_013, 270_014
    assert client.put("/v1/users/me", headers=stack.auth(first), json={"handle": "Taken_270013"}).status_code == 201
    taken = client.put("/v1/users/me", headers=stack.auth(second), json={"handle": "TAKEN_270013"})
    assert taken.status_code == 409 and code(taken) == "handle_taken"
    fixed = client.put("/v1/users/me", headers=stack.auth(first), json={"handle": "other_270013"})
    assert fixed.status_code == 409 and code(fixed) == "handle_fixed"
    renamed = client.put("/v1/users/me", headers=stack.auth(first),
                         json={"handle": "taken_270013", "display_name": "Renamed"})
    assert renamed.status_code == 200 and renamed.json()["display_name"] == "Renamed"


def test_registrations_racing_with_different_handles_leave_one(client: httpx.Client, stack: Stack) -> None:
    """Each user sends two registrations at once. One handle wins; the other registration gets
    a 409 and its handle stays free for anyone."""
    def register(user: int, handle: str) -> httpx.Response:
        return client.put("/v1/users/me", headers=stack.auth(user), json={"handle": handle})

    users = range(270_101, 270_111)
    with ThreadPoolExecutor(2) as pool:
        answers = {u: list(pool.map(register, (u, u), (f"first_{u}", f"second_{u}"))) for u in users}
    for u, (one, two) in answers.items():
        assert sorted([one.status_code, two.status_code]) == [201, 409], (u, one.text, two.text)
        winner = one if one.status_code == 201 else two
        assert client.get(f"/v1/users/{u}", headers=stack.auth(1520)).json()["handle"] == winner.json()["handle"]
        loser = f"second_{u}" if winner is one else f"first_{u}"
        free = client.put("/v1/users/me", headers=stack.auth(u + 100), json={"handle": loser})
        assert free.status_code == 201, (u, free.text)


@pytest.mark.parametrize(("body", "error"), [
    (b'{"handle": "has space"}', "bad_handle"), (b'{"handle": "sixteen_chars_xx"}', "bad_handle"),
    (b'{"handle": ""}', "bad_handle"), (b'{}', "bad_handle"), (b'{"handle": 7}', "bad_handle"),
    (b'{"handle": "ok_1515", "display_name": "   "}', "bad_display_name"),
    (b'{"handle": "ok_1515", "display_name": "' + b"x" * 51 + b'"}', "bad_display_name"),
    (b'[]', "bad_json"), (b'{', "bad_json"),
])
def test_bad_registrations_get_a_400(client: httpx.Client, stack: Stack, body: bytes, error: str) -> None:
    r = client.put("/v1/users/me", headers=stack.auth(270_015) | {"content-type": "application/json"}, content=body)
    assert r.status_code == 400 and code(r) == error, r.text


def test_seeded_accounts_handles_are_taken(client: httpx.Client, stack: Stack) -> None:
    """Of the form user<digits>, whatever the case (their import takes no claim): well formed, and
    taken, so a 409 like any handle taken (the OpenAPI document's pattern admits it)."""
    r = client.put("/v1/users/me", headers=stack.auth(270_016), json={"handle": "User42"})
    assert r.status_code == 409 and code(r) == "reserved_handle", r.text


def test_unknown_users_are_a_404(client: httpx.Client, stack: Stack) -> None:
    me, nobody = 1516, 270_017
    for method, path in [("POST", f"/v1/users/{nobody}/follow"), ("DELETE", f"/v1/users/{nobody}/follow"),
                         ("GET", f"/v1/users/{nobody}/tweets"), ("GET", f"/v1/users/{nobody}")]:
        r = client.request(method, path, headers=stack.auth(me))
        assert r.status_code == 404 and code(r) == "unknown_user", (method, path, r.text)


def test_feed_tweets_carry_their_author_and_media(client: httpx.Client, stack: Stack) -> None:
    author, reader = 1518, 1519
    assert client.post(f"/v1/users/{author}/follow", headers=stack.auth(reader)).status_code == 200
    video = client.post("/v1/media", headers=stack.auth(author), json={"content_type": "video/mp4", "size_bytes": 99})
    mid = video.json()["media_id"]
    r = client.post("/v1/tweets", headers=stack.auth(author), json={"text": "clip", "media_ids": [mid]})
    tweet_id = r.json()["tweet_id"]

    def served() -> list[dict[str, object]]:
        return [t for t in client.get("/v1/feed", headers=stack.auth(reader)).json()["tweets"]
                if t["tweet_id"] == tweet_id]

    assert eventually(lambda: bool(served()))
    tweet = served()[0]
    assert tweet["author"] == {"user_id": str(author), "handle": f"@user{author}"}   # seeded: conftest
    assert tweet["media"] == [{"media_id": mid, "content_type": "video/mp4"}]
    own = client.get(f"/v1/users/{author}/tweets", headers=stack.auth(reader)).json()["tweets"]
    assert own[0]["author"]["handle"] == f"@user{author}"
    assert "author_id" not in tweet


def test_the_registry_unreachable_lets_an_authenticated_user_through_quickly(
        stack: Stack, sibling_api: Callable[[dict[str, str]], str]) -> None:
    """Fail open: with Cassandra paused, an API process that has not met the user yet waits
    for the registry at most REGISTRY_WAIT_S (not the driver's 10 s) and lets the user through.
    The notification stream needs nothing else from the store."""
    url, user = sibling_api({}), 1521
    stack.runtime.pause("cassandra")
    try:
        with httpx.Client(base_url=url, timeout=5) as c, \
                c.stream("GET", "/v1/stream", headers=stack.auth(user)) as events:
            assert events.status_code == 200, events.read()
            assert next(line for line in events.iter_lines() if line.startswith(":")) == ": connected"
    finally:
        stack.runtime.resume("cassandra")
