"""What a service's log says of Kafka: aiokafka logs as errors what it retries by itself (a broker not reachable yet, a
partition's leader moving); the services log those as warnings, and keep aiokafka's other errors errors."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import aiokafka
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError, TopicAuthorizationFailedError

from ticketstream_shared.runtime.logging import _RetriedKafkaErrors


def a_port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_broker_not_reachable_yet_is_a_warning(log_lines) -> None:
    async def start_without_a_broker() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{a_port_nobody_listens_on()}")
        with pytest.raises(KafkaConnectionError):
            await producer.start()

    asyncio.run(start_without_a_broker())
    told = [line for line in log_lines() if line["logger"].startswith("aiokafka")]
    assert any(line["message"].startswith("Unable connect to") for line in told), told
    assert {line["level"] for line in told} == {"WARNING"}


def test_a_retriable_error_is_a_warning_and_any_other_stays_an_error(log_lines) -> None:
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    fetcher.error("Failed fetch offsets from %s: %s", 1, NotLeaderForPartitionError())
    fetcher.error("Failed fetch offsets from %s: %s", 1, TopicAuthorizationFailedError())
    fetcher.error("Unexpected error in fetcher routine")
    logging.getLogger("tests.service").error("Unable connect to the mail server")  # not aiokafka's
    assert [line["level"] for line in log_lines()] == ["WARNING", "ERROR", "ERROR", "ERROR"]


def test_the_messages_taken_for_retried_are_aiokafkas_own() -> None:
    """Should an upgrade of aiokafka reword one, it would be an error again: this says so first."""
    source = "\n".join(path.read_text() for path in Path(aiokafka.__file__).parent.rglob("*.py"))
    logged = set(re.findall(r'log\.error\(\s*"([^"]+)"', source))
    for prefix in (*_RetriedKafkaErrors._RETRIED, *_RetriedKafkaErrors._RETRIED_IF_RETRIABLE):
        assert any(message.startswith(prefix) for message in logged), prefix
