"""docker-compose.yml cannot be run here (no Docker engine), so it is kept honest by checking it against the
settings classes the services really read."""

import re
import shlex
import typing
from pathlib import Path, PurePosixPath

import pytest
import yaml
from pydantic import SecretStr

from assignment.settings import AssignmentSettings
from intake.settings import IntakeSettings
from notify.settings import NotifySettings
from reporting.settings import ReportingSettings
from sla.settings import SlaSettings
from tests.unit.test_image import copied_sources, instructions

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS = {
    "intake": IntakeSettings,
    "sla": SlaSettings,
    "assignment": AssignmentSettings,
    "reporting": ReportingSettings,
    "notify": NotifySettings,
}
#: The uid:gid the image runs as (its USER).
IMAGE_USER = "65534:65534"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_variable_of_a_service_is_one_its_settings_read(service):
    settings_class = SETTINGS[service]
    environment = dict(COMPOSE["services"][service]["environment"])
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


def image_services() -> dict[str, dict]:
    return {name: service for name, service in COMPOSE["services"].items() if service.get("build") == "."}


def named_volumes(service: dict) -> dict[str, tuple[str, bool]]:
    """volume name -> (the path it is mounted at, read-only), for the named volumes (not host paths) of a service."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *options = entry.split(":")
        if not source.startswith((".", "/")):
            mounts[source] = (target, "ro" in options)
    return mounts


def module_file(module: str) -> Path | None:
    """The source of `python -m module`: under the repository's root (deploy) or services/ (installed packages)."""
    parts = module.split(".")
    for base in (ROOT, ROOT / "services"):
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__main__.py")):
            if candidate.exists():
                return candidate
    return None


def test_every_module_the_compose_file_runs_is_in_the_image():
    copied = copied_sources()
    modules = {}
    for name, service in image_services().items():
        command = service.get("command") or ["python", "-m", service["environment"]["SERVICE"]]
        assert command[:2] == ["python", "-m"], name
        modules[command[2]] = module_file(command[2])
        assert modules[command[2]] is not None, f"{name}: no module {command[2]}"
        assert any(modules[command[2]] == source or source in modules[command[2]].parents for source in copied), (
            f"{name}: {command[2]} is not copied into the image"
        )
    assert {"notify", "notify.sealing", "deploy.mail_sink", "deploy.kafka.launcher"} <= modules.keys()


def test_the_volumes_the_image_writes_are_owned_by_its_user():
    """A new named volume takes the owner of the image's directory it is mounted on; the image runs as 65534, so a
    directory it writes must be created and chowned to it in the Dockerfile, or the service cannot write there."""
    chowned = set()
    for instruction, arguments in instructions():
        if instruction == "RUN":
            for command in re.split(r"&&|;", arguments):
                words = shlex.split(command)
                if words[:2] == ["chown", IMAGE_USER]:
                    chowned |= set(words[2:])
    assert ("USER", IMAGE_USER) in instructions()
    for name, service in image_services().items():
        for volume, (target, read_only) in named_volumes(service).items():
            if not read_only:
                assert target in chowned, f"{name} writes {volume} at {target}, which the image's user does not own"


def test_notify_reads_the_sealing_key_the_one_shot_job_writes():
    notify, job = COMPOSE["services"]["notify"], COMPOSE["services"]["notify-key"]
    key_file = PurePosixPath(notify["environment"]["NOTIFY_SECRETS_KEY_FILE"])
    assert job["command"] == ["python", "-m", "notify.sealing", str(key_file)]
    (volume,) = [volume for volume, (target, _) in named_volumes(job).items() if key_file.is_relative_to(target)]
    target, read_only = named_volumes(notify)[volume]
    assert key_file.is_relative_to(target) and read_only, "notify only reads its key"
    assert notify["depends_on"]["notify-key"] == {"condition": "service_completed_successfully"}
    assert volume in COMPOSE["volumes"], "a named volume: the key outlives the containers"
    assert "restart" not in job, "a one-shot job"


def test_notify_mails_to_the_local_sink_and_takes_mail_on_its_gateway_port():
    notify, sink = COMPOSE["services"]["notify"], COMPOSE["services"]["mail"]
    environment = notify["environment"]
    command = sink["command"]
    assert command[:3] == ["python", "-m", "deploy.mail_sink"]
    option = {command[at]: command[at + 1] for at in range(3, len(command) - 1, 2)}
    assert environment["SMTP_HOST"] == "mail" and environment["SMTP_PORT"] == option["--port"]
    assert option["--host"] == "0.0.0.0"
    assert [volume for volume, (target, _) in named_volumes(sink).items() if target == option["--dir"]]
    assert "mail" in notify["depends_on"]
    settings = NotifySettings(**{name.lower(): value for name, value in environment.items() if name != "SERVICE"})
    assert settings.mail_gateway_host == "0.0.0.0"
    published = {port.split(":")[1]: port.split(":")[0] for port in notify["ports"]}
    assert published[str(settings.mail_gateway_port)] == "2526", "as `make run`"
    assert published[str(settings.http_port)] == str(settings.http_port)


def test_no_secret_value_is_written_in_the_compose_file():
    secrets = {
        name.upper()
        for settings_class in SETTINGS.values()
        for name, field in settings_class.model_fields.items()
        if SecretStr in (field.annotation, *typing.get_args(field.annotation))
    }
    assert "SMTP_PASSWORD" in secrets
    for name, service in COMPOSE["services"].items():
        assert not secrets & set(service.get("environment", {})), name


def test_reporting_uses_the_clickhouse_server_of_the_compose_file():
    environment = COMPOSE["services"]["reporting"]["environment"]
    assert environment["CLICKHOUSE_URL"] == "http://clickhouse:8123"
    assert "clickhouse" in COMPOSE["services"]


def test_the_compose_broker_runs_the_kafka_version_the_local_launcher_pins():
    pinned = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "deploy/kafka/pom.xml").read_text())
    assert pinned is not None
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{pinned.group(1)}"
