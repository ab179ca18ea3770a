"""sla.config as reporting reads it: the calendars and client agreements that split worked hours into inside and
outside each client's business hours (business_hours.py). Read whole, from the beginning, outside any group.

Before each batch of ticket events is projected, the log is read up to the end it has at that moment (one offsets
request a batch): a worklog is then split knowing every change sla acknowledged before the worklog was projected,
so in particular every change made before the worklog was recorded, and the service splits as a rebuild does.

sla owns this log: it parks each message that is not a configuration change in sla.config.dlq, once. Reporting
skips such messages with a warning rather than parking them a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.kafka import start_when_reachable, wait_for_topics

from .business_hours import ClientCalendars

log = logging.getLogger(__name__)

PARTITION = TopicPartition(SLA_CONFIG, 0)


def apply_record(calendars: ClientCalendars, record: ConsumerRecord[bytes, bytes]) -> None:
    try:
        change = decode_sla_config_change(record.value or b"")
    except InvalidEvent as error:
        log.warning("skipped a message of sla.config", extra={"offset": record.offset, "reason": error.reason})
        return
    calendars.apply(change)


async def read_changes(consumer: AIOKafkaConsumer, calendars: ClientCalendars, start: int) -> int:
    """Apply the changes of sla.config from offset `start` to its end now (a rebuild, before it replays ticket
    events); returns that end, where the next reading starts."""
    end = (await consumer.end_offsets([PARTITION]))[PARTITION]
    consumer.assign([PARTITION])
    consumer.seek(PARTITION, start)
    while await consumer.position(PARTITION) < end:
        for record in (await consumer.getmany(PARTITION, timeout_ms=500)).get(PARTITION, []):
            if record.offset < end:
                apply_record(calendars, record)
    return end


class SlaConfigFollower:
    """Keeps `calendars` up to date with sla.config while the service runs."""

    def __init__(self, calendars: ClientCalendars, make_consumer: Callable[[], AIOKafkaConsumer]) -> None:
        self._calendars = calendars
        self._make_consumer = make_consumer
        #: Asks where sla.config ends, on a connection of its own: the reader's connection holds a fetch the broker
        #: keeps open until a change arrives (up to fetch_max_wait_ms, 500 ms), and a broker answers a connection's
        #: requests in order, so asking there made every batch wait ~250 ms on average.
        self._ends: AIOKafkaConsumer | None = None
        self._started = asyncio.Event()
        self._read_up_to = 0
        self._progress = asyncio.Condition()

    async def follow(self) -> None:
        """Read sla.config from the beginning, then keep following it, until cancelled."""
        consumer = await start_when_reachable(self._make_consumer, "sla.config reader")
        ends = await start_when_reachable(self._make_consumer, "sla.config end reader")
        try:
            await wait_for_topics(consumer, [SLA_CONFIG])
            consumer.assign([PARTITION])
            await consumer.seek_to_beginning(PARTITION)
            self._ends = ends
            self._started.set()
            while True:
                for record in (await consumer.getmany(PARTITION, timeout_ms=500)).get(PARTITION, []):
                    apply_record(self._calendars, record)
                position = await consumer.position(PARTITION)
                if position > self._read_up_to:
                    async with self._progress:
                        self._read_up_to = position
                        self._progress.notify_all()
        finally:
            await asyncio.gather(consumer.stop(), ends.stop())

    async def read_to_end(self) -> None:
        """Return once every change that sla.config holds now has been applied."""
        await self._started.wait()
        assert self._ends is not None
        end = (await self._ends.end_offsets([PARTITION]))[PARTITION]
        async with self._progress:
            await self._progress.wait_for(lambda: self._read_up_to >= end)
