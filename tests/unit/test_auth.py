"""Bearer tokens: who a header authenticates, and when, also once verdicts are cached per process."""

from __future__ import annotations

import time

import jwt
import pytest

from targets.feed.auth import issue_token, user_from_header

pytestmark = pytest.mark.unit

SECRET = "s" * 64
OTHER = "o" * 64
NOW = 1_800_000_000.0


def signed(claims: dict[str, object], secret: str = SECRET) -> str:
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


def test_a_valid_token_names_its_user_every_time() -> None:
    header = f"Bearer {issue_token(SECRET, 42)}"
    assert user_from_header(SECRET, header) == 42
    assert user_from_header(SECRET, header) == 42


def test_a_cached_token_is_not_accepted_under_another_secret() -> None:
    token = issue_token(SECRET, 7)
    assert user_from_header(SECRET, f"Bearer {token}") == 7
    assert user_from_header(OTHER, f"Bearer {token}") is None


def test_a_token_used_before_its_expiry_is_refused_from_its_expiry_on() -> None:
    header = f"Bearer {issue_token(SECRET, 11, ttl_s=3, now=NOW)}"
    assert user_from_header(SECRET, header, now=NOW + 2.9) == 11     # verified and cached
    assert user_from_header(SECRET, header, now=NOW + 3.0) is None   # exp is exclusive
    assert user_from_header(SECRET, header, now=NOW + 20) is None


def test_a_token_is_refused_before_its_not_before_and_accepted_from_it() -> None:
    header = f"Bearer {issue_token(SECRET, 12, ttl_s=60, not_before=NOW + 10, now=NOW)}"
    assert user_from_header(SECRET, header, now=NOW + 9.5) is None
    assert user_from_header(SECRET, header, now=NOW + 10) == 12


def test_the_harness_tokens_carry_an_expiry() -> None:
    claims = jwt.decode(issue_token(SECRET, 5), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "5" and claims["exp"] > time.time() + 3600


LATER = int(time.time()) + 3600


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic abc", "Bearer not-a-jwt",
    f"Bearer {issue_token(OTHER, 7)}",                                   # forged: another key
    signed({"sub": "seven", "exp": LATER}),                              # subject not an id
    signed({"user": "7", "exp": LATER}),                                 # no subject
    signed({"sub": "7"}),                                                # no expiry
    signed({"sub": "7", "exp": "tomorrow"}),                             # expiry not a number
    signed({"sub": "18446744073709551616", "exp": LATER}),               # beyond 64 bits
    signed({"sub": "9223372036854775808", "exp": LATER}),                # 2**63: beyond a bigint
    signed({"sub": "0", "exp": LATER}),
    signed({"sub": "-7", "exp": LATER}),
    signed({"sub": "007", "exp": LATER}),                                # not canonical
    signed({"sub": " 7", "exp": LATER}),
    signed({"sub": "٧", "exp": LATER}),                                  # a digit, but not ASCII
    "Bearer " + jwt.encode({"sub": "7", "exp": LATER}, None, algorithm="none"),   # unsigned
    "Bearer " + jwt.encode({"sub": "7", "exp": LATER}, SECRET, algorithm="HS512"),  # another algorithm
])
def test_missing_malformed_forged_or_out_of_range_tokens_authenticate_nobody(header: str | None) -> None:
    assert user_from_header(SECRET, header) is None
    assert user_from_header(SECRET, header) is None   # and still nobody once the verdict is cached


def test_the_largest_user_id_is_a_subject() -> None:
    assert user_from_header(SECRET, signed({"sub": str(2**63 - 1), "exp": LATER})) == 2**63 - 1


def test_a_tampered_token_is_refused_after_the_genuine_one_was_cached() -> None:
    token = issue_token(SECRET, 9)
    assert user_from_header(SECRET, f"Bearer {token}") == 9
    head, _, sig = token.rpartition(".")
    tampered = head.replace(head.split(".")[1], jwt.utils.base64url_encode(b'{"sub":"10"}').decode()) + "." + sig
    assert user_from_header(SECRET, f"Bearer {tampered}") is None
