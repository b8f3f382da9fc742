"""How fast this machine runs Python today: a fixed piece of interpreter work, timed.

The same code on the same machine kind has run about 20 % slower for a whole table of
experiments, with no CPU steal reported (VERIFY-HISTORY.md, the thirteenth table: the graph
loaded in 6.05 s instead of 5.14 s, every experiment took longer, the machine was busier for
the same work). Steal catches a hypervisor that takes the CPU away; this catches a slower CPU.
Each run records the figure before its stack starts (the machine idle), and the `machine`
check shows it beside the steal, so that a failure on a slow day can be told from a
regression. It is shown, not judged: what counts as too slow depends on the machine.
"""

from __future__ import annotations

import time

WORK_ITEMS = 1_000_000
REPEATS = 5


def _work() -> int:
    return sum(i * i % 7 for i in range(WORK_ITEMS))


def interpreter_ms(repeats: int = REPEATS) -> float:
    """The fastest of `repeats` timings of the fixed work, in ms (the fastest: the others were
    interrupted by something else on the machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _work()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)
