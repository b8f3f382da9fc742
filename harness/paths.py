"""Where feedlab keeps things: the install cache and the runs folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("FEEDLAB_CACHE", REPO / ".cache"))


def runs_dir() -> Path:
    return Path(os.environ.get("FEEDLAB_RUNS", REPO / "runs"))


def tool(name: str) -> Path:
    """A binary bin/setup built into the cache (e.g. toxiproxy-server)."""
    return cache_dir() / "bin" / name
