"""The ticket aggregate as pure functions: `decide(state, command) -> events`, `evolve(state, event) -> state`.

No I/O here: the clock, the ids and the correlation of a command come in through `CommandContext`, so the same
command in the same state always decides the same events (event ids included).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import singledispatch
from types import MappingProxyType

from ticketstream_shared.contract import (
    Channel,
    Priority,
    TicketCreated,
    TicketEvent,
    TicketStatus,
    WorklogRecorded,
)
from ticketstream_shared.contract.events import TicketCreatedData, WorklogRecordedData

PRODUCER = "intake"

#: uuid5 namespaces: ids derived from a request key are the same on every retry, so a retry finds its first outcome.
TICKET_IDS = uuid.UUID("4d0a3f52-7a0c-4b57-9b1e-1f3c0f6d2a01")
WORKLOG_IDS = uuid.UUID("8a6b1c0e-2f4d-4e8a-9c3b-5d7e9f1a2b02")
EVENT_IDS = uuid.UUID("c2e4f6a8-1b3d-4f5a-8c7e-9d0b2a4c6e03")


# --- errors: each maps to one HTTP status at the edge -------------------------------------------------------------


class DomainError(Exception):
    """A command the aggregate refuses, with a message for the caller."""


class TicketNotFound(DomainError):
    pass


class VersionConflict(DomainError):
    """The caller decided on a version of the ticket that is no longer current (If-Match)."""


class IdempotencyKeyReused(DomainError):
    """A request key came back with a different request than the one it first named."""


class InvalidCommand(DomainError):
    """A command whose field is well-formed but not acceptable now (e.g. a worklog dated in the future)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name
        self.message = message


#: How far ahead of our clock a caller's timestamp may be (clock skew), before it is refused.
CLOCK_SKEW = timedelta(minutes=5)


# --- state -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worklog:
    worklog_id: uuid.UUID
    technician_id: str
    minutes: int
    billable: bool
    note: str
    performed_at: datetime
    recorded_at: datetime


@dataclass(frozen=True)
class Ticket:
    """The current state of one ticket, folded from its events."""

    ticket_id: str
    client_id: str
    requester_id: str
    title: str
    description: str
    category: str
    priority: Priority
    channel: Channel
    status: TicketStatus
    version: int
    created_at: datetime
    updated_at: datetime
    creation: TicketCreated
    assignee_id: str | None = None
    worklogs: Mapping[uuid.UUID, Worklog] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def worklog_minutes(self) -> int:
        return sum(worklog.minutes for worklog in self.worklogs.values())


# --- commands --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandContext:
    """Who asks, when, and under which request key: everything `decide` needs from the outside world."""

    now: datetime
    correlation_id: str
    command_id: str
    request_key: str | None = None

    def event_id(self, ticket_id: str, index: int) -> uuid.UUID:
        return uuid.uuid5(EVENT_IDS, f"{ticket_id}\x00{self.command_id}\x00{index}")


@dataclass(frozen=True)
class CreateTicket:
    ticket_id: str
    client_id: str
    requester_id: str
    title: str
    category: str
    priority: Priority
    description: str = ""
    channel: Channel = Channel.API

    @staticmethod
    def ticket_id_for(scope: str, request_key: str | None) -> str:
        """A fresh id, or the same id for every retry of one keyed request within one caller's scope."""
        if request_key is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(TICKET_IDS, f"{scope}\x00{request_key}"))


@dataclass(frozen=True)
class RecordWorklog:
    ticket_id: str
    worklog_id: uuid.UUID
    technician_id: str
    minutes: int
    billable: bool
    performed_at: datetime
    note: str = ""
    expected_version: int | None = None

    @staticmethod
    def worklog_id_for(ticket_id: str, request_key: str | None) -> uuid.UUID:
        if request_key is None:
            return uuid.uuid4()
        return uuid.uuid5(WORKLOG_IDS, f"{ticket_id}\x00{request_key}")


Command = CreateTicket | RecordWorklog


# --- decide ----------------------------------------------------------------------------------------------------


def _envelope(ticket: Ticket | None, command: Command, context: CommandContext, index: int, client_id: str) -> dict:
    return {
        "event_id": context.event_id(command.ticket_id, index),
        "occurred_at": context.now,
        "ticket_id": command.ticket_id,
        "client_id": client_id,
        "aggregate_version": (ticket.version if ticket else 0) + index + 1,
        "producer": PRODUCER,
        "correlation_id": context.correlation_id,
        "request_id": context.request_key,
    }


def _check_version(ticket: Ticket, expected: int | None) -> None:
    if expected is not None and expected != ticket.version:
        raise VersionConflict(f"ticket {ticket.ticket_id} is at version {ticket.version}, not {expected}")


def decide(ticket: Ticket | None, command: Command, context: CommandContext) -> list[TicketEvent]:
    """The events that `command` causes on `ticket` (None: no such ticket yet); [] when it was already done."""
    if isinstance(command, CreateTicket):
        return _decide_create(ticket, command, context)
    if ticket is None:
        raise TicketNotFound(f"no ticket {command.ticket_id}")
    return _decide_worklog(ticket, command, context)


def _decide_create(ticket: Ticket | None, command: CreateTicket, context: CommandContext) -> list[TicketEvent]:
    data = TicketCreatedData(
        requester_id=command.requester_id,
        title=command.title,
        description=command.description,
        category=command.category,
        priority=command.priority,
        channel=command.channel,
    )
    if ticket is not None:
        if ticket.creation.data != data or ticket.client_id != command.client_id:
            raise IdempotencyKeyReused("this Idempotency-Key was first used for a different ticket")
        return []
    return [TicketCreated(**_envelope(None, command, context, 0, command.client_id), data=data)]


def _decide_worklog(ticket: Ticket, command: RecordWorklog, context: CommandContext) -> list[TicketEvent]:
    data = WorklogRecordedData(
        worklog_id=command.worklog_id,
        technician_id=command.technician_id,
        minutes=command.minutes,
        billable=command.billable,
        note=command.note,
        performed_at=command.performed_at,
    )
    if command.performed_at > context.now + CLOCK_SKEW:
        raise InvalidCommand("performed_at", "may not be in the future")
    earlier = ticket.worklogs.get(command.worklog_id)
    if earlier is not None:
        if (earlier.technician_id, earlier.minutes, earlier.billable, earlier.note, earlier.performed_at) != (
            data.technician_id,
            data.minutes,
            data.billable,
            data.note,
            data.performed_at,
        ):
            raise IdempotencyKeyReused("this Idempotency-Key was first used for a different worklog")
        return []
    _check_version(ticket, command.expected_version)
    return [WorklogRecorded(**_envelope(ticket, command, context, 0, ticket.client_id), data=data)]


# --- evolve ----------------------------------------------------------------------------------------------------


@singledispatch
def evolve(event: TicketEvent, ticket: Ticket | None) -> Ticket | None:
    """Fold one event into the state. Types this version does not handle only advance the version."""
    if ticket is None:
        return None
    return replace(ticket, version=event.aggregate_version, updated_at=event.occurred_at)


@evolve.register
def _(event: TicketCreated, ticket: Ticket | None) -> Ticket:
    data = event.data
    return Ticket(
        ticket_id=event.ticket_id,
        client_id=event.client_id,
        requester_id=data.requester_id,
        title=data.title,
        description=data.description,
        category=data.category,
        priority=data.priority,
        channel=data.channel,
        status=data.status,
        version=event.aggregate_version,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        creation=event,
    )


@evolve.register
def _(event: WorklogRecorded, ticket: Ticket | None) -> Ticket | None:
    if ticket is None:
        return None
    data = event.data
    worklog = Worklog(
        worklog_id=data.worklog_id,
        technician_id=data.technician_id,
        minutes=data.minutes,
        billable=data.billable,
        note=data.note,
        performed_at=data.performed_at,
        recorded_at=event.occurred_at,
    )
    return replace(
        ticket,
        version=event.aggregate_version,
        updated_at=event.occurred_at,
        worklogs=MappingProxyType({**ticket.worklogs, data.worklog_id: worklog}),
    )


def fold(ticket: Ticket | None, events: list[TicketEvent]) -> Ticket | None:
    for event in events:
        ticket = evolve(event, ticket)
    return ticket
