"""Bearer tokens: HS256 JWTs whose subject is the user id. A user acts only as itself."""

from __future__ import annotations

import jwt


def issue_token(secret: str, user_id: int) -> str:
    return jwt.encode({"sub": str(user_id)}, secret, algorithm="HS256")


def user_from_header(secret: str, header: str | None) -> int | None:
    """The authenticated user id, or None for a missing, malformed or forged token."""
    if not header or not header.startswith("Bearer "):
        return None
    try:
        claims = jwt.decode(header[7:], secret, algorithms=["HS256"], options={"require": ["sub"]})
        return int(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
