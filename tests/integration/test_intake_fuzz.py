"""Schemathesis generates requests from intake's own OpenAPI document, valid and not, and sends them over real
HTTP to an intake on the real broker: whatever comes in, the answer is never a server error."""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from intake.app import build_app
from intake.settings import IntakeSettings
from tests.conftest import EXAMPLES, FUZZ_EXAMPLES
from tests.keys import ADMIN, TEST_KEYS, bearer
from tests.serving import SERVICE_THREAD_USES_RANDOM, served

pytestmark = [pytest.mark.integration, SERVICE_THREAD_USES_RANDOM]

UNUSED = "the API keys come from tests.keys"
SCHEMA = schemathesis.openapi.from_dict(build_app(IntakeSettings(api_keys_file=UNUSED), TEST_KEYS).openapi()).include(
    path_regex="^/v1/"
)


@pytest.fixture(scope="module")
def intake_url(kafka_bootstrap: str) -> Iterator[str]:
    """An intake served by uvicorn on a real port, as in production (its presence watch off, as the in-process
    replicas' of conftest.running_intake: it would advertise their address)."""
    settings = IntakeSettings(kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=UNUSED, peer_probe_seconds=0)
    app = build_app(settings, TEST_KEYS)
    with served(app, what="intake") as url:
        yield url


@SCHEMA.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=EXAMPLES)
def test_no_request_makes_intake_fail(case, intake_url):
    case.call_and_validate(base_url=intake_url, headers=bearer(ADMIN), checks=[not_a_server_error])
