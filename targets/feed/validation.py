"""Validation of request bodies (POST /v1/tweets: design §05b), before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from targets.feed.errors import ApiError

# Lengths are counted in Unicode code points, as JSON Schema's maxLength counts them, so that the
# OpenAPI document says exactly what is accepted (an emoji of several code points counts as
# several; Twitter's own weighting counts most emoji as 2).
MAX_TEXT = 280
MAX_MEDIA = 4
# The balancer's limit (nginx client_max_body_size 64k). A 280-grapheme text of emoji
# sequences sent with \u escapes is about 18.5 KB, so a lower limit refused valid tweets.
MAX_BODY = 64 * 1024
MAX_IDEMPOTENCY_KEY = 128
MAX_DISPLAY_NAME = 50   # design §07: display_name VARCHAR(50)
# design §07: handle VARCHAR(15); the characters Twitter allows. Unique regardless of case.
_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
# Seeded accounts are registered as "user<id>" without a lightweight transaction
# (harness/seeding.py), so nobody may register such a handle through the API.
_SEEDED_HANDLE = re.compile(r"user[0-9]+", re.IGNORECASE)
# str.isdigit() alone also passes "²" and 5,000-digit strings, which int() then refuses with
# a ValueError (a 500); a 63-bit id has at most 19 ASCII digits. Canonical only: "007" is not
# an id (the OpenAPI document's patterns say so, and two spellings of one id would be two
# cache keys in a client).
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
# "Not only white space" with white space as the OpenAPI document's pattern counts it: ECMA-262's
# \s (JSON Schema's regex dialect), spelled out so that no engine's own idea of \s decides. Python's
# str.isspace() also counts U+001C..U+001F and U+0085, so a text of one U+0085, valid by the
# document, was refused (schemathesis, seed 1518162835).
ECMA_WHITE_SPACE = r"\t\n\u000b\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_NOT_WHITE_SPACE = re.compile(f"[^{ECMA_WHITE_SPACE}]")


def visible(text: str) -> bool:
    """True if text has a character that is not white space."""
    return _NOT_WHITE_SPACE.search(text) is not None


def decimal(raw: object) -> int | None:
    """A canonical ASCII decimal string of at most 19 digits as an int, else None."""
    if isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        return int(raw)
    return None


def positive_id(raw: object) -> int | None:
    """A user or tweet id (a positive 63-bit integer written in decimal), else None."""
    value = decimal(raw)
    return value if value is not None and 0 < value < 2**63 else None


@dataclass(frozen=True, slots=True)
class NewTweet:
    text: str
    media_ids: list[str]
    reply_to: int | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class NewProfile:
    handle: str            # without the "@"
    display_name: str | None


def json_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "bad_json", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "body must be a JSON object")
    return data


def parse_profile(body: bytes) -> NewProfile:
    data = json_object(body)
    handle = data.get("handle")
    if isinstance(handle, str) and handle.startswith("@"):
        handle = handle[1:]
    if not isinstance(handle, str) or not _HANDLE.fullmatch(handle):
        raise ApiError(400, "bad_handle", "handle must be 1 to 15 letters, digits or underscores (an optional @ first)")
    if _SEEDED_HANDLE.fullmatch(handle):   # well formed, and taken: a 409 like any handle taken
        raise ApiError(409, "reserved_handle", "handles of the form user<digits> are reserved for seeded accounts")
    name = data.get("display_name")
    if name is not None and not (isinstance(name, str) and visible(name) and len(name) <= MAX_DISPLAY_NAME):
        raise ApiError(400, "bad_display_name", f"display_name must be 1 to {MAX_DISPLAY_NAME} characters, "
                                                "not only white space")
    return NewProfile(handle, name)


def parse_new_tweet(body: bytes) -> NewTweet:
    data = json_object(body)
    text = data.get("text")
    if not isinstance(text, str) or not visible(text) or len(text) > MAX_TEXT:
        raise ApiError(400, "bad_text", f"text must be 1 to {MAX_TEXT} characters, not only white space")
    media = data.get("media_ids", [])   # absent is none; null is not a list (the OpenAPI document)
    if not isinstance(media, list) or len(media) > MAX_MEDIA or \
            not all(isinstance(m, str) and 0 < len(m) <= 64 for m in media) or len(set(media)) != len(media):
        raise ApiError(400, "bad_media_ids", f"media_ids must be a list of at most {MAX_MEDIA} distinct media ids")
    reply = data.get("reply_to_tweet_id")
    reply_to = positive_id(reply)
    if reply is not None and reply_to is None:
        raise ApiError(400, "bad_reply_to", "reply_to_tweet_id must be a tweet id string or null")
    key = data.get("idempotency_key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        raise ApiError(400, "bad_idempotency_key",
                       f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return NewTweet(text, media, reply_to, key)
