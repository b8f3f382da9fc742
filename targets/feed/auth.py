"""Bearer tokens: HS256 JWTs whose subject is the user id. A user acts only as itself."""

from __future__ import annotations

import functools

import jwt

# Verified tokens kept per API process. A token carries no expiry, so its verdict never
# changes for a given secret; decoding and checking the HMAC on every request was 4 % of the
# API's CPU on the feed read path (py-spy at 900 requests/s). Bounded: forged tokens only
# push out older entries, and a miss just verifies again.
VERIFIED_TOKENS = 65_536


def issue_token(secret: str, user_id: int) -> str:
    return jwt.encode({"sub": str(user_id)}, secret, algorithm="HS256")


def user_from_header(secret: str, header: str | None) -> int | None:
    """The authenticated user id, or None for a missing, malformed or forged token."""
    if not header or not header.startswith("Bearer "):
        return None
    return _verified(secret, header[7:])


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(secret: str, token: str) -> int | None:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub"]})
        return int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
