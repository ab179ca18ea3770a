"""Schemathesis generates requests from intake's own OpenAPI document, valid and not, and sends them over real
HTTP to an intake on the real broker: whatever comes in, the answer is never a server error."""

import threading
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from deploy.kafka.launcher import free_ports
from intake.app import build_app
from intake.settings import IntakeSettings
from tests.keys import ADMIN, TEST_KEYS, bearer
from tests.polling import eventually

pytestmark = pytest.mark.integration

UNUSED = "the API keys come from tests.keys"
SCHEMA = schemathesis.openapi.from_dict(build_app(IntakeSettings(api_keys_file=UNUSED), TEST_KEYS).openapi()).include(
    path_regex="^/v1/"
)


@pytest.fixture(scope="module")
def intake_url(kafka_bootstrap: str) -> Iterator[str]:
    """An intake served by uvicorn on a real port, as in production."""
    (port,) = free_ports(1)
    app = build_app(IntakeSettings(kafka_bootstrap_servers=kafka_bootstrap, api_keys_file=UNUSED), TEST_KEYS)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, timeout_s=60, what="intake ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@SCHEMA.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_intake_fail(case, intake_url):
    case.call_and_validate(base_url=intake_url, headers=bearer(ADMIN), checks=[not_a_server_error])
