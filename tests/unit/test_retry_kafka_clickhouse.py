"""The one retry policy (runtime/retry.py) and what it is given as "down": Kafka's errors (runtime/kafka.py) and
ClickHouse's (reporting/warehouse.py), the latter as clickhouse-connect and chDB really raise them."""

from __future__ import annotations

import asyncio
import logging

import clickhouse_connect
import pytest
from aiokafka.errors import (
    IllegalStateError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)
from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    OperationalError,
    ProgrammingError,
    StreamFailureError,
)

from deploy.kafka.launcher import free_ports
from reporting.warehouse import clickhouse_is_down
from ticketstream_shared.runtime.kafka import kafka_is_down, start_when_reachable, stop_within
from ticketstream_shared.runtime.retry import while_down


class Outage:
    """A call that fails `failures` times with `error`, then answers."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answered"


def waited(**policy: float) -> tuple[list[float], Outage]:
    """Run an outage of 8 failures under the policy (sleeps recorded, not slept); the waits and the outage."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    outage = Outage(8, ConnectionError("refused"))
    answer = asyncio.run(while_down("a dependency", ConnectionError, sleep=sleep, **policy)(outage))
    assert answer == "answered"
    return waits, outage


def test_waits_double_from_the_first_up_to_the_longest_with_jitter() -> None:
    waits, outage = waited(first_wait_s=0.2, longest_wait_s=5.0)

    assert outage.calls == 9 and len(waits) == 8
    for attempt, wait in enumerate(waits):
        exponential = 0.2 * 2**attempt
        assert min(exponential, 5.0) <= wait <= min(exponential + 0.2, 5.0)
    assert waits[-3:] == [5.0, 5.0, 5.0]


def test_replicas_down_together_do_not_retry_in_step() -> None:
    first, _ = waited(first_wait_s=0.2, longest_wait_s=5.0)
    second, _ = waited(first_wait_s=0.2, longest_wait_s=5.0)

    assert first[:4] != second[:4]


def test_an_error_that_is_not_the_dependency_being_down_is_raised_at_once() -> None:
    outage = Outage(1, TypeError("a defect"))

    with pytest.raises(TypeError, match="a defect"):
        asyncio.run(while_down("a dependency", ConnectionError)(outage))

    assert outage.calls == 1


def test_down_may_be_a_test_of_the_error() -> None:
    outage = Outage(2, OSError(111, "refused"))

    answer = asyncio.run(while_down("a dependency", lambda e: isinstance(e, OSError), first_wait_s=0)(outage))

    assert answer == "answered" and outage.calls == 3


def test_giving_up_raises_the_last_error() -> None:
    outage = Outage(5, ConnectionError("still refused"))

    with pytest.raises(ConnectionError, match="still refused"):
        asyncio.run(while_down("a dependency", ConnectionError, first_wait_s=0, give_up_after_s=0)(outage))


def test_each_retry_is_logged_as_a_warning_with_the_error_class_never_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage(2, DatabaseError("Code: 241. while inserting client 'acme-secret' rows", code=241))

    with caplog.at_level(logging.WARNING, logger="ticketstream_shared.runtime.retry"):
        asyncio.run(while_down("ClickHouse", clickhouse_is_down, first_wait_s=0)(outage))

    assert [record.levelno for record in caplog.records] == [logging.WARNING, logging.WARNING]
    first = caplog.records[0]
    assert first.getMessage() == "ClickHouse is not available; trying again"
    assert (first.error, first.error_code, first.attempt) == ("DatabaseError", 241, 1)  # type: ignore[attr-defined]
    assert "acme-secret" not in str(vars(first))


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (KafkaConnectionError("no broker at 127.0.0.1:9092"), True),
        (KafkaTimeoutError(), True),  # no broker answered in time: aiokafka does not mark it retriable
        (NotLeaderForPartitionError(), True),  # a leader moving
        (TopicAuthorizationFailedError(), False),  # would be refused again
        (IllegalStateError("no partitions assigned"), False),  # a request this client should not have made
        (ValueError("not Kafka's"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_kafka_is_down_only_when_the_same_request_succeeds_later(error: BaseException, down: bool) -> None:
    assert kafka_is_down(error) is down


class BrokerStarting:
    """Clients made while the broker starts: the first `refusals` cannot connect."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.made: list[BrokerStarting.Client] = []

    class Client:
        def __init__(self, refused: bool) -> None:
            self.refused = refused
            self.started = self.stopped = False

        async def start(self) -> None:
            if self.refused:
                raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")
            self.started = True

        async def stop(self) -> None:
            self.stopped = True

    def __call__(self) -> BrokerStarting.Client:
        client = self.Client(refused=len(self.made) < self.refusals)
        self.made.append(client)
        return client


def test_a_client_is_started_afresh_until_the_broker_answers() -> None:
    broker = BrokerStarting(refusals=2)

    client = asyncio.run(start_when_reachable(broker, "producer"))

    assert client is broker.made[-1] and client.started and len(broker.made) == 3
    assert all(refused.stopped for refused in broker.made[:2])


def a_clickhouse_server_that_is_not_there() -> OperationalError:
    """What the HTTP client raises when no server listens: the real thing, not a stand-in."""
    (nobody_listens,) = free_ports(1)
    with pytest.raises(OperationalError) as raised:
        clickhouse_connect.get_client(host="127.0.0.1", port=nobody_listens, connect_timeout=2)
    return raised.value


#: chDB's message when another process holds its directory, as clickhouse-connect 1.12 raises it (a ProgrammingError
#: without a code, from driver/_backend/chdb_backend.py _open_handle).
CHDB_DIRECTORY_HELD = ProgrammingError(
    "Unable to open the chdb engine at '/srv/reporting/clickhouse': Failed to create connection: Code: 36. "
    "DB::Exception: Error initializing EmbeddedServer: . (BAD_ARGUMENTS)Code: 76. DB::Exception: Cannot lock file "
    "/srv/reporting/clickhouse/status. Another server instance in same directory is already running. "
    "(CANNOT_OPEN_FILE)"
)


def test_a_client_that_does_not_stop_in_time_is_left_behind_and_one_that_does_is_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer whose group waits for a dead member holds its stop until its JoinGroup times out (40 s): a process
    stopping gives up on it instead of outliving its orchestrator's grace period."""

    class Client:
        def __init__(self, stops: asyncio.Event | None) -> None:
            self.stops, self.stopped = stops, False

        async def stop(self) -> None:
            if self.stops is not None:
                await self.stops.wait()
            self.stopped = True

    async def story() -> tuple[Client, Client]:
        hanging, prompt = Client(asyncio.Event()), Client(None)
        await stop_within(hanging, timeout_s=0.05)  # type: ignore[arg-type]
        await stop_within(prompt, timeout_s=0.05)  # type: ignore[arg-type]
        return hanging, prompt

    with caplog.at_level(logging.WARNING):
        hanging, prompt = asyncio.run(story())
    assert not hanging.stopped and prompt.stopped
    assert [r.getMessage() for r in caplog.records] == ["a Kafka client did not stop cleanly; left behind"]


@pytest.mark.parametrize(
    ("error", "down"),
    [
        (OperationalError("Error executing HTTP request"), True),
        (StreamFailureError("Code: 210. Connection reset by peer", code=210), True),
        (DatabaseError("Code: 241. DB::Exception: Memory limit exceeded (MEMORY_LIMIT_EXCEEDED)", code=241), True),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)", code=252), True),
        (DatabaseError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB (NOT_ENOUGH_SPACE)", code=243), True),
        (CHDB_DIRECTORY_HELD, True),
        (
            DatabaseError("Code: 60. DB::Exception: Table default.worklogs does not exist (UNKNOWN_TABLE)", code=60),
            False,
        ),
        (DatabaseError("Code: 62. DB::Exception: Syntax error (SYNTAX_ERROR)", code=62), False),
        (DatabaseError("The ClickHouse server returned an error"), False),
        (DataError("Unable to create native array for column `aggregate_version`: error"), False),
        (ProgrammingError("The client has been closed"), False),
        (ProgrammingError("Unable to open the chdb engine at '/b': a different path is open in this process"), False),
        (ConnectionError("not raised by clickhouse-connect, which wraps its transport's errors"), False),
    ],
    ids=lambda value: str(getattr(value, "code", None) or type(value).__name__) if isinstance(value, Exception) else "",
)
def test_clickhouse_is_down_only_when_the_same_call_succeeds_later(error: BaseException, down: bool) -> None:
    assert clickhouse_is_down(error) is down


def test_a_clickhouse_server_not_answering_is_down() -> None:
    assert clickhouse_is_down(a_clickhouse_server_that_is_not_there())
