"""The OpenAPI document says exactly which ids, cursors and texts the service accepts: its patterns
agree with the service's own parsing, at the edges (0, leading zeros, 2**63), at random, and for
every code point."""

from __future__ import annotations

import json
import random
import re
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from targets.feed.errors import ApiError
from targets.feed.ranking import CANDIDATES
from targets.feed.validation import parse_new_tweet, parse_profile, positive_id

pytestmark = pytest.mark.unit

DOC = yaml.safe_load((Path(__file__).resolve().parents[2] / "targets/feed/openapi.yaml").read_text())
ID = re.compile(DOC["components"]["schemas"]["Id"]["pattern"])
FEED_CURSOR = re.compile(next(p["schema"]["pattern"] for p in DOC["paths"]["/v1/feed"]["get"]["parameters"]
                              if p["name"] == "cursor"))
MAX = 2**63 - 1
TEXT = DOC["components"]["schemas"]["NewTweet"]["properties"]["text"]["pattern"]
DISPLAY_NAME = (DOC["paths"]["/v1/users/me"]["put"]["requestBody"]["content"]["application/json"]["schema"]
                ["properties"]["display_name"]["pattern"])
# ECMA-262's white space (JSON Schema's regex dialect): WhiteSpace and LineTerminator, that is
# TAB, VT, FF, ZWNBSP, the space separators (Zs) and LF, CR, LS, PS. Derived here from the
# Unicode database, independently of the character class the service and the document spell out.
ECMA_WHITE_SPACE = {chr(c) for c in (0x09, 0x0B, 0x0C, 0xFEFF, 0x0A, 0x0D, 0x2028, 0x2029)} | {
    chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}


def edge_values() -> list[str]:
    rng = random.Random(7)
    values = ["0", "1", "9", "10", "007", "", "-1", "1e3", " 1", "１", str(MAX), str(MAX + 1), str(2**64), "9" * 19]
    digits = str(MAX)
    for _ in range(5000):   # numbers sharing a prefix of every length with the bound, then anything
        keep = rng.randrange(len(digits) + 1)
        tail = "".join(rng.choice("0123456789") for _ in range(len(digits) - keep))
        values.append(digits[:keep] + tail)
        values.append(str(rng.randrange(1, 10**rng.randrange(1, 21))))
    return values


def test_the_id_pattern_is_exactly_the_service_s_ids() -> None:
    for value in edge_values():
        assert bool(ID.fullmatch(value)) == (positive_id(value) is not None), value


def test_the_feed_cursor_pattern_is_an_id_or_an_id_with_an_offset_the_ranking_has() -> None:
    assert FEED_CURSOR.fullmatch(str(MAX)) and FEED_CURSOR.fullmatch(f"{MAX}-{CANDIDATES - 1}")
    for offset in range(0, CANDIDATES + 50):
        assert bool(FEED_CURSOR.fullmatch(f"12-{offset}")) == (0 < offset < CANDIDATES), offset
    for value in ("0-5", "012-5", f"{MAX + 1}-5", "12-", "-5", "12-05", ""):
        assert not FEED_CURSOR.fullmatch(value), value


def accepted(parse, body: dict[str, str]) -> bool:
    try:
        parse(json.dumps(body).encode())
    except ApiError:
        return False
    return True


@pytest.mark.parametrize("field", ["text", "display_name"])
def test_only_white_space_is_what_the_document_s_pattern_calls_white_space_for_every_code_point(field: str) -> None:
    pattern = re.compile(TEXT if field == "text" else DISPLAY_NAME)
    parse = parse_new_tweet if field == "text" else parse_profile
    base = {"handle": "probe"} if field == "display_name" else {}
    # U+0085 and U+001C..U+001F are white space to Python's str.isspace() and not to ECMA-262
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:   # a lone surrogate is no JSON text
            continue
        one = chr(code)
        assert bool(pattern.search(one)) == (one not in ECMA_WHITE_SPACE), hex(code)
        if code < 0x3100 or code in (0xFEFF, 0x10000, sys.maxunicode):
            assert accepted(parse, {**base, field: one * 3}) == (one not in ECMA_WHITE_SPACE), hex(code)
    assert accepted(parse, {**base, field: " \u0085 "}) and not accepted(parse, {**base, field: " \u3000\ufeff\t"})
