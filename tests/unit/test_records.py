"""The run record package: it depends on none of feedlab's other packages, and its typed
manifest reads what any version wrote without losing a key."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import records
from records import Manifest

pytestmark = pytest.mark.unit

OURS = {"harness", "workloads", "chaos", "reports", "targets", "bench", "tests"}


def test_the_run_record_imports_nothing_of_feedlab_but_itself() -> None:
    imported = set()
    for path in Path(records.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & OURS, imported & OURS


def test_a_manifest_keeps_keys_it_does_not_know_and_refuses_fields_it_does_not_have() -> None:
    written = {"run_id": "r1", "scenario": "smoke", "load_start_t": 10.5, "partial": None,
               "from_a_newer_feedlab": {"x": 1}}
    m = Manifest.from_json(written)
    assert (m.run_id, m.load_start_t, m.partial, m.timeline_cap) == ("r1", 10.5, False, 800)
    assert m.to_json()["from_a_newer_feedlab"] == {"x": 1} and "extra" not in m.to_json()
    m.set(load_end_t=70.0)
    assert Manifest.from_json(m.to_json()).load_end_t == 70.0
    with pytest.raises(AttributeError, match="no field load_ended"):
        m.set(load_ended=70.0)
