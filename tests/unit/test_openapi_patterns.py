"""The OpenAPI document says exactly which ids and cursors the service accepts: its patterns
agree with the service's own parsing, at the edges (0, leading zeros, 2**63) and at random."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from targets.feed.ranking import CANDIDATES
from targets.feed.validation import positive_id

pytestmark = pytest.mark.unit

DOC = yaml.safe_load((Path(__file__).resolve().parents[2] / "targets/feed/openapi.yaml").read_text())
ID = re.compile(DOC["components"]["schemas"]["Id"]["pattern"])
FEED_CURSOR = re.compile(next(p["schema"]["pattern"] for p in DOC["paths"]["/v1/feed"]["get"]["parameters"]
                              if p["name"] == "cursor"))
MAX = 2**63 - 1


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
