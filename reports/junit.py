"""junit.xml: one testcase per check (classname feedlab.checks), per gate (feedlab.gates) and
for the comparison with a baseline run (feedlab.baselines), so CI shows each as a test.

fail is a <failure>, unknown an <error> (it could not be decided); a report-only check is
<skipped> with its verdict in the message; the evidence goes to <system-out>, which CI servers
show next to the test.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from harness.checks import CheckResult, Verdict


def render(results: list[CheckResult], jsonable: Callable[[Any], Any]) -> bytes:
    failures = sum(r.gating and r.verdict is Verdict.FAIL for r in results)
    errors = sum(r.gating and r.verdict is Verdict.UNKNOWN for r in results)
    skipped = sum(not r.gating for r in results)
    suites = ET.Element("testsuites", name="feedlab", tests=str(len(results)),
                        failures=str(failures), errors=str(errors))
    suite = ET.SubElement(suites, "testsuite", name="feedlab", tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped=str(skipped))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"feedlab.{r.kind}s", name=r.name, time="0")
        if not r.gating:
            ET.SubElement(case, "skipped", message=f"report only: {r.verdict.value}: {r.summary}")
        elif r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=r.summary, type="fail").text = r.summary
        elif r.verdict is Verdict.UNKNOWN:
            ET.SubElement(case, "error", message=r.summary, type="unknown").text = r.summary
        ET.SubElement(case, "system-out").text = json.dumps(jsonable(r.evidence), indent=2, sort_keys=True)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
