"""Fixtures shared by every test directory.

`kafka_bootstrap` gives the whole session one broker with every ticketstream topic created: the one
named by KAFKA_BOOTSTRAP_SERVERS, else an apache/kafka container when a Docker engine answers (and
testcontainers is installed), else a LocalKafka from deploy/kafka (Java + Maven only).

`clickhouse_server` gives the reporting tests' server variants a ClickHouse server: the one named by
CLICKHOUSE_URL, else a clickhouse/clickhouse-server container when a Docker engine answers; without either
they are skipped (chDB, the same engine embedded, always runs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from importlib.util import find_spec
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from deploy.kafka.launcher import LocalKafka, free_ports
from ticketstream_shared.runtime.kafka_admin import ensure_topics, wait_for_broker


class KeptExamples(DirectoryBasedExampleDatabase):
    """Hypothesis deletes a saved failure once it passes, which would drop a fixed bug's example after the first
    green run: the examples that were there when the run began (the committed ones) are never deleted or moved.
    What the run itself saves and shrinks is handled as hypothesis does."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._kept = set(path.glob("*/*"))

    def delete(self, key: bytes, value: bytes) -> None:
        if self._value_path(key, value) not in self._kept:
            super().delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if self._value_path(src, value) not in self._kept:
            super().move(src, dest, value)


#: Every failing example hypothesis (and schemathesis, which runs on it) finds is kept here, in the repository, and
#: replayed first on every later run: commit what a red run adds, and the failure follows the fix to every clone.
#: Generation stays random, in CI too (hypothesis's own "ci" profile would derandomize it and drop the database).
EXAMPLES = KeptExamples(Path(__file__).parent / "hypothesis-examples")
#: Requests (or workflows) the fuzz tests generate per API operation: 30 in `make test`, more in `make fuzz`.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
settings.register_profile("ticketstream", database=EXAMPLES, derandomize=False, print_blob=True)
settings.load_profile("ticketstream")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The unit tests first: the tiers after them keep services running in threads of this process, some for the
    whole session (integration/conftest.py's intake), and their Kafka clients and collectors would otherwise run
    beside pure tests (a foreign thread's `gc.collect`, the global `random` shuffled between hypothesis's draws)."""
    items.sort(key=lambda item: item.path.parent.name != "unit")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """A database key of its own for each API operation of a schemathesis test. Its tests (one per operation) share
    the function's node id, hence one key: a failure saved by one operation was replayed by the next, passed there,
    and was deleted, so it never reached the next run. (After hypothesis's own hook, which sets the node id.)"""
    operation = getattr(item, "operation_label", None)
    handle = getattr(getattr(item, "obj", None), "hypothesis", None)
    if operation is not None and handle is not None:
        handle.inner_test._hypothesis_internal_add_digest = f"{item.nodeid}[{operation}]".encode()


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_kept_with_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Temporary files go under the run's own directory, in this process and in those its tests start (TMPDIR):
    the stores of services run without a state directory are removed when they close, but not by a process a test
    kills, and they piled up in /tmp run after run. pytest keeps the directories of the last three runs."""
    directory = str(tmp_path_factory.mktemp("tmp"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", directory)
        patch.setattr(tempfile, "tempdir", directory)
        yield


#: The same release as deploy/kafka/pom.xml, so both paths test against one broker version.
KAFKA_IMAGE = "apache/kafka:4.4.0"
#: The same release as docker-compose.yml.
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


def _docker_engine_answers() -> bool:
    """True only if an engine responds: the docker CLI is often installed without one."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _answering(bootstrap: str) -> str:
    """The external broker, or one clear failure instead of every Kafka test timing out on its own."""
    try:
        asyncio.run(wait_for_broker(bootstrap, timeout_s=15))
    except TimeoutError as exc:
        message = f"KAFKA_BOOTSTRAP_SERVERS is set but {exc}; unset it to get a LocalKafka"
    else:
        return bootstrap
    pytest.fail(message, pytrace=False)


def _start_container(stack: ExitStack) -> str:
    """A single-node KRaft apache/kafka container configured like LocalKafka.

    testcontainers' KafkaContainer drives Confluent images only, hence a plain DockerContainer.
    """
    from testcontainers.core.container import DockerContainer

    (port,) = free_ports(1)
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port)
    for key, value in {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }.items():
        container.with_env(key, value)
    stack.enter_context(container)
    bootstrap = f"127.0.0.1:{port}"
    asyncio.run(wait_for_broker(bootstrap, timeout_s=120))
    return bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a broker on which every topic of TOPICS exists; stopped at session end."""
    with ExitStack() as stack:
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            bootstrap = _answering(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        elif find_spec("testcontainers") and _docker_engine_answers():
            bootstrap = _start_container(stack)
        else:
            bootstrap = stack.enter_context(LocalKafka(tmp_path_factory.mktemp("kafka"))).bootstrap_servers
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap


def _start_clickhouse(stack: ExitStack) -> str:
    """A clickhouse/clickhouse-server container, answering /ping; its URL with the credentials it was given."""
    import httpx
    from testcontainers.core.container import DockerContainer

    from tests.polling import eventually

    (port,) = free_ports(1)
    container = (
        DockerContainer(CLICKHOUSE_IMAGE)
        .with_bind_ports(8123, port)
        .with_env("CLICKHOUSE_USER", "ticketstream")
        .with_env("CLICKHOUSE_PASSWORD", "ticketstream-tests")
    )
    stack.enter_context(container)

    def pong() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).text.strip() == "Ok."
        except httpx.HTTPError:
            return False

    eventually(pong, timeout_s=120, interval_s=0.5, what="the ClickHouse container answering")
    return f"http://ticketstream:ticketstream-tests@127.0.0.1:{port}"


@pytest.fixture(scope="session")
def clickhouse_server() -> Iterator[str]:
    """The URL of a ClickHouse server for this session (see the module docstring); skips when there is none."""
    with ExitStack() as stack:
        if os.environ.get("CLICKHOUSE_URL"):
            yield os.environ["CLICKHOUSE_URL"].rstrip("/")
        elif find_spec("testcontainers") and _docker_engine_answers():
            yield _start_clickhouse(stack)
        else:
            pytest.skip("no ClickHouse server: CLICKHOUSE_URL unset and no Docker engine answers")
