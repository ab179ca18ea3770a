"""Fixtures of the integration tier: services running in-process against the session's real broker."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from intake.app import build_app
from intake.settings import IntakeSettings
from tests.keys import TEST_KEYS
from tests.polling import eventually

NEW_TICKET = {
    "client_id": "acme",
    "requester_id": "alice",
    "title": "Laptop will not boot",
    "category": "hardware",
    "priority": "P2",
}


def running_intake(kafka_bootstrap: str, **configured: object) -> TestClient:
    """An intake app over the broker; entering the client runs its lifespan (it reads the log back first). Without a
    `state_dir`, its local store is a temporary directory: each one starts as on a new machine."""
    # Served in this process, not on its HTTP port: every such replica would advertise the same address, and each
    # one's start would remove the others from the owners group as its own former process. (The presence watch is
    # tested with intake processes, test_intake_replicas.)
    configured.setdefault("peer_probe_seconds", 0)
    settings = IntakeSettings(
        kafka_bootstrap_servers=kafka_bootstrap, api_keys_file="unused-keys-come-from-tests", **configured
    )
    return TestClient(build_app(settings, TEST_KEYS))


@pytest.fixture(scope="session")
def intake(kafka_bootstrap: str) -> Iterator[TestClient]:
    """One intake for the whole session: the tests make their own tickets, so they do not disturb each other."""
    with running_intake(kafka_bootstrap) as client:
        eventually(lambda: client.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        yield client
