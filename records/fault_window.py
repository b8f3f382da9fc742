"""A fault's window: the one type a fault records itself in while it acts (chaos/) and the run
record keeps (faults.jsonl), read by the checks and the report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FaultWindow:
    """A chaos action, from invoke to the end of its heal. Filled in as the fault acts: its
    target resolved (`redis-primary-1` becomes the node), `start_t` when it took effect (None:
    never invoked), `end_t` when its heal ended (None: never healed, the run was cut), and
    its events (kill, failover complete, healed) with their times."""

    name: str              # e.g. "kill-redis-primary"
    target: str = ""       # component or link name, e.g. "redis-2", "api->redis-2"
    start_t: float | None = None
    end_t: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # [{"t":..., "what":...}]

    @property
    def start(self) -> float:
        """When it took effect: every window of a run's record has one (only invoked faults
        are recorded)."""
        if self.start_t is None:
            raise ValueError(f"fault {self.name} @ {self.target} was never invoked: it has no window")
        return self.start_t

    def event(self, what: str, **details: Any) -> None:
        self.events.append({"t": time.time(), "what": what, **details})
