"""Bearer tokens: HS256 JWTs whose subject is the user id. A user acts only as itself.

A token must carry `sub` (the user id: a positive 63-bit integer written in decimal, no
leading zero) and `exp`; `nbf` is honoured when present. The signature and the claims' shape
are checked once per token and the result kept per API process (decoding and checking the
HMAC on every request was 4 % of the API's CPU on the feed read path, py-spy at 900
requests/s); the *time* claims are judged against the clock on every request, so a token that
was verified while it was valid stops working the moment it expires.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import jwt

from targets.feed.validation import positive_id

# Verified tokens kept per API process. Bounded: forged tokens only push out older entries,
# and a miss just verifies again.
VERIFIED_TOKENS = 65_536
# What the harness's tokens live for unless asked otherwise: longer than any campaign.
DEFAULT_TOKEN_TTL_S = 24 * 3600


def issue_token(secret: str, user_id: int, *, ttl_s: float = DEFAULT_TOKEN_TTL_S,
                not_before: float | None = None, now: float | None = None) -> str:
    """A token for `user_id` that expires `ttl_s` from now (and is not valid before
    `not_before`, a Unix time, when given)."""
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sub": str(user_id), "iat": int(issued), "exp": int(math.ceil(issued + ttl_s))}
    if not_before is not None:
        claims["nbf"] = int(not_before)
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True, slots=True)
class Verified:
    """A token whose signature and claims' shape were checked: who it names, and when it is valid."""

    user_id: int
    not_before: float
    expires: float

    def valid_at(self, t: float) -> bool:
        """RFC 7519 §4.1.4-5: not accepted on or after `exp`, nor before `nbf`."""
        return self.not_before <= t < self.expires


def user_from_header(secret: str, header: str | None, *, now: float | None = None) -> int | None:
    """The authenticated user id, or None for a missing, malformed, forged, expired or
    not-yet-valid token."""
    if not header or not header.startswith("Bearer "):
        return None
    verified = _verified(secret, header[7:])
    if verified is None or not verified.valid_at(time.time() if now is None else now):
        return None
    return verified.user_id


def _numeric_date(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _verified(secret: str, token: str) -> Verified | None:
    """The token's subject and validity window, if its signature holds and its claims are
    well formed; the time claims themselves are judged by the caller, on every request."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": ["sub", "exp"], "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    user = positive_id(claims.get("sub"))
    expires = _numeric_date(claims.get("exp"))
    not_before = _numeric_date(claims["nbf"]) if "nbf" in claims else -math.inf
    if user is None or expires is None or not_before is None:
        return None
    return Verified(user, not_before, expires)
