"""The API contract: schemathesis generates requests from targets/feed/openapi.yaml and sends
them through the front door (nginx) of the real stack, with every check it has (status codes,
content types, headers and bodies against the document, no 5xx, schema-valid input accepted,
schema-invalid input refused, Allow on a 405, authentication not ignored, a deleted tweet gone,
and the rest), in positive and negative modes, in all its phases (coverage, fuzzing, stateful
through the document's links).

The run's seed is random and printed; FEEDLAB_SCHEMATHESIS_SEED=N repeats a run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from targets.feed.auth import issue_token
from tests.stack.conftest import Stack

pytestmark = pytest.mark.stack

OPENAPI = Path(__file__).resolve().parents[2] / "targets" / "feed" / "openapi.yaml"
ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")   # the front door's own refusals (414, 431)
CALLER = 259_001          # registered (conftest.REGISTERED_USERS)
EXAMPLES_PER_OPERATION = 200   # the seed moves the count: 100 gave 1,745 to 2,337 cases
MIN_CASES = 2000


def test_the_served_document_is_the_committed_one(stack: Stack) -> None:
    served = httpx.get(f"{stack.url}/openapi.json", timeout=5).json()
    assert served == yaml.safe_load(OPENAPI.read_text())
    assert served["servers"] == [{"url": "/"}]   # relative: right for whichever stack serves it


def test_the_api_passes_every_schemathesis_check_through_the_front_door(stack: Stack, tmp_path: Path) -> None:
    seed = int(os.environ.get("FEEDLAB_SCHEMATHESIS_SEED", random.randrange(2**31)))
    print(f"schemathesis seed {seed} (FEEDLAB_SCHEMATHESIS_SEED={seed} repeats this run)")
    report = tmp_path / "schemathesis.json"
    argv = [str(ST), "--config-file", str(CONFIG), "run", str(OPENAPI), "--url", stack.url, "--checks", "all",
            "--mode", "all",
            "--seed", str(seed), "--max-examples", str(EXAMPLES_PER_OPERATION),
            "-H", f"Authorization: Bearer {issue_token(stack.secret, CALLER)}",
            # an endless event stream, which a request-response checker cannot wait out
            # (tests/stack/test_stream.py covers it)
            "--exclude-path", "/v1/stream",
            "--no-color", "--report", "json", "--report-json-path", str(report)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path)
    print(run.stdout[-6000:])
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(f"schemathesis: {cases['generated']} cases, seed {summary['seed']}, phases "
          f"{ {k: v['status'] for k, v in summary['phases'].items()} }")
    assert run.returncode == 0, f"seed {seed}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert summary["complete"] and not summary["failures"] and not summary["errors"]
    assert summary["operations"]["tested"] == summary["operations"]["selected"]
    assert cases["generated"] >= MIN_CASES, cases
