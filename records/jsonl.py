"""Reading and writing a run's files: JSON lines appended while the run goes on, whole JSON
documents replaced at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson


class JsonlWriter:
    """Append-only, thread-safe JSON-lines writer (one record per line).

    Unbuffered by default: each record reaches the file at once. `buffered=True` (the request
    history, one record per request) keeps up to 64 KiB in memory until `flush()` or `close()`:
    a write per request cost the load generator more CPU than its HTTP parsing. A reader may see
    a torn last line in between; every reader here waits for its newline.
    """

    def __init__(self, path: Path, *, buffered: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh: IO[bytes] = open(path, "ab", buffering=1 << 16 if buffered else 0)  # noqa: SIM115 - closed in close()

    def write(self, record: Any) -> None:
        # orjson serialises dataclasses itself, several times faster than dataclasses.asdict
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._fh.write(line)

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each record; a torn last line (the writer was killed mid-line) is skipped."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def write_json(path: Path, payload: Any) -> None:
    """Write whole-or-nothing: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
