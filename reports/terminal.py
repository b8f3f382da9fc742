"""The verdict table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.checks import CheckResult, Verdict, invalid, overall

STYLES = {Verdict.PASS: "bold green", Verdict.FAIL: "bold red", Verdict.UNKNOWN: "bold yellow"}


def print_verdict_table(results: Iterable[CheckResult], console: Console) -> None:
    results = list(results)
    verdict = overall(results)
    spoilers = [r.name for r in results if r.invalidates_run and r.verdict is Verdict.FAIL]
    caption = f"overall: {verdict.value.upper()}" + (
        f" (INVALID RUN: the {' and the '.join(spoilers)} check{'s' if len(spoilers) > 1 else ''} found it "
        "unmeasured; see their summaries)" if invalid(results) else "")
    table = Table(title="feedlab checks and gates", caption=caption, show_lines=False)
    table.add_column("check / gate", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("summary")
    for r in results:
        shown = f"[{STYLES[r.verdict]}]{r.verdict.value.upper()}[/]" + ("" if r.gating else " (report only)")
        # escaped: a gate's name holds its window in brackets, which rich would take for markup
        table.add_row(escape(r.name if r.kind == "check" else f"gate {r.name}"), shown, escape(r.summary))
    console.print(table)


DELTA_STYLES = {"regressed": "bold red", "improved": "green"}


def print_comparison(saved: dict[str, Any], console: Console, *, all_rows: bool = True) -> None:
    """The stored comparison (harness.compare) as a table: every figure, or only those that moved."""
    from harness.compare import shown

    table = Table(title=f"against baseline {saved['baseline_run']}", caption=escape(saved["result"]["summary"]))
    for column in ("figure", "baseline", "this run", "change", "verdict"):
        table.add_column(column, no_wrap=column != "figure")
    for d in saved["deltas"]:
        if not all_rows and d["verdict"] not in DELTA_STYLES:
            continue
        change = "" if d["change_pct"] in (None, "inf", "-inf") else f"{d['change_pct']:+.0%}"
        style = DELTA_STYLES.get(d["verdict"])
        table.add_row(escape(d["figure"]), shown(d["baseline"], d["unit"]), shown(d["candidate"], d["unit"]),
                      change, f"[{style}]{d['verdict']}[/]" if style else d["verdict"])
    console.print(table)
