"""tickets.events read back for a what-if: from a little before the period to the end the log has at request time.

A reader of its own, in no group (nothing committed, no rebalance of the clock worker), positioned on each partition
with offsets_for_times: a record's log timestamp is when it was produced, never before the event it carries occurred
(a backfilled history comes late, not early), so the first record stamped `LOG_SKEW` before the period starts is
early enough on every partition. Reading to the end rather than to `to` keeps histories backfilled since. The cost is
one pass over everything logged since the period began (the tickets of other periods and clients are skipped after
decoding), at most one what-if at a time per worker, and the replay runs in a thread so the event loop keeps timing
alarms meanwhile (it still competes for the GIL: a long what-if makes alarms a little later, not missed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ticketstream_shared.contract import InvalidEvent, TicketEvent, UnknownEventType, decode_ticket_event
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import batches_to_end, wait_for_topics

from .whatif import Replay

#: How much earlier than the event it carries a record may be stamped (producers' clocks differ a little).
LOG_SKEW = timedelta(minutes=5)


class TicketHistory:
    def __init__(self, make_reader: Callable[[], AIOKafkaConsumer]) -> None:
        self._make_reader = make_reader
        self._one_at_a_time = asyncio.Lock()

    async def replay(self, replay: Replay, admits: Callable[[TicketEvent], bool]) -> None:
        """Fold every event of the period that `admits` lets through into `replay`."""
        async with self._one_at_a_time:
            reader = self._make_reader()
            await reader.start()
            try:
                await wait_for_topics(reader, [TICKETS_EVENTS])
                await self._read(reader, replay, admits)
            finally:
                await reader.stop()

    async def _read(self, reader: AIOKafkaConsumer, replay: Replay, admits: Callable[[TicketEvent], bool]) -> None:
        partitions = [TopicPartition(TICKETS_EVENTS, number) for number in range(TICKET_PARTITIONS)]
        reader.assign(partitions)
        since_ms = int((replay.opened_from - LOG_SKEW).timestamp() * 1000)
        starts = await reader.offsets_for_times({tp: since_ms for tp in partitions})
        since = {tp: start.offset for tp, start in starts.items() if start is not None}  # None: nothing since
        if since:
            async for records in batches_to_end(reader, since):
                await asyncio.to_thread(_fold, replay, records, admits)


def _fold(replay: Replay, records: Sequence[ConsumerRecord], admits: Callable[[TicketEvent], bool]) -> None:
    for record in records:
        try:
            event = decode_ticket_event(record.value or b"")
        except (UnknownEventType, InvalidEvent):
            continue  # the clock worker dead-letters it; a what-if only reads
        if admits(event):
            replay.fold(event)
