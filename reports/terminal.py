"""The verdict table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.checks import CheckResult, Verdict, invalid, overall

STYLES = {Verdict.PASS: "bold green", Verdict.FAIL: "bold red", Verdict.UNKNOWN: "bold yellow"}


def print_verdict_table(results: Iterable[CheckResult], console: Console) -> None:
    results = list(results)
    verdict = overall(results)
    caption = f"overall: {verdict.value.upper()}" + (" (INVALID RUN: the load generator could not keep up)"
                                                     if invalid(results) else "")
    table = Table(title="feedlab checks and gates", caption=caption, show_lines=False)
    table.add_column("check / gate", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("summary")
    for r in results:
        shown = f"[{STYLES[r.verdict]}]{r.verdict.value.upper()}[/]" + ("" if r.gating else " (report only)")
        # escaped: a gate's name holds its window in brackets, which rich would take for markup
        table.add_row(escape(r.name if r.kind == "check" else f"gate {r.name}"), shown, escape(r.summary))
    console.print(table)
