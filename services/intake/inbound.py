"""tickets.inbound: requests from other systems (monitoring, e-mail gateways, portals), turned into the same
commands as HTTP requests and decided by the same desk.

A request is `{type, request_id, ticket_id?, occurred_at?, data}`; `data` is the body of the matching HTTP request.
The request_id makes it idempotent (a redelivered or resent request is decided once), and a past occurred_at
imports history. Whatever cannot be carried out goes to tickets.inbound.dlq with the reason; the consumer goes on.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from ticketstream_shared.contract import Actor, InvalidEvent, Role
from ticketstream_shared.contract.codec import describe_validation_error, parse_message
from ticketstream_shared.contract.requests import BODY_OF, INBOUND_SCOPE, Body, InboundRequest, inbound_ticket_id
from ticketstream_shared.runtime.consumer import Delivery, Rejections
from ticketstream_shared.runtime.retry import while_down

from .desk import Desk
from .domain import (
    AddComment,
    ChangeStatus,
    Command,
    CommandContext,
    CreateTicket,
    DomainError,
    LifecycleRules,
    NotReady,
    RecordWorklog,
    UpdateTicket,
    child_id_for,
)
from .idempotency import request_context

#: Who acts for a request on tickets.inbound: the integrations allowed to write to the topic, all alike.
INBOUND_ACTOR = Actor(key_name=INBOUND_SCOPE, role=Role.INTEGRATION)


def decode_request(raw: bytes) -> tuple[InboundRequest, Body]:
    """The request and its validated body; InvalidEvent (so, the DLQ) with the reason otherwise."""
    payload = parse_message(raw)
    try:
        request = InboundRequest.model_validate(payload)
        body = BODY_OF[request.type].model_validate(request.data)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None
    if request.type != "create_ticket" and request.ticket_id is None:
        raise InvalidEvent(f"ticket_id: required for {request.type}")
    return request, body


def to_command(request: InboundRequest, body: Body) -> Command:
    """The command a request asks for; ids of new things derive from the request_id, so a resend finds them."""
    fields = {**body.model_dump(), "occurred_at": request.occurred_at}
    if request.type == "create_ticket":
        return CreateTicket(ticket_id=inbound_ticket_id(request.request_id), **fields)
    ticket_id = request.ticket_id
    assert ticket_id is not None  # decode_request checked it
    child_id = child_id_for(INBOUND_SCOPE, ticket_id, request.request_id)
    if request.type == "add_comment":
        return AddComment(ticket_id=ticket_id, comment_id=child_id, **fields)
    if request.type == "add_worklog":
        return RecordWorklog(ticket_id=ticket_id, worklog_id=child_id, **fields)
    if request.type == "change_status":
        return ChangeStatus(ticket_id=ticket_id, **fields)
    return UpdateTicket(ticket_id=ticket_id, **fields)


class InboundRequests:
    """The batch handler of the tickets.inbound consumer: requests for one ticket in their order, tickets in
    parallel."""

    def __init__(self, desk: Desk, clock: Callable[[], datetime], rules: LifecycleRules) -> None:
        self._desk = desk
        self._clock = clock
        self._rules = rules

    async def handle(self, batch: list[Delivery]) -> Rejections:
        by_ticket: dict[str, list[tuple[Delivery, Command]]] = defaultdict(list)
        for delivery in batch:
            command = to_command(*delivery.event)
            by_ticket[command.ticket_id].append((delivery, command))
        outcomes = await asyncio.gather(*(self._in_order(requests) for requests in by_ticket.values()))
        return [rejection for rejections in outcomes for rejection in rejections]

    async def _in_order(self, requests: list[tuple[Delivery, Command]]) -> Rejections:
        rejections: Rejections = []
        for delivery, command in requests:
            request: InboundRequest = delivery.event[0]
            context = request_context(
                command,
                caller=INBOUND_SCOPE,
                request_key=request.request_id,
                now=self._clock(),
                correlation_id=request.request_id,
                actor=INBOUND_ACTOR,
                rules=self._rules,
            )
            await self._carry_out(delivery, command, context, rejections)
        return rejections

    async def _carry_out(
        self, delivery: Delivery, command: Command, context: CommandContext, rejections: Rejections
    ) -> None:
        try:
            # Not ready is not the request's fault (e.g. partitions changing hands): it is tried again.
            async for attempt in while_down("the owner of the ticket", NotReady):
                with attempt:
                    await self._desk.execute(command, context)
        except DomainError as refusal:
            rejections.append((delivery, f"{type(refusal).__name__}: {refusal}"))
