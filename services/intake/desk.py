"""The desk: what intake's edges (HTTP, tickets.inbound) talk to. Commands go through the command bus to the owner
of their ticket, a new ticket's service checked against the catalogue first; reads come from the ledger's tickets
plus who each ticket is assigned to (from assignment.events, which only assignment writes), both in the local
store."""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import cast

from ticketstream_shared.catalogue import UNREAD_SERVICE_WAIT_S, ServiceCatalogue
from ticketstream_shared.contract import Envelope, Priority
from ticketstream_shared.contract.assignment import AssignmentEvent, TicketAssigned
from ticketstream_shared.contract.requests import ticket_id_for
from ticketstream_shared.contract.sla import SLA_EVENT_TYPES, SlaConfigEvent, SlaEventUnion
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.store import Changes

from .catalogue import require_service
from .domain import OPEN, Command, CommandContext, CreateTicket, InvalidCommand, NotReady, Ticket
from .ledger import TicketLedger
from .owners import CommandBus
from .ticket_store import ClockNote, Filters


class Desk:
    def __init__(
        self,
        ledger: TicketLedger,
        bus: CommandBus,
        catalogue: ServiceCatalogue,
        catalogue_log: ConfigLog[SlaConfigEvent],
    ) -> None:
        self.ledger = ledger
        self.bus = bus
        self.catalogue = catalogue
        self.catalogue_log = catalogue_log

    async def execute(self, command: Command, context: CommandContext) -> tuple[Ticket, bool]:
        """The ticket after `command`, and whether the command had been carried out before (a replay)."""
        self.ledger.require_caught_up()
        if isinstance(command, CreateTicket) and command.service_id is not None:
            # Checked where the request arrives: every replica reads the whole catalogue, and the owner deciding
            # the ticket may be another one.
            if not self.catalogue_log.caught_up.is_set():
                raise NotReady("intake is still reading the service catalogue; retry shortly")
            try:
                require_service(self.catalogue, command.service_id, context.actor.role, context.now)
            except InvalidCommand:
                # Published a moment ago, perhaps: judged again once sla.config is read to where it ends now (a
                # slow broker leaves the refusal as it was).
                await self.catalogue_log.read_to_end(UNREAD_SERVICE_WAIT_S)
                require_service(self.catalogue, command.service_id, context.actor.role, context.now)
        return await self.bus.execute(command, context)

    def new_ticket_id(self, scope: str, request_key: str | None) -> str:
        """The same id for every retry of one keyed request within one caller's scope; otherwise a fresh one that
        this replica can decide for itself."""
        return self.bus.fresh_ticket_id() if request_key is None else ticket_id_for(scope, request_key)

    def open_work(
        self, client_id: str | None, assignee_id: str | None, limit: int, priority: Priority | None = None
    ) -> tuple[list[Ticket], bool]:
        """The first `limit` open tickets (of the client, assigned to the technician, of the priority, if given),
        the most urgent first and then the oldest, and whether there are more. Read from the indexes priority by
        priority, most urgent first, until more than that many are found (a new critical ticket is there however
        long the queue of others); only those shown are loaded."""
        self.ledger.require_caught_up()
        found: list[tuple[Priority, str, str]] = []
        for urgency in Priority if priority is None else [priority]:
            for status in OPEN:
                filters = Filters(client_id, status, urgency, assignee_id=assignee_id)
                dated = islice(self.ledger.tickets.matching(filters), limit + 1)
                found += ((urgency, created, ticket_id) for created, ticket_id in dated)
            if len(found) > limit:
                break
        found.sort()
        shown = (self.ledger.get(ticket_id) for _, _, ticket_id in found[:limit])
        return [ticket for ticket in shown if ticket is not None], len(found) > limit

    async def get(self, ticket_id: str) -> Ticket | None:
        self.ledger.require_caught_up()
        return await self.bus.lookup(ticket_id)

    def assignee_of(self, ticket_id: str) -> str | None:
        return self.ledger.tickets.assignee(ticket_id)

    def note_clock(self, changes: Changes, event: Envelope, raw: bytes) -> set[bytes]:
        """Follow sla.events: where each SLA clock of a ticket stands, for its page to say what was promised."""
        if isinstance(event, SLA_EVENT_TYPES):
            self.ledger.tickets.note_clock(changes, ClockNote.of(cast(SlaEventUnion, event)))
        return set()  # not changelogged: a new machine reads sla.events again

    def clocks_of(self, ticket_id: str) -> list[ClockNote]:
        return self.ledger.tickets.clocks(ticket_id)

    def note_assignment(self, changes: Changes, event: AssignmentEvent, raw: bytes) -> set[bytes]:
        """Follow assignment.events; a ticket's assignee is whoever it was last assigned to."""
        if isinstance(event, TicketAssigned):
            self.ledger.tickets.assign(changes, event.ticket_id, event.data.technician_id)
        return set()  # not changelogged: a new machine reads assignment.events again

    def find(
        self, filters: Filters, after: tuple[datetime, str] | None, limit: int, *, newest_first: bool = False
    ) -> list[Ticket]:
        """Tickets matching every given filter, oldest first starting after the cursor (created_at, id), or the
        newest first."""
        self.ledger.require_caught_up()
        ids = self.ledger.tickets.find(filters, after, limit, newest_first=newest_first)
        found = (self.ledger.get(ticket_id) for ticket_id in ids)
        return [ticket for ticket in found if ticket is not None]
