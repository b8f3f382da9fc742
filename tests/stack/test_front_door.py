"""The front door as a client meets it, through nginx: tokens judged on every request (expiry,
not-before, the subject's range), every error nginx itself can give in the API's JSON shape (a
405 with `Allow`), a JSON body only as JSON (415), and the fail-open policy's other side: a
registry error that is not an outage lets nobody through."""

from __future__ import annotations

import asyncio
import http.client
import time

import httpx
import jwt
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from targets.feed.auth import issue_token
from targets.feed.store import Store
from targets.feed.users import Users
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack

USER = 1201   # registered (conftest.REGISTERED_USERS)


def raw(stack: Stack, method: str, path: str, headers: dict[str, str] | None = None,
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request sent as written (http.client leaves the path and method alone; httpx would
    normalise a %00 or refuse TRACE)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.topo.nginx_port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def json_error(status: int, headers: dict[str, str], body: bytes) -> str:
    """The error code of an answer in the API's error shape (and fail if it is not one)."""
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    error = orjson.loads(body)["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    return str(error["code"])


def test_a_token_used_before_its_expiry_is_refused_after_it_on_every_instance(stack: Stack) -> None:
    token = issue_token(stack.secret, USER, ttl_s=4)
    headers = {"Authorization": f"Bearer {token}"}
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        before = [c.get("/v1/users/me", headers=headers).status_code for _ in range(6)]   # both instances
        assert before == [200] * 6, before
        while time.time() < exp:
            time.sleep(0.1)
        after = [c.get("/v1/users/me", headers=headers) for _ in range(6)]
    assert [r.status_code for r in after] == [401] * 6
    assert {r.json()["error"]["code"] for r in after} == {"unauthorized"}


def test_a_token_not_valid_yet_is_refused_until_it_is(stack: Stack) -> None:
    start = time.time()
    token = issue_token(stack.secret, USER, ttl_s=60, not_before=start + 3, now=start)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        assert [c.get("/v1/feed", headers=headers).status_code for _ in range(4)] == [401] * 4
        while time.time() < start + 3:
            time.sleep(0.1)
        assert [c.get("/v1/feed", headers=headers).status_code for _ in range(4)] == [200] * 4


@pytest.mark.parametrize("subject", ["18446744073709551616", "9223372036854775808", "0", "-5", "0012", "1e3"])
def test_a_signed_token_whose_subject_is_no_user_id_is_a_401_everywhere(stack: Stack, subject: str) -> None:
    token = jwt.encode({"sub": subject, "exp": int(time.time()) + 600}, stack.secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        answers = [c.get("/v1/feed", headers=headers),
                   c.post("/v1/tweets", headers=headers, json={"text": "who am I"}),
                   c.put("/v1/users/me", headers=headers, json={"handle": "nobody_at_all"}),
                   c.get("/v1/users/me", headers=headers),
                   c.get("/v1/stream", headers=headers)]
    assert [r.status_code for r in answers] == [401] * len(answers), [(r.status_code, r.text) for r in answers]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "code"), [
    ("GET", "/v1/tweets/12%00", {}, None, 400, "bad_request"),
    ("GET", "/v1/" + "a" * 9000, {}, None, 414, "uri_too_long"),
    ("GET", "/v1/feed", {"Authorization": "Bearer " + "a" * 20_000}, None, 431, "headers_too_large"),
    ("POST", "/v1/tweets", {"Content-Type": "application/json"}, b"x" * 70_000, 413, "too_large"),
    ("POST", "/v1/tweets", {"Transfer-Encoding": "gzip, chunked"}, None, 501, "not_implemented"),
    ("GET", "/__feedlab_error/400", {}, None, 404, "not_found"),   # nginx's error pages are internal
    ("TRACE", "/v1/nowhere", {}, None, 404, "not_found"),
])
def test_errors_nginx_gives_itself_are_the_api_s_json(stack: Stack, method: str, path: str, headers: dict[str, str],
                                                       body: bytes | None, status: int, code: str) -> None:
    got, answer_headers, answer = raw(stack, method, path, headers, body)
    assert got == status, (got, answer[:300])
    assert json_error(got, answer_headers, answer) == code


@pytest.mark.parametrize(("path", "allow"), [
    ("/v1/feed?limit=5", {"GET", "HEAD"}),
    ("/v1/users/7/follow", {"POST", "DELETE"}),
    ("/v1/users/me", {"GET", "HEAD", "PUT"}),
])
def test_a_405_from_nginx_or_the_api_names_the_allowed_methods(stack: Stack, path: str, allow: set[str]) -> None:
    for method in ("TRACE", "PATCH"):   # TRACE: nginx refuses it itself; PATCH: the API does
        got, headers, body = raw(stack, method, path)
        assert got == 405 and json_error(got, headers, body) == "method_not_allowed", (method, got, body)
        assert {m.strip() for m in headers["allow"].split(",")} == allow, (method, headers)


def test_no_api_instance_is_a_json_502_and_none_answering_in_time_a_json_504(stack: Stack) -> None:
    apis = stack.topo.api_names()
    for name in apis:
        stack.runtime.kill(name)
    try:
        got, headers, body = raw(stack, "GET", "/v1/feed")
        assert got == 502 and json_error(got, headers, body) == "unavailable", (got, body)
    finally:
        for name in apis:
            stack.runtime.restart(name)
    for name in apis:
        stack.runtime.pause(name)
    try:
        got, headers, body = raw(stack, "GET", "/healthz")
        assert got == 504 and json_error(got, headers, body) == "timeout", (got, body)
    finally:
        for name in apis:
            stack.runtime.resume(name)
    assert raw(stack, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/tweets", b'{"text": "sent as text/plain"}'),
    ("POST", "/v1/media", b'{"content_type": "image/png", "size_bytes": 10}'),
    ("PUT", "/v1/users/me", b'{"handle": "plain_text_1"}'),
])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_not_sent_as_json_is_a_415(stack: Stack, method: str, path: str, body: bytes,
                                               content_type: str | None) -> None:
    headers = stack.auth(USER) | ({"Content-Type": content_type} if content_type else {})
    got, answer_headers, answer = raw(stack, method, path, headers, body)
    assert got == 415 and json_error(got, answer_headers, answer) == "unsupported_media_type", (got, answer)


def test_json_with_a_charset_is_json(stack: Stack) -> None:
    headers = stack.auth(USER) | {"Content-Type": "Application/JSON; charset=utf-8"}
    got, _, answer = raw(stack, "POST", "/v1/tweets", headers, b'{"text": "json with a charset"}')
    assert got == 201, answer


def test_a_registry_error_that_is_no_outage_lets_nobody_through(stack: Stack) -> None:
    """The fail-open policy's other side (ARCHITECTURE.md): an id the store cannot even encode
    (here beyond 64 bits, past the front door's own check) is an error, not a reason to let the
    user in. Its outage side: test_users.py, the registry unreachable."""
    async def check() -> None:
        store = Store(f"127.0.0.1:{stack.topo.cassandra_proxy_port}")
        try:
            users = Users(store)
            await users.require(USER)                   # registered: passes
            with pytest.raises(Exception) as raised:    # noqa: PT011 - whatever the driver raises, not a pass
                await users.require(2**64)
            assert "outage" not in type(raised.value).__name__.lower()
        finally:
            store.close()

    asyncio.run(check())


def test_paths_no_route_has_share_one_metrics_label(stack: Stack) -> None:
    """A scanner's paths (and one with a line separator in it) must not each become a series of
    the API's /metrics for the rest of its life: they are all `unmatched`."""
    probes = [f"/v1/scan-{n}/x" for n in range(5)] + ["/v1/users/x\u2028y", "/wp-login.php"]
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        assert {c.get(p, headers=stack.auth(1)).status_code for p in probes} <= {400, 404}
    labels = set()
    for i in (1, 2):
        text = httpx.get(f"http://127.0.0.1:{stack.topo.api_port(i)}/metrics", timeout=5).text
        labels |= {s.labels["endpoint"] for f in text_string_to_metric_families(text)
                   if f.name == "feed_http_request_duration_seconds" for s in f.samples}
    assert "unmatched" in labels and not any("scan" in label or "wp-login" in label for label in labels), labels
    assert all(label == "unmatched" or label.startswith("/") and "{" not in label.replace("{id}", "")
               for label in labels), labels
