"""The verdict table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from harness.checks import CheckResult, Verdict, overall

STYLES = {Verdict.PASS: "bold green", Verdict.FAIL: "bold red", Verdict.UNKNOWN: "bold yellow"}


def print_verdict_table(results: Iterable[CheckResult], console: Console) -> None:
    results = list(results)
    verdict = overall(results)
    table = Table(title="feedlab checks", caption=f"overall: {verdict.value.upper()}", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("summary")
    for r in results:
        table.add_row(r.name, f"[{STYLES[r.verdict]}]{r.verdict.value.upper()}[/]", r.summary)
    console.print(table)
