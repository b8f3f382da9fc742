"""The graph cache (.cache/graphs) forgets graphs no campaign has used for a while."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.seeding import LAST_USED, prune

pytestmark = pytest.mark.unit


def cached(graphs: Path, name: str, days_ago: float, *, marker: bool = True) -> Path:
    folder = graphs / name
    (folder / "sstables").mkdir(parents=True)
    (folder / "graph.edges").write_bytes(b"x")
    stamped = folder / LAST_USED if marker else folder
    if marker:
        stamped.touch()
    then = time.time() - days_ago * 86400
    os.utime(stamped, (then, then))
    return folder


def test_prune_removes_only_graphs_unused_for_the_period(tmp_path: Path) -> None:
    old = cached(tmp_path, "old", days_ago=30)
    old_unmarked = cached(tmp_path, "old-unmarked", days_ago=30, marker=False)   # made before markers
    recent = cached(tmp_path, "recent", days_ago=1)
    wanted = cached(tmp_path, "wanted", days_ago=30)   # the one being prepared: never removed

    removed = prune(tmp_path, keep=wanted, unused_days=14)

    assert sorted(removed) == sorted([old, old_unmarked])
    assert not old.exists() and not old_unmarked.exists()
    assert recent.exists() and wanted.exists()


def test_prune_of_a_missing_cache_is_a_no_op(tmp_path: Path) -> None:
    assert prune(tmp_path / "graphs", keep=tmp_path / "graphs" / "x") == []
