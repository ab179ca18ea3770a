"""The router as a member of the `CONSUMER_GROUP` group on tickets.events and sla.events: re-keys them by team.

It remembers where it sent each ticket (its own writes reach the desk a moment later); for a ticket it has not
routed itself (after a restart or a rebalance), or that it left waiting for a rule, it asks the desk, which the
team log keeps current.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ticketstream_shared.catalogue import UNREAD_SERVICE_WAIT_S, ServiceCatalogue
from ticketstream_shared.contract import TicketCreated
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS
from ticketstream_shared.runtime.consumer import Delivery
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .desk import CategoryRule
from .domain import DONE
from .records import TicketSnapshot
from .routing import Routed, route
from .teamlog import TeamLog

Clock = Callable[[], datetime]
#: Tickets done with (resolved or closed) the router keeps remembering where it sent, beyond those the desk holds.
DONE_REMEMBERED = 10_000


class CatalogueLog(Protocol):
    """sla.config as this service follows it (runtime/config_log.ConfigLog)."""

    caught_up: asyncio.Event

    async def read_to_end(self, timeout_s: float | None = None) -> bool: ...


class TicketRouter:
    def __init__(
        self, team_log: TeamLog, catalogue: ServiceCatalogue, catalogue_log: CatalogueLog, clock: Clock
    ) -> None:
        self._team_log = team_log
        self._desk = team_log.desk
        self._routed: dict[str, Routed] = {}
        #: Tickets done with, oldest first, still in `_routed` (a ticket reopened since may appear twice).
        self._done: deque[str] = deque()
        self._catalogue = catalogue
        self._catalogue_log = catalogue_log
        self._clock = clock

    def rule_for(self, ticket: TicketSnapshot) -> CategoryRule | None:
        """The routing rule of the ticket's category; else its service's owner team (the service it names, or its
        category's, as the catalogue stands now), the reason saying so; None if neither."""
        rule = self._desk.rules.get(ticket.category)
        if rule is not None:
            return rule
        in_force = self._catalogue.in_force(self._clock())
        service_id = in_force.service_of(ticket.service_id, ticket.category)
        if service_id is None:
            return None
        service = in_force.services[service_id]
        return CategoryRule(service.owner_team, ticket.category, f"the owner team of service {service.name}")

    def _names_unread_service(self, event: object) -> bool:
        """A new ticket naming a service the catalogue has not got: published a moment ago, perhaps."""
        if not isinstance(event, TicketCreated) or event.data.service_id is None:
            return False
        return event.data.service_id not in self._catalogue.in_force(self._clock()).services

    def where(self, ticket_id: str) -> Routed | None:
        known = self._routed.get(ticket_id)
        if known is not None and known.team is not None:
            return known
        found = self._desk.located(ticket_id)
        if found is not None:  # routed by us before, or by a rule from where it waited
            team, ticket = found
            return Routed(team, TicketSnapshot(**{name: getattr(ticket, name) for name in TicketSnapshot.model_fields}))
        if known is not None:
            return known
        waiting = self._desk.parked.get(ticket_id)
        return Routed(None, waiting) if waiting is not None else known

    def _remember(self, ticket_id: str, where: Routed | None) -> None:
        """Where the ticket is now, remembered; a ticket done with is forgotten once the desk has it as far as it
        was sent, the newest DONE_REMEMBERED of them aside: memory holds open work, not every ticket routed. (One
        waiting for a rule is remembered: the desk's `parked` keeps it too.)"""
        if where is None:
            self._routed.pop(ticket_id, None)
            return
        self._routed[ticket_id] = where
        if where.current_status in DONE:
            self._done.append(ticket_id)
        while len(self._done) > DONE_REMEMBERED:
            oldest = self._done[0]
            routed = self._routed.get(oldest)
            if routed is not None and routed.team is not None and routed.current_status in DONE:
                held = self._desk.ticket(oldest)
                if held is None or held.version < routed.current_version:
                    return  # the desk has not read that far yet: its answer would be older than ours
                del self._routed[oldest]
            self._done.popleft()

    async def handle(self, batch: list[Delivery]) -> None:
        """Route a batch; returns once Kafka has every record (the consumer commits after)."""
        await self._team_log.caught_up.wait()  # the rules and the tickets' teams come from the team log
        await self._catalogue_log.caught_up.wait()  # and the services' owner teams from sla.config
        if any(self._names_unread_service(delivery.event) for delivery in batch):
            await self._catalogue_log.read_to_end(UNREAD_SERVICE_WAIT_S)
        outbox = self._team_log.outbox()
        for delivery in batch:
            event = delivery.event
            # A creation is routed by its category alone: no asking where a new ticket is (a miss on disk each).
            known = None if isinstance(event, TicketCreated) else self.where(event.ticket_id)
            routing = route(event, known, self.rule_for)
            self._remember(event.ticket_id, routing.where)
            for record in routing.records:
                self._team_log.put_record(outbox, record)
            if routing.unroutable is not None:
                self._team_log.put(outbox, ASSIGNMENT_EVENTS, routing.unroutable, event.ticket_id)
        await asyncio.gather(*await outbox.send())
        THROUGHPUT.processed(len(batch))
