"""Degrade the ranking model (design §10, ranking model degradation).

The reference target's ranker reads `ranker.fail_share` from runtime_config (every API process
re-reads it within 5 s): invoke sets it to 1 (every ranking call fails), heal back to 0. The
feed must then be served chronologically (the circuit breaker's fallback), never an error.
"""

from __future__ import annotations

import time
from typing import Protocol

from records import FaultWindow

FAIL_SHARE = "ranker.fail_share"
CONFIG_TTL_S = 5.0   # how long the API processes take to see a change (targets/feed/app.py)


class RuntimeConfig(Protocol):
    """The target's runtime configuration (read by the services every few seconds)."""

    def set(self, name: str, value: str) -> None: ...


class DegradeRanker:
    name = "degrade-ranker"

    def __init__(self, config: RuntimeConfig, *, fail_share: float = 1.0) -> None:
        self.config = config
        self.fail_share = fail_share
        self.window = FaultWindow(self.name, target="ranker")
        self._set = False

    def invoke(self) -> None:
        self.window.start_t = time.time()
        self._set = True   # before the write: a write that fails half-way is still healed
        self.config.set(FAIL_SHARE, str(self.fail_share))
        self.window.event("ranker-failing", fail_share=self.fail_share, effective_within_s=CONFIG_TTL_S)

    def heal(self) -> None:
        if not self._set or self.window.end_t is not None:
            return
        self.config.set(FAIL_SHARE, "0")
        self.window.end_t = time.time()
        self.window.event("healed", fail_share=0)
