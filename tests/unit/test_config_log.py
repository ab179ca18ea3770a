"""A configuration log read to its end (runtime/config_log.py): asked before it is followed, it waits; given a
consumer of its own for the question, it asks there, not on the reading connection (whose held fetch the broker
answers first). Kafka is a fake here (pure logic); every service's tests use the log on the real broker."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from tests.fakes_kafka import FakeBroker, FakeConsumer, still_waiting
from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.config_log import ConfigLog


class Change(BaseModel):
    number: int


def decode(raw: bytes) -> Change:
    try:
        return Change.model_validate_json(raw)
    except ValueError as error:
        raise InvalidEvent(f"not a change: {error}") from None


class Follower:
    """A log with `changes` in it, read by a follower (not its owner) that records what it applies."""

    def __init__(self, *changes: bytes) -> None:
        self.broker = FakeBroker()
        for raw in changes:
            self.broker.append(SLA_CONFIG, raw, partition=0)
        self.applied: list[int] = []
        self.log = ConfigLog(SLA_CONFIG, decode, self._apply, "reporting", owner=False)

    def _apply(self, change: Change, _live: bool) -> bool:
        self.applied.append(change.number)
        return True


def test_asked_before_it_is_followed_it_waits_until_the_log_is_read() -> None:
    async def story() -> None:
        follower = Follower(b'{"number": 1}', b'{"number": 2}')
        asked = asyncio.create_task(follower.log.read_to_end())
        assert await still_waiting(asked)
        following = asyncio.create_task(follower.log.follow(FakeConsumer(follower.broker)))
        assert await asyncio.wait_for(asked, 5) is True
        assert follower.applied == [1, 2]
        following.cancel()

    asyncio.run(story())


def test_with_a_consumer_of_its_own_the_end_is_asked_there() -> None:
    async def story() -> None:
        follower = Follower(b'{"number": 1}')
        reading, ends = FakeConsumer(follower.broker), FakeConsumer(follower.broker)
        following = asyncio.create_task(follower.log.follow(reading, ends))
        assert await follower.log.read_to_end(5)
        asked_while_reading = reading.asked_for_ends
        follower.broker.append(SLA_CONFIG, b'{"number": 2}', partition=0)
        assert await follower.log.read_to_end(5)
        assert follower.applied == [1, 2]
        assert ends.asked_for_ends == 2 and reading.asked_for_ends == asked_while_reading
        following.cancel()

    asyncio.run(story())


def test_a_follower_skips_what_is_not_a_change_saying_so(caplog: pytest.LogCaptureFixture) -> None:
    """sla, the owner, parks it; another service reading the log goes on past it."""

    async def story() -> None:
        follower = Follower(b'{"number": 1}', b"{not json", b'{"number": 3}')
        following = asyncio.create_task(follower.log.follow(FakeConsumer(follower.broker)))
        assert await follower.log.read_to_end(5)
        assert follower.applied == [1, 3]
        following.cancel()

    with caplog.at_level(logging.WARNING):
        asyncio.run(story())
    skipped = [record for record in caplog.records if record.getMessage() == "skipped a message its owner parks"]
    assert [(record.offset, record.topic) for record in skipped] == [(1, SLA_CONFIG)]  # type: ignore[attr-defined]
