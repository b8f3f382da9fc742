"""The API contract: schemathesis generates requests from targets/feed/openapi.yaml against the
real stack. Every response must match the document (status, content type, schema), no request
may get a 5xx, and schema-invalid input must be refused with a 4xx.

It talks to one API instance directly: the contract is the service's, and nginx in front
answers some requests itself (TRACE gets nginx's own HTML 405).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict
from schemathesis.specs.openapi.checks import positive_data_acceptance

from targets.feed.auth import issue_token
from tests.stack.conftest import SECRET, Stack

pytestmark = pytest.mark.stack

OPENAPI = Path(__file__).resolve().parents[2] / "targets" / "feed" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 150
# /v1/stream is an endless event stream, which a request-response checker cannot wait out;
# tests/stack/test_stream.py covers it.
schema = schemathesis.openapi.from_path(OPENAPI).exclude(path="/v1/stream")
generated: list[str] = []
CALLER = 259_001   # registered (conftest.REGISTERED_USERS)


@schema.auth()
class Bearer:
    """One generated user's token on every case; schemathesis still strips it for its
    missing-authentication cases, which must then get a 401."""

    def get(self, case: schemathesis.Case, ctx: object) -> str:
        return issue_token(SECRET, CALLER)

    def set(self, case: schemathesis.Case, data: str, ctx: object) -> None:
        if case.headers is None:
            case.headers = CaseInsensitiveDict()
        case.headers["Authorization"] = f"Bearer {data}"



def test_the_served_document_is_the_committed_one(stack: Stack) -> None:
    served = httpx.get(f"{stack.url}/openapi.json", timeout=5).json()
    assert served == yaml.safe_load(OPENAPI.read_text())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, stack: Stack) -> None:
    generated.append(case.operation.label)
    # positive_data_acceptance is left out on purpose: a schema-valid tweet may still be refused
    # (400) for what a schema cannot say: media registered by someone else, a reply to a tweet
    # that does not exist, more than 280 characters as users count them, only white space.
    case.call_and_validate(base_url=f"http://127.0.0.1:{stack.topo.api_port(1)}",
                           excluded_checks=[positive_data_acceptance])


def test_at_least_a_thousand_cases_were_generated() -> None:
    """Runs after the parametrized contract tests (same module, collected in order)."""
    print(f"schemathesis: {len(generated)} generated cases over {len(set(generated))} operations")
    assert len(generated) >= 1000, f"only {len(generated)} cases: {sorted(set(generated))}"
