"""junit.xml: one testsuite "feedlab", one testcase per check, so CI shows checks as tests.

fail is a <failure>, unknown an <error> (the check could not decide); the evidence goes to
<system-out>, which CI servers show next to the test.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from harness.checks import CheckResult, Verdict


def render(results: list[CheckResult], jsonable: Callable[[Any], Any]) -> bytes:
    failures = sum(r.verdict is Verdict.FAIL for r in results)
    errors = sum(r.verdict is Verdict.UNKNOWN for r in results)
    suites = ET.Element("testsuites", name="feedlab", tests=str(len(results)),
                        failures=str(failures), errors=str(errors))
    suite = ET.SubElement(suites, "testsuite", name="feedlab", tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="feedlab.checks", name=r.name, time="0")
        if r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=r.summary, type="fail").text = r.summary
        elif r.verdict is Verdict.UNKNOWN:
            ET.SubElement(case, "error", message=r.summary, type="unknown").text = r.summary
        ET.SubElement(case, "system-out").text = json.dumps(jsonable(r.evidence), indent=2, sort_keys=True)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
