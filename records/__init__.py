"""The run record: what a run directory holds, and the one package every other one reads it with.

A run directory is the whole truth of a campaign (Jepsen's "history"): the workload, the
probes and the chaos schedule append JSON lines while the run goes on; checkers and the report
are pure functions of these files, so `feedlab report RUN_DIR` recomputes everything with the
stack gone. Workloads, chaos, the harness, the checks and the reports depend on this package;
it depends on none of them.

- `records.files`: the file names;
- `records.entries`: one dataclass per kind of JSON line;
- `records.fault_window`: a fault's window, recorded by chaos/ as the fault acts;
- `records.manifest`: manifest.json as a typed record;
- `records.jsonl`: appending lines, reading them back, replacing whole files.
"""

from __future__ import annotations

from records.entries import (
    Ack,
    Action,
    ArrivalSample,
    ContainerSample,
    FinalRead,
    FollowChange,
    GeneratorEvent,
    GeneratorSample,
    MachineSample,
    Observation,
    ProbeRecord,
    Request,
    Signal,
    StreamSpan,
)
from records.fault_window import FaultWindow
from records.files import (
    ACTIONS,
    ARRIVALS,
    CONTAINERS,
    FAULTS,
    FINAL_READS,
    GENERATOR,
    GENERATORS,
    GRAPH,
    GRAPH_CHANGES,
    GRAPH_EDGES,
    HISTORY,
    JUNIT,
    LEDGER,
    MACHINE,
    MANIFEST,
    OBSERVATIONS,
    PROBES,
    REPORT,
    SIGNALS,
    STREAMS,
    SUMMARY,
    SWEEP,
    TARGET_METRICS,
    WORKLOAD,
)
from records.jsonl import JsonlWriter, read_jsonl, write_json
from records.manifest import Manifest

__all__ = [
    "ACTIONS", "ARRIVALS", "Ack", "Action", "ArrivalSample", "CONTAINERS", "ContainerSample", "FAULTS",
    "FINAL_READS", "FaultWindow",
    "FinalRead", "FollowChange", "GENERATOR", "GENERATORS", "GRAPH", "GRAPH_CHANGES", "GRAPH_EDGES",
    "GeneratorEvent", "GeneratorSample", "HISTORY", "JUNIT", "JsonlWriter", "LEDGER", "MACHINE", "MANIFEST",
    "MachineSample", "Manifest", "OBSERVATIONS", "Observation", "PROBES", "ProbeRecord", "REPORT", "Request",
    "SIGNALS", "STREAMS", "SUMMARY", "SWEEP", "Signal", "StreamSpan", "TARGET_METRICS", "WORKLOAD", "read_jsonl",
    "write_json",
]
