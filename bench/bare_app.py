"""The read-path benchmark's yardstick: a bare Starlette JSON route answering GET /v1/feed with a
canned page the size of a real one, served exactly like the feed API (same uvicorn flags, same
ports, behind the same nginx)."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# 20 tweets of the shape GET /v1/feed returns, so both sides send the same bytes.
_TWEET: dict[str, object] = {
    "tweet_id": "7400000000000000000", "author": {"user_id": "1234", "handle": "@user1234"}, "text": "x" * 60,
    "media": [], "reply_to": None, "created_at": "2026-11-24T12:00:00.000Z", "deleted": False,
    "engagement": {"likes": 3, "retweets": 0, "likes_display": "3"}}
_PAGE = orjson.dumps({"tweets": [_TWEET] * 20, "next_cursor": "NzQwMDAwMDAwMDAwMDAwMDAwMA", "has_more": True})


async def feed(request: Request) -> Response:
    return Response(_PAGE, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/v1/feed", feed), Route("/healthz", healthz)])
