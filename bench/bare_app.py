"""The read-path benchmark's yardsticks, each answering GET /v1/feed with a canned page the size of
a real one and served exactly like the feed API (same uvicorn flags, same ports, behind the same
nginx):

- `create_app`, the bare route: the page from memory;
- `create_one_read_app`, the one-read floor: the page after the one Redis command that any feed
  page of this design costs, whatever else its code does: the feed's own script reading the
  reader's timeline page and follow set in the reader's slot, through Toxiproxy like every
  client of a store. A GET /v1/feed that makes one Redis call per page can serve at most this
  many pages/s here;
- `create_page_reads_app`, the reads floor: the page after the Redis reads the feed makes for
  it, no more: that script, then the tweet objects and like counters of the ids it gave (one
  command per node holding them, in parallel, as the feed hydrates). The feed's own code adds
  only what is not I/O (validation, the merge and the filter, building the page), so this is
  the most its design can serve here: its figure ÷ the bare route's bounds the benchmark's
  ratio on this machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from targets.feed.app import decode_cursor, encode_cursor, parse_limit
from targets.feed.auth import user_from_header
from targets.feed.cache import FeedCache
from targets.feed.follow_sets import FollowSets
from targets.feed.settings import Settings

# 20 tweets of the shape GET /v1/feed returns, so every side sends the same bytes.
_TWEET: dict[str, object] = {
    "tweet_id": "7400000000000000000", "author": {"user_id": "1234", "handle": "@user1234"}, "text": "x" * 60,
    "media": [], "reply_to": None, "created_at": "2026-11-24T12:00:00.000Z", "deleted": False,
    "engagement": {"likes": 3, "retweets": 0, "likes_display": "3"}}
# A cursor the feed API would issue, so a reader following it asks the one-read floor for a real
# second page.
_PAGE = orjson.dumps({"tweets": [_TWEET] * 20, "next_cursor": encode_cursor(7400000000000000000), "has_more": True})
_UNAUTHORIZED = orjson.dumps({"error": {"code": "unauthorized", "message": "a valid bearer token is required"}})


async def feed(request: Request) -> Response:
    return Response(_PAGE, media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/v1/feed", feed), Route("/healthz", healthz)])


async def read_page_ids(request: Request) -> list[int] | None:
    """The reader's page of ids and follow set, read as the feed reads them (None: no valid token)."""
    state = request.app.state
    user = user_from_header(state.secret, request.headers.get("authorization"))
    if user is None:
        return None
    limit = parse_limit(request.query_params.get("limit"))
    ids, got = await state.cache.timeline_page(user, decode_cursor(request.query_params.get("cursor")), limit + 1,
                                               beside=state.follows.beside(user))
    state.follows.read(user, got)   # keeps this process's copy of the follow set, as the feed does
    return (ids or [])[:limit]     # the feed reads one id more than it shows, to tell whether more follow


async def one_read_feed(request: Request) -> Response:
    if await read_page_ids(request) is None:
        return Response(_UNAUTHORIZED, status_code=401, media_type="application/json")
    return Response(_PAGE, media_type="application/json")


async def page_reads_feed(request: Request) -> Response:
    ids = await read_page_ids(request)
    if ids is None:
        return Response(_UNAUTHORIZED, status_code=401, media_type="application/json")
    await request.app.state.cache.get_tweets(ids)
    return Response(_PAGE, media_type="application/json")


def _app_with_cache(feed_route: Route) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = Settings.from_env()
        app.state.secret = settings.token_secret
        app.state.cache = FeedCache(settings.redis_nodes)
        app.state.follows = FollowSets(app.state.cache.rc)
        yield
        await app.state.follows.close()
        await app.state.cache.close()

    return Starlette(routes=[feed_route, Route("/healthz", healthz)], lifespan=lifespan)


def create_one_read_app() -> Starlette:
    return _app_with_cache(Route("/v1/feed", one_read_feed))


def create_page_reads_app() -> Starlette:
    return _app_with_cache(Route("/v1/feed", page_reads_feed))
