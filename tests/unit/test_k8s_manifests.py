"""deploy/k8s cannot be applied here (no cluster), so it is kept honest in three ways: every rendered object is
validated against the official Kubernetes JSON schemas (the kubernetes-validate package, strict: unknown fields
fail), every Deployment is checked against the settings class its service really reads, and the operational
promises (probes, autoscaling bounded by partitions, graceful shutdown, non-root) are checked on the objects.

kustomize is not a dependency: `render` implements the small subset of it the manifests use and refuses every
other kustomization field, so nothing is silently ignored. Where kubectl is installed, its built-in kustomize
renders the same directories and must give the same objects."""

from __future__ import annotations

import base64
import copy
import inspect
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from assignment.settings import AssignmentSettings
from deploy.kafka import launcher
from intake.settings import IntakeSettings
from notify.settings import NotifySettings
from reporting.settings import ReportingSettings
from sla.settings import SlaSettings
from ticketstream_shared.contract.topics import DELIVERY_PARTITIONS, TEAM_PARTITIONS, TICKET_PARTITIONS
from ticketstream_shared.runtime.consumer import EventConsumer
from ticketstream_shared.runtime.settings import ServiceSettings

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
LAYOUTS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "sla": SlaSettings,
    "assignment": AssignmentSettings,
    "reporting": ReportingSettings,
    "notify": NotifySettings,
}
PORTS = {"intake": 8001, "sla": 8002, "assignment": 8003, "reporting": 8004, "notify": 8005}
#: Ports besides HTTP: notify's mail to ticket (MAIL_GATEWAY_PORT, container port -> the Service's port).
EXTRA_PORTS = {"notify": {"smtp": (2525, 25)}}
#: The replicas that can hold partitions: every consumer group of a service reads topics of this many partitions.
USEFUL_REPLICAS = {
    "intake": TICKET_PARTITIONS,
    "sla": TICKET_PARTITIONS,
    "assignment": min(TICKET_PARTITIONS, TEAM_PARTITIONS),
    "reporting": TICKET_PARTITIONS,
    # "notify" on the ticket-keyed topics, "notify-senders" on notify.deliveries
    "notify": min(TICKET_PARTITIONS, DELIVERY_PARTITIONS),
}
#: The oldest Kubernetes the manifests are meant for, and the newest the installed schemas know.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
#: What uvicorn gives requests in flight on SIGTERM (runtime/http.py serve: timeout_graceful_shutdown).
UVICORN_GRACE_S = 10
#: Secrets the operator creates (never in the manifests) and the keys the manifests read from them.
OPERATOR_SECRETS = {
    "ticketstream-api-keys": {"api-keys.json"},
    "ticketstream-secrets": {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "SMTP_USERNAME", "SMTP_PASSWORD"},
    "ticketstream-kafka-ca": {"ca.crt"},
    "ticketstream-notify-key": {"notify-secrets.key"},
    "ticketstream-privacy-key": {"privacy-master.key"},
}
#: Where notify finds its sealing key: a file of the Secret ticketstream-notify-key.
NOTIFY_KEY_FILE = "/run/ticketstream-notify/notify-secrets.key"
#: Where intake, notify and assignment find the master key of people's data keys: a file of the Secret
#: ticketstream-privacy-key.
PRIVACY_KEY_FILE = "/run/ticketstream-privacy/privacy-master.key"

# --- the kustomize subset ------------------------------------------------------------------------------------------

SUPPORTED_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}


def _identity(obj: dict[str, Any]) -> tuple[str, str, str | None, str]:
    return obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _merge(target: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    """A strategic merge patch made of maps only: maps merge, scalars replace, null deletes. Lists (merged by
    patchMergeKey in kustomize) and $patch directives are not implemented, so they are refused."""
    for key, value in patch.items():
        if key.startswith("$") or isinstance(value, list):
            raise NotImplementedError(f"{where}.{key}: only maps and scalars are supported in patches")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            node = target.setdefault(key, {})
            if not isinstance(node, dict):
                raise NotImplementedError(f"{where}.{key}: a map patched over a {type(node).__name__}")
            _merge(node, value, f"{where}.{key}")
        else:
            target[key] = value


def _pod_templates(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec")
    if spec is not None:
        yield spec


def _set_images(objects: list[dict[str, Any]], images: list[dict[str, str]]) -> None:
    for image in images:
        if set(image) - {"name", "newName", "newTag"}:
            raise NotImplementedError(f"images: only name, newName and newTag are supported: {image}")
        for obj in objects:
            for pod in _pod_templates(obj):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, _, tag = container["image"].partition(":")
                    if name == image["name"]:
                        new_tag = image.get("newTag", tag)
                        container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build directory` prints, for the fields in SUPPORTED_FIELDS."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization.pop("apiVersion") == "kustomize.config.k8s.io/v1beta1"
    assert kustomization.pop("kind") == "Kustomization"
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise NotImplementedError(f"{directory}: kustomization fields this renderer does not implement: {unsupported}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects += render(path) if path.is_dir() else [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    identities = [_identity(obj) for obj in objects]
    assert len(identities) == len(set(identities)), f"{directory}: an object is defined twice"
    # kustomize's order of the built-in transformers: patches, then namespace, then images.
    for entry in kustomization.get("patches", []):
        if set(entry) != {"path"}:
            raise NotImplementedError(f"patches: only a strategic merge patch file (path) is supported: {entry}")
        patch = yaml.safe_load((directory / entry["path"]).read_text())
        targets = [
            obj
            for obj in objects
            if (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
            == (patch["apiVersion"], patch["kind"], patch["metadata"]["name"])
        ]
        assert len(targets) == 1, f"{entry['path']} must patch exactly one object, not {len(targets)}"
        _merge(targets[0], {key: value for key, value in patch.items() if key != "metadata"}, entry["path"])
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    _set_images(objects, kustomization.get("images", []))
    return objects


RENDERED = {layout: render(directory) for layout, directory in LAYOUTS.items()}


def objects_of(layout: str, kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in RENDERED[layout] if obj["kind"] == kind}


def config_of(layout: str) -> dict[str, str]:
    return objects_of(layout, "ConfigMap")["ticketstream-config"]["data"]


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per pod: the service"
    return containers[0]


def environment(layout: str, container: dict[str, Any]) -> dict[str, str]:
    """The variables the container gets: values, and references resolved against the rendered ConfigMap; a
    Secret's key stands for the operator's value (Secrets are not in the manifests), a pod field for its own."""
    config = config_of(layout)
    resolved: dict[str, str] = {}
    for variable in container.get("env", []):
        if "value" in variable:
            resolved[variable["name"]] = variable["value"]
        elif ref := variable["valueFrom"].get("configMapKeyRef"):
            assert ref["name"] == "ticketstream-config"
            if ref["key"] in config:
                resolved[variable["name"]] = config[ref["key"]]
            else:
                assert ref.get("optional"), f"{variable['name']}: key {ref['key']} is not in the ConfigMap"
        elif ref := variable["valueFrom"].get("fieldRef"):
            resolved[variable["name"]] = f"<pod {ref['fieldPath']}>"  # known only once the pod runs
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["key"] in OPERATOR_SECRETS[ref["name"]], f"{variable['name']}: undocumented secret key"
            resolved[variable["name"]] = f"<{ref['name']}/{ref['key']}>"
    return resolved


def mount_of(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[dict[str, Any], PurePosixPath]:
    """The volume holding `path` in the container, and the path inside that volume."""
    for mount in container.get("volumeMounts", []):
        target = PurePosixPath(path)
        if target.is_relative_to(mount["mountPath"]):
            volume = next(volume for volume in pod["volumes"] if volume["name"] == mount["name"])
            return volume, target.relative_to(mount["mountPath"])
    raise AssertionError(f"{path} is on no volume of {container['name']}")


def cpu(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str | int) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(quantity))
    assert match, f"memory quantity {quantity!r} not understood"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


both_layouts = pytest.mark.parametrize("layout", sorted(LAYOUTS))
every_service = pytest.mark.parametrize("service", sorted(SETTINGS))

# --- the renderer itself -------------------------------------------------------------------------------------------


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nconfigMapGenerator: []\n"
    )
    with pytest.raises(NotImplementedError, match="configMapGenerator"):
        render(tmp_path)
    with pytest.raises(NotImplementedError, match="only maps and scalars"):
        _merge({}, {"spec": {"containers": []}}, "patch")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) not installed")
@both_layouts
def test_kubectl_kustomize_renders_the_same_objects(layout):
    built = subprocess.run(
        ["kubectl", "kustomize", str(LAYOUTS[layout])], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    theirs = {_identity(obj): obj for obj in yaml.safe_load_all(built) if obj}
    ours = {_identity(obj): obj for obj in RENDERED[layout]}
    assert theirs.keys() == ours.keys()
    for identity, obj in ours.items():
        assert theirs[identity] == obj, identity


# --- the Kubernetes schemas ----------------------------------------------------------------------------------------


@both_layouts
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(layout, version):
    problems = []
    for obj in RENDERED[layout]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert not problems, "\n".join(problems)


def test_the_schema_validation_catches_a_mistake():
    deployment = copy.deepcopy(objects_of("base", "Deployment")["intake"])
    container_of(deployment)["readinesProbe"] = container_of(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
    deployment = copy.deepcopy(objects_of("base", "Deployment")["intake"])
    container_of(deployment)["ports"][0]["containerPort"] = "8001"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@both_layouts
def test_the_layout_holds_the_services_their_autoscalers_and_the_topics_job(layout):
    assert set(objects_of(layout, "Deployment")) == set(SETTINGS)
    assert set(objects_of(layout, "Service")) == set(SETTINGS)
    assert set(objects_of(layout, "HorizontalPodAutoscaler")) == set(SETTINGS)
    assert set(objects_of(layout, "Job")) == {"ticketstream-create-topics"}
    assert not objects_of(layout, "Secret"), "Secrets are created by the operator, not applied from here"


# --- each Deployment against its service's settings ----------------------------------------------------------------


@both_layouts
@every_service
def test_every_variable_of_a_deployment_is_one_its_settings_read(layout, service, monkeypatch):
    settings_class = SETTINGS[service]
    container = container_of(objects_of(layout, "Deployment")[service])
    assert "envFrom" not in container, "every variable is named, so that this test sees it"
    names = [variable["name"] for variable in container["env"]]
    assert len(names) == len(set(names))
    env = environment(layout, container)
    assert env.pop("SERVICE") == service, "SERVICE picks the module the image runs"
    known = {name.upper() for name in settings_class.model_fields}
    # A variable may also exist only to be substituted into another one, as $(POD_IP) in ADVERTISED_URL.
    substituted = {name for value in env.values() for name in re.findall(r"\$\((\w+)\)", value)}
    unread = set(names) - {"SERVICE"} - substituted - known
    assert not unread, f"variables no settings field reads: {unread}"
    required = {name.upper() for name, field in settings_class.model_fields.items() if field.is_required()}
    assert required <= set(env), f"required variables missing: {required - set(env)}"
    for name in known:  # only what the manifest gives, not the environment of this test
        monkeypatch.delenv(name, raising=False)
    settings = settings_class(**{name.lower(): value for name, value in env.items()})
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == PORTS[service] == container["ports"][0]["containerPort"]
    assert settings.kafka_bootstrap_servers == config_of(layout)["KAFKA_BOOTSTRAP_SERVERS"]


@both_layouts
def test_the_configmap_holds_only_values_the_services_accept(layout):
    config = config_of(layout)
    assert all(value != "" for value in config.values()), "an empty value is not 'unset': the services reject it"
    read = {name.upper() for settings_class in SETTINGS.values() for name in settings_class.model_fields}
    assert set(config) <= read


@both_layouts
@every_service
def test_the_api_keys_and_the_kafka_ca_are_files_from_their_secrets(layout, service):
    pod = objects_of(layout, "Deployment")[service]["spec"]["template"]["spec"]
    container = container_of(objects_of(layout, "Deployment")[service])
    env = environment(layout, container)
    volume, inside = mount_of(pod, container, env["API_KEYS_FILE"])
    assert env["API_KEYS_FILE"] == "/run/ticketstream/api-keys.json"
    assert volume["secret"]["secretName"] == "ticketstream-api-keys"
    assert not volume["secret"].get("optional"), "no service starts without its API keys"
    assert {"key": "api-keys.json", "path": str(inside)} in volume["secret"]["items"]
    if "KAFKA_SSL_CAFILE" in env:
        volume, inside = mount_of(pod, container, env["KAFKA_SSL_CAFILE"])
        assert volume["secret"]["secretName"] == "ticketstream-kafka-ca"
        assert str(inside) in OPERATOR_SECRETS["ticketstream-kafka-ca"]


def test_the_secrets_the_manifests_read_are_the_ones_the_readme_tells_the_operator_to_create():
    readme = (K8S / "README.md").read_text()
    referenced: dict[str, set[str]] = {}
    for layout in LAYOUTS:
        for obj in RENDERED[layout]:
            for pod in _pod_templates(obj):
                for volume in pod.get("volumes", []):
                    if "secret" in volume:
                        items = volume["secret"].get("items", [])
                        keys = {item["key"] for item in items} or OPERATOR_SECRETS[volume["secret"]["secretName"]]
                        referenced.setdefault(volume["secret"]["secretName"], set()).update(keys)
                for container in pod["containers"]:
                    for variable in container.get("env", []):
                        if ref := variable.get("valueFrom", {}).get("secretKeyRef"):
                            referenced.setdefault(ref["name"], set()).add(ref["key"])
    assert referenced == OPERATOR_SECRETS
    for name, keys in referenced.items():
        assert f"create secret generic {name} " in readme
        assert all(key in readme for key in keys)


@both_layouts
def test_notify_reads_its_sealing_key_from_its_secret_mounted_read_only(layout):
    deployment = objects_of(layout, "Deployment")["notify"]
    pod, container = deployment["spec"]["template"]["spec"], container_of(deployment)
    env = environment(layout, container)
    assert env["NOTIFY_SECRETS_KEY_FILE"] == NOTIFY_KEY_FILE
    volume, inside = mount_of(pod, container, NOTIFY_KEY_FILE)
    assert volume["secret"]["secretName"] == "ticketstream-notify-key"
    assert not volume["secret"].get("optional"), "without its key notify can neither seal nor sign"
    assert volume["secret"]["items"] == [{"key": "notify-secrets.key", "path": str(inside)}]
    (mount,) = (mount for mount in container["volumeMounts"] if mount["name"] == volume["name"])
    assert mount["readOnly"] is True
    # only notify holds the key
    for obj in RENDERED[layout]:
        for other in _pod_templates(obj):
            if other is not pod:
                assert all(
                    volume.get("secret", {}).get("secretName") != "ticketstream-notify-key"
                    for volume in other.get("volumes", [])
                ), obj["metadata"]["name"]


@both_layouts
def test_intake_notify_and_assignment_alone_read_the_privacy_master_key_mounted_read_only(layout):
    holders = set()
    for obj in RENDERED[layout]:
        for pod in _pod_templates(obj):
            if any(v.get("secret", {}).get("secretName") == "ticketstream-privacy-key" for v in pod.get("volumes", [])):
                holders.add(obj["metadata"]["name"])
    assert holders == {"intake", "notify", "assignment"}
    for name in holders:
        deployment = objects_of(layout, "Deployment")[name]
        pod, container = deployment["spec"]["template"]["spec"], container_of(deployment)
        assert environment(layout, container)["PRIVACY_MASTER_KEY_FILE"] == PRIVACY_KEY_FILE
        volume, inside = mount_of(pod, container, PRIVACY_KEY_FILE)
        assert not volume["secret"].get("optional"), "without it people's words would be written in plain text"
        assert volume["secret"]["items"] == [{"key": "privacy-master.key", "path": str(inside)}]
        (mount,) = (mount for mount in container["volumeMounts"] if mount["name"] == volume["name"])
        assert mount["readOnly"] is True


@both_layouts
def test_notify_takes_mail_to_ticket_on_the_port_its_service_exposes(layout, monkeypatch):
    container = container_of(objects_of(layout, "Deployment")["notify"])
    env = environment(layout, container)
    for name in NotifySettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = NotifySettings(**{name.lower(): value for name, value in env.items() if name != "SERVICE"})
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert settings.mail_gateway_port == ports["smtp"] > 1024, "no root, no capabilities: no port below 1024"
    assert settings.mail_gateway_host == "0.0.0.0"
    service_ports = {port["name"]: port for port in objects_of(layout, "Service")["notify"]["spec"]["ports"]}
    assert service_ports["smtp"]["port"] == 25 and service_ports["smtp"]["targetPort"] == "smtp"
    # no private address is allowed to webhooks unless an overlay says so
    assert "NOTIFY_ALLOWED_HOSTS" not in config_of("base")
    assert settings.smtp_password is None or settings.smtp_password.get_secret_value().startswith("<ticketstream-")


def secret_fields() -> set[str]:
    """The variables whose values are secrets: the SecretStr fields of every service's settings."""
    return {
        name.upper()
        for settings_class in SETTINGS.values()
        for name, field in settings_class.model_fields.items()
        if SecretStr in (field.annotation, *typing.get_args(field.annotation))
    }


#: A sealing key (32 bytes in base64, as `python -m notify.sealing` writes it) and credentials inside a URL.
LITERAL_SECRETS = (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}="), re.compile(r"://[^/\s:@]+:[^/\s@]+@"))


def literal_secrets(objects: list[dict[str, Any]]) -> list[str]:
    """Where the rendered objects hold a secret value themselves instead of a reference to an operator's Secret."""
    found = []
    secrets = secret_fields()

    def strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from strings(value, f"{where}.{key}")
        elif isinstance(node, list):
            for at, value in enumerate(node):
                yield from strings(value, f"{where}[{at}]")
        elif isinstance(node, str):
            yield where, node

    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Secret":
            found.append(f"{name}: a Secret in the manifests")
        if obj["kind"] == "ConfigMap":
            found += [f"{name}: {key} is a secret" for key in obj.get("data", {}) if key in secrets]
        for pod in _pod_templates(obj):
            for container in pod["containers"] + pod.get("initContainers", []):
                for variable in container.get("env", []):
                    if variable["name"] in secrets and "secretKeyRef" not in variable.get("valueFrom", {}):
                        found.append(f"{name}: {variable['name']} is not read from a Secret")
        found += [
            f"{name}: {where} looks like a secret"
            for where, text in strings(obj, name)
            if any(pattern.search(text) for pattern in LITERAL_SECRETS)
        ]
    return found


@both_layouts
def test_no_secret_value_is_written_in_the_manifests(layout):
    assert {"KAFKA_SASL_PASSWORD", "SMTP_PASSWORD"} <= secret_fields()
    assert not literal_secrets(RENDERED[layout])


def test_the_literal_secret_check_catches_a_mistake():
    objects = copy.deepcopy(RENDERED["base"])
    container = container_of(next(obj for obj in objects if obj["metadata"]["name"] == "notify"))
    (variable,) = (variable for variable in container["env"] if variable["name"] == "SMTP_PASSWORD")
    variable.pop("valueFrom")
    variable["value"] = "hunter2"
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    config["data"]["CLICKHOUSE_URL"] = "https://reporting:s3cret@clickhouse.example.com:8443"
    config["data"]["NOTIFY_KEY"] = base64.b64encode(bytes(range(32))).decode()
    found = literal_secrets(objects)
    assert len(found) == 3, found


# --- probes, ports, shutdown, security, resources ------------------------------------------------------------------


@both_layouts
@every_service
def test_probes_ask_the_service_on_its_port(layout, service):
    deployment = objects_of(layout, "Deployment")[service]
    container = container_of(deployment)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    extra = EXTRA_PORTS.get(service, {})
    assert ports == {"http": PORTS[service]} | {name: inside for name, (inside, _) in extra.items()}
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == PORTS[service], probe
    service_object = objects_of(layout, "Service")[service]
    assert [ports.get(port["targetPort"], port["targetPort"]) for port in service_object["spec"]["ports"]] == [
        PORTS[service],
        *(inside for inside, _ in extra.values()),
    ]
    exposed = {port["name"]: port["port"] for port in service_object["spec"]["ports"]}
    assert exposed == {"http": PORTS[service]} | {name: outside for name, (_, outside) in extra.items()}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service_object["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@both_layouts
@every_service
def test_a_pod_has_time_to_drain_on_sigterm(layout, service):
    pod = objects_of(layout, "Deployment")[service]["spec"]["template"]["spec"]
    container = container_of(objects_of(layout, "Deployment")[service])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = inspect.signature(EventConsumer.running).parameters["drain_timeout_s"].default
    needed = int(pre_stop[1]) + UVICORN_GRACE_S + drain
    assert pod["terminationGracePeriodSeconds"] >= max(30, needed)


@both_layouts
def test_every_pod_runs_as_a_numeric_non_root_user_on_a_read_only_root(layout):
    for obj in RENDERED[layout]:
        for pod in _pod_templates(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True
            # the image's USER is "nobody", a name: without a numeric runAsUser the kubelet refuses to start it
            assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
            assert pod["enableServiceLinks"] is False, "no KAFKA_SERVICE_HOST-like variables"
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]
                volume, _ = mount_of(pod, container, "/tmp")
                assert "emptyDir" in volume


@both_layouts
def test_every_container_requests_and_limits_cpu_and_memory(layout):
    for obj in RENDERED[layout]:
        for pod in _pod_templates(obj):
            for container in pod["containers"]:
                requests, limits = container["resources"]["requests"], container["resources"]["limits"]
                assert cpu(requests["cpu"]) <= cpu(limits["cpu"])
                assert memory(requests["memory"]) <= memory(limits["memory"])
                assert memory(requests["memory"]) >= 128 * 2**20, "a Python service with its libraries"


@both_layouts
def test_every_image_is_the_one_image_of_the_dockerfile(layout):
    images = {
        container["image"] for obj in RENDERED[layout] for pod in _pod_templates(obj) for container in pod["containers"]
    }
    assert len(images) == 1
    (image,) = images
    if layout == "base":
        assert image == "ticketstream:latest"
    else:
        assert image.rsplit("/", 1)[-1].startswith("ticketstream:") and not image.endswith(":latest")


# --- scaling -------------------------------------------------------------------------------------------------------


@both_layouts
@every_service
def test_every_deployment_has_an_autoscaler_bounded_by_the_partitions(layout, service):
    deployment = objects_of(layout, "Deployment")[service]
    autoscaler = objects_of(layout, "HorizontalPodAutoscaler")[service]
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"] <= USEFUL_REPLICAS[service]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count; re-applying must not reset it"
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container_of(deployment)["resources"]["requests"], "CPU utilisation is relative to the request"


@both_layouts
def test_reporting_on_chdb_runs_alone_on_a_persistent_volume(layout):
    deployment = objects_of(layout, "Deployment")["reporting"]
    pod = deployment["spec"]["template"]["spec"]
    env = environment(layout, container_of(deployment))
    if "CLICKHOUSE_URL" in env:
        pytest.skip("a ClickHouse server: reporting may scale")
    assert objects_of(layout, "HorizontalPodAutoscaler")["reporting"]["spec"]["maxReplicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "never two chDB processes on one directory"
    volume, _ = mount_of(pod, container_of(deployment), env["CHDB_PATH"])
    claim = objects_of(layout, "PersistentVolumeClaim")[volume["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


@both_layouts
def test_disruption_budgets_take_one_replica_at_a_time_and_never_block_a_drain(layout):
    budgets = objects_of(layout, "PodDisruptionBudget")
    assert set(budgets) == {"intake", "sla", "assignment", "notify"}
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        labels = objects_of(layout, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@both_layouts
@pytest.mark.parametrize("service", ["intake", "sla", "assignment", "notify"])
def test_a_rollout_at_full_scale_does_not_wait_on_a_replica_without_partitions(layout, service):
    """At one replica per partition the surge pod may be the member left without a partition, and sla is not
    ready without one: the roll-out must then be allowed to stop an old pod first."""
    rolling = objects_of(layout, "Deployment")[service]["spec"]["strategy"]["rollingUpdate"]
    full = objects_of(layout, "HorizontalPodAutoscaler")[service]["spec"]["maxReplicas"]
    unavailable = rolling["maxUnavailable"]
    allowed = full * int(unavailable[:-1]) // 100 if isinstance(unavailable, str) else unavailable
    assert rolling["maxSurge"] == 1
    assert allowed >= 1 or full + 1 <= USEFUL_REPLICAS[service]


# --- topics --------------------------------------------------------------------------------------------------------


@both_layouts
def test_the_topics_job_runs_the_launcher_with_the_configured_brokers(layout, capsys):
    job = objects_of(layout, "Job")["ticketstream-create-topics"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:4] == ["python", "-m", "deploy.kafka.launcher", "create-topics"]
    env = environment(layout, container)
    assert command[command.index("--bootstrap-servers") + 1] == "$(KAFKA_BOOTSTRAP_SERVERS)"
    for reference in re.findall(r"\$\((\w+)\)", " ".join(command)):
        assert reference in env, f"$({reference}) is expanded from the container's env only"
    assert {variable["name"] for variable in container["env"]} <= {
        name.upper() for name in ServiceSettings.model_fields
    }
    with pytest.raises(SystemExit) as done:
        launcher.main(["create-topics", "--help"])
    assert done.value.code == 0
    accepted = set(re.findall(r"--[\w-]+", capsys.readouterr().out))
    assert {flag for flag in command if flag.startswith("--")} <= accepted
    assert int(command[command.index("--replication-factor") + 1]) >= 1


def test_the_example_overlay_sets_the_brokers_the_image_and_sasl_ssl(monkeypatch):
    config = config_of("example")
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert config["KAFKA_BOOTSTRAP_SERVERS"] != config_of("base")["KAFKA_BOOTSTRAP_SERVERS"]
    assert {obj["metadata"].get("namespace") for obj in RENDERED["example"]} == {"ticketstream"}
    container = container_of(objects_of("example", "Deployment")["intake"])
    env = environment("example", container)
    for name in SETTINGS["intake"].model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    client = IntakeSettings(**{name.lower(): value for name, value in env.items() if name != "SERVICE"})
    assert client.kafka_sasl_username == "<ticketstream-secrets/KAFKA_SASL_USERNAME>"
    assert str(client.kafka_ssl_cafile) == "/etc/ticketstream/kafka-ca/ca.crt"
