"""The whole system as `make run` starts it: four service processes under honcho from deploy/Procfile, against a
real broker, driven over HTTP only."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from deploy.kafka.launcher import free_ports
from tests.polling import eventually
from ticketstream_shared.runtime.auth import write_dev_keys

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SERVICES = ("intake", "sla", "assignment", "reporting")


def processes_marked(marker: str) -> list[int]:
    """Processes whose environment carries `marker`: everything this system started, however it was spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def system(kafka_bootstrap, tmp_path_factory):
    """Yields (base URL per service, dev keys); on exit stops honcho as Ctrl-C would and checks nothing is left."""
    local = tmp_path_factory.mktemp("local")
    dev_keys_path, api_keys_path = write_dev_keys(local)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    marker = f"TICKETSTREAM_E2E_RUN={uuid.uuid4()}"
    environment = {
        **os.environ,
        "TICKETSTREAM_E2E_RUN": marker.split("=", 1)[1],
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "API_KEYS_FILE": str(api_keys_path),
        "CHDB_PATH": str(local / "clickhouse"),
        "STATE_ROOT": str(local / "state"),
        **{f"{service.upper()}_PORT": str(port) for service, port in ports.items()},
    }
    log = (local / "honcho.log").open("w")
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", "deploy/Procfile", "-d", ".", "start", *SERVICES],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    try:
        for service, url in urls.items():
            eventually(lambda url=url: _ready(url), timeout_s=60, what=f"{service} ready")
        yield urls, json.loads(dev_keys_path.read_text())
    finally:
        honcho.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            honcho.wait(timeout=30)
        finally:
            log.close()
            eventually(lambda: not processes_marked(marker), timeout_s=15, what="no process left behind")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_hours_logged_over_http_show_in_the_report(system):
    urls, keys = system
    integration = {"Authorization": f"Bearer {keys['integration']}"}
    client_id = f"e2e-{int(time.time())}"
    ticket = httpx.post(
        f"{urls['intake']}/v1/tickets",
        json={
            "client_id": client_id,
            "requester_id": "bob",
            "title": "Mail bounces",
            "category": "email",
            "priority": "P3",
        },
        headers=integration,
    )
    assert ticket.status_code == 201, ticket.text
    for minutes, billable in ((90, True), (30, False)):
        logged = httpx.post(
            f"{urls['intake']}/v1/tickets/{ticket.json()['id']}/worklogs",
            json={"technician_id": "tech-7", "minutes": minutes, "billable": billable},
            headers=integration,
        )
        assert logged.status_code == 201, logged.text

    today = datetime.now(UTC).date().isoformat()
    manager = {"Authorization": f"Bearer {keys['manager']}"}

    def report_row():
        rows = httpx.get(
            f"{urls['reporting']}/v1/reports/hours-per-client",
            params={"from": today, "to": today, "client_id": client_id},
            headers=manager,
        ).json()["rows"]
        return rows[0] if rows and rows[0]["hours"] == 2.0 else None

    row = eventually(report_row, timeout_s=20, what="the report shows both worklogs")
    assert (row["client_id"], row["hours"], row["billable_hours"], row["tickets"]) == (client_id, 2.0, 1.5, 1)

    def reporting_lag() -> list[float] | None:
        metrics = httpx.get(f"{urls['reporting']}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
        lags = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith('ticketstream_consumer_lag_messages{group="reporting"') and "tickets.events" in line
        ]
        return lags if lags and not any(lags) else None

    assert eventually(reporting_lag, timeout_s=20, what="reporting reports its lag, and has caught up")


def test_every_service_shows_what_it_processes_and_what_that_costs(system):
    """After the tickets above, each service's /metrics counts the events (intake: commands) it processed, with the
    rate and the CPU seconds per 1,000 of them that operators watch."""
    urls, keys = system

    def figures(url: str) -> dict[str, float] | None:
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
        wanted = ("ticketstream_events_processed_total", "ticketstream_events_per_second",
                  "ticketstream_cpu_seconds_per_1000_events")  # fmt: skip
        found = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith(wanted)}
        return found if found.get("ticketstream_events_processed_total", 0) > 0 else None

    for service, url in urls.items():
        found = eventually(lambda url=url: figures(url), timeout_s=20, what=f"{service} counts what it processed")
        assert found["ticketstream_events_per_second"] > 0, service
        assert found["ticketstream_cpu_seconds_per_1000_events"] > 0, service


def test_every_service_guards_its_endpoints_but_health(system):
    urls, keys = system
    for url in urls.values():
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"})
        assert metrics.status_code == 200 and "ticketstream_http_requests_total" in metrics.text
    assert httpx.get(f"{urls['reporting']}/dashboard").status_code == 401
    technician = httpx.post(f"{urls['reporting']}/dashboard/session", data={"key": keys["technician"]})
    assert technician.status_code == 403, "a technician's key does not open the manager dashboard"
