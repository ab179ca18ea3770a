"""sla.config as reporting reads it: the calendars and client agreements that split worked hours into inside and
outside each client's business hours (business_hours.py). Read whole, from the beginning, outside any group.

Before each batch of ticket events is projected, the log is read up to the end it has at that moment (one offsets
request a batch, on a connection of its own: see ConfigLog.follow): a worklog is then split knowing every change sla
acknowledged before the worklog was projected, so in particular every change made before the worklog was recorded,
and the service splits as a rebuild does.

sla owns this log: it parks each message that is not a configuration change in sla.config.dlq, once. Reporting
skips such messages rather than parking them a second time.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.sla import SlaConfigEvent
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.kafka import batches_to_end

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
    ends = await consumer.end_offsets([PARTITION])
    async for batch in batches_to_end(consumer, {PARTITION: start}, ends):
        for record in batch:
            apply_record(calendars, record)
    return ends[PARTITION]


def sla_config_log(calendars: ClientCalendars) -> ConfigLog[SlaConfigEvent]:
    """sla.config as reporting follows it (runtime/config_log.py): every change into `calendars`. sla owns the log
    and parks what is not a change; reporting skips it."""

    def apply(change: SlaConfigEvent, _live: bool) -> bool:
        calendars.apply(change)
        return True

    return ConfigLog(SLA_CONFIG, decode_sla_config_change, apply, "reporting", owner=False)
