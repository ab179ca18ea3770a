"""docker-compose.yml cannot be run here (no Docker engine), so it is kept honest by checking it against the
settings classes the services really read."""

import re
from pathlib import Path

import pytest
import yaml

from assignment.settings import AssignmentSettings
from intake.settings import IntakeSettings
from reporting.settings import ReportingSettings
from sla.settings import SlaSettings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS = {
    "intake": IntakeSettings,
    "sla": SlaSettings,
    "assignment": AssignmentSettings,
    "reporting": ReportingSettings,
}


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_variable_of_a_service_is_one_its_settings_read(service):
    settings_class = SETTINGS[service]
    environment = COMPOSE["services"][service]["environment"]
    assert environment.pop("SERVICE") == service, "SERVICE picks the module the image runs"
    known = {name.upper() for name in settings_class.model_fields}
    assert set(environment) <= known, f"variables no settings field reads: {set(environment) - known}"
    required = {name.upper() for name, field in settings_class.model_fields.items() if field.is_required()}
    assert required <= set(environment), f"required variables missing: {required - set(environment)}"
    settings = settings_class(**{name.lower(): value for name, value in environment.items()})
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert str(settings.http_port) == environment["HTTP_PORT"]


def test_every_service_is_built_from_the_one_dockerfile():
    for service in SETTINGS:
        assert COMPOSE["services"][service]["build"] == "."
    assert (ROOT / "Dockerfile").exists()


def test_reporting_uses_the_clickhouse_server_of_the_compose_file():
    environment = COMPOSE["services"]["reporting"]["environment"]
    assert environment["CLICKHOUSE_URL"] == "http://clickhouse:8123"
    assert "clickhouse" in COMPOSE["services"]


def test_the_compose_broker_runs_the_kafka_version_the_local_launcher_pins():
    pinned = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "deploy/kafka/pom.xml").read_text())
    assert pinned is not None
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{pinned.group(1)}"
