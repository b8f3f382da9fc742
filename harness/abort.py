"""Gates marked `abort_on_fail`, judged while the run goes on (`feedlab run --abort-on-fail`).

Every few seconds the records appended since the last look are added to what was seen, and each
such gate is judged on the run so far, exactly as it will be at the end (harness.gates). A gate
breached on too few samples is not acted on: one slow request is not a p99. The first breach
stops the load; the campaign then heals its faults, settles, reads back and reports as usual,
with the run marked aborted, and that gate fails the run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import records
from harness.checks.result import CheckResult, Verdict
from harness.gates import judge
from harness.progress import Tail
from harness.rundata import RunData, measured, parse_records
from records import FaultWindow, Manifest, ProbeRecord, Request
from workloads.gate_spec import METRICS, GateSpec, Source

# Fewer samples than this in the gate's window: not judged yet. Canaries are fewer than requests.
MIN_SAMPLES = {Source.CLIENT: 100, Source.FRESHNESS: 20}


class AbortWatch:
    def __init__(self, run_dir: Path, specs: list[GateSpec]) -> None:
        self.run_dir = run_dir
        self.specs = [s for s in specs if s.abort_on_fail]
        self._history = Tail(run_dir / records.HISTORY)
        self._probes = Tail(run_dir / records.PROBES)
        self.requests: list[Request] = []
        self.probes: list[ProbeRecord] = []

    def breach(self, manifest: Manifest, faults: list[FaultWindow]) -> CheckResult | None:
        """The first abort gate failed on the run so far, else None."""
        if not self.specs:
            return None
        self.requests += measured(parse_records(self._history.new(), Request, self.run_dir / records.HISTORY))
        self.probes += parse_records(self._probes.new(), ProbeRecord, self.run_dir / records.PROBES)
        run = RunData(self.run_dir, replace(manifest, load_end_t=None), requests=self.requests,
                      probes=self.probes, faults=faults)
        for spec in self.specs:
            result = judge(run, spec)
            if (result.verdict is Verdict.FAIL
                    and result.evidence["samples"] >= MIN_SAMPLES[METRICS[spec.metric].source]):
                return result
        return None
