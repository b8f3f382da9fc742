"""Bearer tokens: who a header authenticates, also once verdicts are cached per process."""

from __future__ import annotations

import jwt
import pytest

from targets.feed.auth import issue_token, user_from_header

pytestmark = pytest.mark.unit

SECRET = "s" * 64
OTHER = "o" * 64


def test_a_valid_token_names_its_user_every_time() -> None:
    header = f"Bearer {issue_token(SECRET, 42)}"
    assert user_from_header(SECRET, header) == 42
    assert user_from_header(SECRET, header) == 42


def test_a_cached_token_is_not_accepted_under_another_secret() -> None:
    token = issue_token(SECRET, 7)
    assert user_from_header(SECRET, f"Bearer {token}") == 7
    assert user_from_header(OTHER, f"Bearer {token}") is None


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic abc", "Bearer not-a-jwt",
    f"Bearer {issue_token(OTHER, 7)}",                                        # forged: another key
    "Bearer " + jwt.encode({"sub": "seven"}, SECRET, algorithm="HS256"),     # subject not an id
    "Bearer " + jwt.encode({"user": "7"}, SECRET, algorithm="HS256"),        # no subject
])
def test_missing_malformed_or_forged_tokens_authenticate_nobody(header: str | None) -> None:
    assert user_from_header(SECRET, header) is None
    assert user_from_header(SECRET, header) is None   # and still nobody once the verdict is cached


def test_a_tampered_token_is_refused_after_the_genuine_one_was_cached() -> None:
    token = issue_token(SECRET, 9)
    assert user_from_header(SECRET, f"Bearer {token}") == 9
    head, _, sig = token.rpartition(".")
    tampered = head.replace(head.split(".")[1], jwt.utils.base64url_encode(b'{"sub":"10"}').decode()) + "." + sig
    assert user_from_header(SECRET, f"Bearer {tampered}") is None
