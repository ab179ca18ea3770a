"""The ticket ledger: every ticket's current state, and the one path by which commands become events.

A command on a ticket is decided against the ticket's current state and its events appended to the log before
the next command on that ticket is decided (one lock per ticket in flight), so versions never gap or repeat.
The ledger talks to the log through the `EventLog` port; the Kafka adapter lives in log.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from ticketstream_shared.contract import TicketEvent
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .domain import Command, CommandContext, NotReady, Ticket, as_of, decide, evolve, fold, replayed_version
from .idempotency import RequestKeys

log = logging.getLogger(__name__)


class EventLog(Protocol):
    async def append(self, events: list[TicketEvent]) -> None:
        """Return once the log has durably stored every event, in order."""


class TicketLedger:
    def __init__(self, event_log: EventLog, keys: RequestKeys) -> None:
        self._event_log = event_log
        self._keys = keys
        #: Set once the log has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        self._tickets: dict[str, Ticket] = {}
        self._in_flight: dict[str, tuple[asyncio.Lock, int]] = {}
        self._applied = asyncio.Event()
        #: How many callers of reached() wait for the next event applied.
        self._waiting = 0

    def __len__(self) -> int:
        return len(self._tickets)

    def get(self, ticket_id: str) -> Ticket | None:
        self.require_caught_up()
        return self._tickets.get(ticket_id)

    def at_version(self, ticket_id: str, version: int) -> Ticket:
        """The ticket as it stood at `version`, which this ledger holds."""
        ticket = self.get(ticket_id)
        assert ticket is not None and ticket.version >= version
        return as_of(ticket, version)

    def tickets(self) -> list[Ticket]:
        self.require_caught_up()
        return list(self._tickets.values())

    def require_caught_up(self) -> None:
        if not self.caught_up.is_set():
            raise NotReady("intake is still reading the ticket log; retry shortly")

    def apply(self, event: TicketEvent) -> None:
        """Fold an event read back from the log. Events this ledger already holds (it appended them itself, or
        reads the log again) are skipped by version, so the log may be replayed any number of times."""
        current = self._tickets.get(event.ticket_id)
        known = current.version if current else 0
        if event.aggregate_version <= known:
            return
        if event.aggregate_version != known + 1:
            log.error(
                "version gap in the ticket log",
                extra={"ticket_id": event.ticket_id, "known": known, "got": event.aggregate_version},
            )
        folded = evolve(event, current)
        if folded is not None:
            self._tickets[event.ticket_id] = folded
        self._keys.note(event)
        if self._waiting:  # a new Event per event cost more than the rest of the bookkeeping of a replay
            applied, self._applied = self._applied, asyncio.Event()
            applied.set()

    async def reached(self, ticket_id: str, version: int) -> None:
        """Return once this ledger holds `version` of the ticket (decided elsewhere, read back from the log)."""
        while (ticket := self._tickets.get(ticket_id)) is None or ticket.version < version:
            self._waiting += 1
            try:
                await self._applied.wait()
            finally:
                self._waiting -= 1

    async def execute(self, command: Command, context: CommandContext) -> tuple[Ticket, bool]:
        """Decide `command` and append its events. Returns the ticket after them and False; or, when the command
        had been carried out before (a retry), the ticket as that first outcome left it and True."""
        self.require_caught_up()
        THROUGHPUT.processed()
        with self._exclusive(command.ticket_id) as lock:
            async with lock:
                self._keys.check(context)
                ticket = self._tickets.get(command.ticket_id)
                events = decide(ticket, command, context)
                if events:
                    await self._event_log.append(events)
                    ticket = fold(ticket, events)
                    assert ticket is not None
                    self._tickets[command.ticket_id] = ticket
                    for event in events:
                        self._keys.note(event)
                    return ticket, False
                assert ticket is not None
                first = replayed_version(ticket, context)
                return (ticket, False) if first is None else (as_of(ticket, first), True)

    @contextmanager
    def _exclusive(self, ticket_id: str) -> Iterator[asyncio.Lock]:
        """One lock per ticket while commands on it are in flight; forgotten when none are, so memory follows
        the concurrency, not the number of tickets."""
        lock, users = self._in_flight.get(ticket_id, (None, 0))
        lock = lock or asyncio.Lock()
        self._in_flight[ticket_id] = (lock, users + 1)
        try:
            yield lock
        finally:
            lock, users = self._in_flight[ticket_id]
            if users == 1:
                del self._in_flight[ticket_id]
            else:
                self._in_flight[ticket_id] = (lock, users - 1)
