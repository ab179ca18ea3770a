"""The desk: what intake's edges (HTTP, tickets.inbound) talk to. Commands go through the command bus to the owner
of their ticket; reads come from the ledger's tickets plus who each ticket is assigned to (from assignment.events,
which only assignment writes)."""

from __future__ import annotations

from datetime import datetime

from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.assignment import AssignmentEvent, TicketAssigned
from ticketstream_shared.contract.requests import ticket_id_for

from .domain import Command, CommandContext, Ticket
from .ledger import TicketLedger
from .owners import CommandBus


class Desk:
    def __init__(self, ledger: TicketLedger, bus: CommandBus) -> None:
        self.ledger = ledger
        self.bus = bus
        self._assignees: dict[str, str] = {}

    async def execute(self, command: Command, context: CommandContext) -> tuple[Ticket, bool]:
        """The ticket after `command`, and whether the command had been carried out before (a replay)."""
        self.ledger.require_caught_up()
        return await self.bus.execute(command, context)

    def new_ticket_id(self, scope: str, request_key: str | None) -> str:
        """The same id for every retry of one keyed request within one caller's scope; otherwise a fresh one that
        this replica can decide for itself."""
        return self.bus.fresh_ticket_id() if request_key is None else ticket_id_for(scope, request_key)

    async def get(self, ticket_id: str) -> Ticket | None:
        self.ledger.require_caught_up()
        return await self.bus.lookup(ticket_id)

    def assignee_of(self, ticket_id: str) -> str | None:
        return self._assignees.get(ticket_id)

    def note_assignment(self, event: AssignmentEvent) -> None:
        """Follow assignment.events; a ticket's assignee is whoever it was last assigned to."""
        if isinstance(event, TicketAssigned):
            self._assignees[event.ticket_id] = event.data.technician_id

    def find(
        self,
        *,
        client_id: str | None,
        status: TicketStatus | None,
        assignee_id: str | None,
        priority: Priority | None,
        requester_id: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Ticket]:
        """Tickets matching every given filter, oldest first, starting after the cursor (created_at, id).

        A scan of the ledger: fine for the tens of thousands of open tickets a desk holds; a sorted index per
        filter is the next step when the ledger grows past that."""
        matching = [
            ticket
            for ticket in self.ledger.tickets()
            if (client_id is None or ticket.client_id == client_id)
            and (status is None or ticket.status is status)
            and (priority is None or ticket.priority is priority)
            and (requester_id is None or ticket.requester_id == requester_id)
            and (assignee_id is None or self._assignees.get(ticket.ticket_id) == assignee_id)
            and (after is None or (ticket.created_at, ticket.ticket_id) > after)
        ]
        matching.sort(key=lambda ticket: (ticket.created_at, ticket.ticket_id))
        return matching[:limit]
