"""The state of every delivery, folded from notify.deliveries by every replica: what waits for each target, each
attempt's outcome, and whether an endpoint is failing. Pure; the follower feeds it and the dispatcher works the
deliveries of the targets this replica owns.

Memory is bounded: all waiting deliveries (an endpoint may have at most WEBHOOK_MAX_WAITING, enforced where they
are scheduled) and the last RECENT_PER_TARGET finished ones per target.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ticketstream_shared.contract.notify import (
    DeliveryAttempted,
    DeliveryChannel,
    DeliveryRecord,
    DeliveryScheduled,
    Outcome,
    RedeliveryRequested,
)

RECENT_PER_TARGET = 500


class Status(StrEnum):
    WAITING = "waiting"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass
class Delivery:
    scheduled: DeliveryScheduled
    partition: int
    offset: int
    raw: bytes
    status: Status = Status.WAITING
    attempts: list[DeliveryAttempted] = field(default_factory=list)
    #: When the current run of attempts began (scheduling, or the last redelivery asked for): the retry budget's start.
    since: datetime | None = None

    @property
    def delivery_id(self) -> str:
        return self.scheduled.delivery_id

    @property
    def next_attempt_at(self) -> datetime | None:
        if self.status is not Status.WAITING or not self.attempts:
            return None
        return self.attempts[-1].next_attempt_at


@dataclass
class Target:
    channel: DeliveryChannel
    target: str
    deliveries: OrderedDict[str, Delivery] = field(default_factory=OrderedDict)
    waiting: int = 0
    failing_since: datetime | None = None
    last_delivered_at: datetime | None = None
    #: The newest attempt's outcome, for the endpoint's status line.
    last_error: str | None = None
    #: Finished deliveries, the one finished longest ago first: forgotten beyond RECENT_PER_TARGET.
    finished: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def _finished(self, delivery: Delivery) -> None:
        self.finished[delivery.delivery_id] = None
        self.finished.move_to_end(delivery.delivery_id)  # finished again after a redelivery: counts from now
        while len(self.finished) > RECENT_PER_TARGET:
            oldest, _ = self.finished.popitem(last=False)
            if self.deliveries[oldest].status is not Status.WAITING:  # not being redelivered
                del self.deliveries[oldest]


class Book:
    def __init__(self) -> None:
        self.targets: dict[tuple[DeliveryChannel, str], Target] = {}

    def target(self, channel: DeliveryChannel, target: str) -> Target:
        key = (channel, target)
        found = self.targets.get(key)
        if found is None:
            found = self.targets[key] = Target(channel, target)
        return found

    def waiting(self, channel: DeliveryChannel, target: str) -> int:
        found = self.targets.get((channel, target))
        return found.waiting if found else 0

    def fold(self, record: DeliveryRecord, partition: int, offset: int, raw: bytes) -> Delivery | None:
        """Apply one record; returns a delivery that has (again) become due for sending, if any. Records seen
        before (a redelivered schedule, our own attempt applied when we made it) change nothing."""
        target = self.target(record.channel, record.target)
        if isinstance(record, DeliveryScheduled):
            if record.delivery_id in target.deliveries:
                return None
            scheduled = Delivery(record, partition, offset, raw, since=record.occurred_at)
            target.deliveries[record.delivery_id] = scheduled
            target.waiting += 1
            return scheduled
        delivery = target.deliveries.get(record.delivery_id)
        if delivery is None:
            return None  # forgotten already (finished long ago), or scheduled before the log's retention
        if isinstance(record, DeliveryAttempted):
            self._attempted(target, delivery, record)
            return None
        if isinstance(record, RedeliveryRequested):
            if delivery.status is Status.WAITING:
                return None  # it is being tried already
            delivery.status = Status.WAITING
            delivery.since = record.occurred_at
            target.waiting += 1
            target.deliveries.move_to_end(delivery.delivery_id)
            return delivery
        return None

    def _attempted(self, target: Target, delivery: Delivery, record: DeliveryAttempted) -> None:
        if delivery.attempts and record.attempt <= delivery.attempts[-1].attempt:
            return
        delivery.attempts.append(record)
        if record.outcome is Outcome.WILL_RETRY:
            target.last_error = record.error
            return
        if delivery.status is Status.WAITING:
            target.waiting -= 1
        if record.outcome is Outcome.DELIVERED:
            delivery.status = Status.DELIVERED
            target.failing_since, target.last_error = None, None
            target.last_delivered_at = record.occurred_at
        else:
            delivery.status = Status.FAILED
            target.last_error = record.error
            if target.failing_since is None:
                target.failing_since = record.occurred_at
        target._finished(delivery)

    def waiting_in(self, partitions: set[int]) -> list[Delivery]:
        """Every waiting delivery of the given partitions, each target's in the order they were scheduled."""
        return [
            delivery
            for target in self.targets.values()
            for delivery in target.deliveries.values()
            if delivery.status is Status.WAITING and delivery.partition in partitions
        ]
