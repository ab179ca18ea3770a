"""A broker connection lost under a service running on uvloop (as uvicorn runs every service): the next request on it
fails as a lost connection, which aiokafka retries on a new one, rather than as a RuntimeError that ended a group
consumer's coordination and stopped the service in a broker restart (aiokafka issue #1038)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

import ticketstream_shared.runtime.kafka  # noqa: F401  (every service's Kafka clients come from there)

pytestmark = pytest.mark.integration


def test_a_request_on_a_connection_already_closed_fails_as_a_lost_connection(kafka_bootstrap: str) -> None:
    async def request_after_the_close() -> tuple[BaseException | None, bool]:
        host, port = kafka_bootstrap.rsplit(":", 1)
        connection = await create_conn(host, int(port))
        # The window a broker's reset leaves: the socket is closed, and the connection's reader has not told it yet.
        connection._read_task.cancel()
        connection._writer.transport.close()
        await connection._writer.wait_closed()
        try:
            await connection.send(MetadataRequest([]))
        except Exception as error:  # noqa: BLE001 (which error is the finding)
            return error, connection.connected()
        finally:
            connection.close()
        return None, connection.connected()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        error, still_connected = runner.run(request_after_the_close())
    assert isinstance(error, KafkaConnectionError), repr(error)
    assert not still_connected
