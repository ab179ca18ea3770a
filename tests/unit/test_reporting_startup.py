"""Reporting waits for a ClickHouse server that does not answer yet, as every service waits for Kafka: it stays up
and says it is not ready, instead of exiting."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from deploy.kafka.launcher import free_ports
from reporting.app import build_app
from reporting.settings import ReportingSettings
from tests.keys import TEST_KEYS


def test_reporting_waits_for_clickhouse_and_says_it_is_not_ready() -> None:
    (nobody_listens,) = free_ports(1)
    settings = ReportingSettings(
        kafka_bootstrap_servers="127.0.0.1:1",
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        clickhouse_url=f"http://127.0.0.1:{nobody_listens}",
    )
    with TestClient(build_app(settings, TEST_KEYS)) as http:
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["clickhouse"] is False, ready.text
