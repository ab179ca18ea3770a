"""Fixtures of the unit tests."""

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from assignment.app import build_app as build_assignment
from assignment.settings import AssignmentSettings
from intake.app import build_app as build_intake
from intake.settings import IntakeSettings
from notify.app import build_app as build_notify
from notify.settings import NotifySettings
from reporting.app import build_app as build_reporting
from reporting.settings import ReportingSettings
from sla.app import build_app as build_sla
from sla.settings import SlaSettings
from tests.keys import TEST_KEYS
from ticketstream_shared.runtime.logging import configure_logging
from ticketstream_shared.sealing import write_key

UNUSED = "the API keys come from tests.keys"


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict]]]:
    """The JSON lines of the services' logging (written here to a buffer, not stdout); the root logger is given
    back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("test-service")
    [service_handler] = root.handlers
    service_handler.setStream(buffer := io.StringIO())
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture(scope="session")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    """Each service's app as its bootstrap builds it, not started (nothing reached, nothing read): what a request
    meets before anything it asks for is looked at."""
    secrets_key = write_key(tmp_path_factory.mktemp("notify") / "secrets.key")
    yield {
        "intake": build_intake(IntakeSettings(api_keys_file=UNUSED), TEST_KEYS),
        "sla": build_sla(SlaSettings(api_keys_file=UNUSED), TEST_KEYS),
        "assignment": build_assignment(AssignmentSettings(api_keys_file=UNUSED), TEST_KEYS),
        "reporting": build_reporting(ReportingSettings(api_keys_file=UNUSED), TEST_KEYS),
        "notify": build_notify(NotifySettings(api_keys_file=UNUSED, notify_secrets_key_file=secrets_key), TEST_KEYS),
    }
