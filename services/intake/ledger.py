"""The ticket ledger: every ticket's current state (in the local store, the tickets in use in memory), and the one
path by which commands become events.

A command on a ticket is decided against the ticket's current state and its events appended to the log before
the next command on that ticket is decided (one lock per ticket in flight), so versions never gap or repeat.
The ledger talks to the log through the `EventLog` port; the Kafka adapter lives in log.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from prometheus_client import Counter

from ticketstream_shared.contract import TicketEvent, decode_event, read_checked
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.privacy import KeyNotYetRead
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.runtime.store import Changes
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .domain import (
    Command,
    CommandContext,
    NotReady,
    Ticket,
    as_of,
    decide,
    evolve,
    fold,
    replayed_version,
    whose_words,
)
from .idempotency import RequestKeys
from .log import Landed
from .ticket_store import Logged, TicketStore

log = logging.getLogger(__name__)

#: How long a decision whose events another writer's may have preceded waits to read them back before a 503.
READ_BACK_WITHIN_S = 10.0
READ_BACK = Counter(
    "ticketstream_intake_decisions_read_back_total",
    "Decisions whose events another writer's may have preceded in the log (a partition changing hands), read back "
    "before their callers were answered",
    ["outcome"],
)


class EventLog(Protocol):
    def read_so_far(self) -> dict[int, int]:
        """How far this replica has read the log, per partition."""

    async def append(self, events: list[TicketEvent], read: dict[int, int]) -> Landed:
        """Return once the log has durably stored every event, in order (`read`: read_so_far when deciding them)."""

    async def read_back(self, landed: Landed) -> None:
        """Return once this replica has read the log past `landed`."""


class TicketLedger:
    """Tickets live in the local store (ticket_store.py), fed by the log as it is read; memory holds the tickets in
    use: up to `recent` most recently used, plus those this replica decided and has not yet read back.

    Personal fields are sealed on the way to the log and in the store, and open in memory only: a person erased
    is forgotten from memory too (forget_opened)."""

    def __init__(
        self,
        event_log: EventLog,
        keys: RequestKeys,
        tickets: TicketStore,
        recent: int = 10_000,
        personal: PersonalData = PLAIN,
    ) -> None:
        self._event_log = event_log
        self._personal = personal
        self._keys = keys
        self.tickets = tickets
        #: Set once the log has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        self._recent: OrderedDict[str, Ticket] = OrderedDict()
        self._recent_bound = recent
        #: Tickets this replica appended events to that the store does not hold yet: never evicted.
        self._ahead: dict[str, Ticket] = {}
        self._in_flight: dict[str, tuple[asyncio.Lock, int]] = {}
        self._applied = asyncio.Event()
        #: How many callers of reached() wait for the next event applied.
        self._waiting = 0

    def get(self, ticket_id: str) -> Ticket | None:
        self.require_caught_up()
        return self._ticket(ticket_id)

    def _ticket(self, ticket_id: str) -> Ticket | None:
        if (ticket := self._ahead.get(ticket_id)) is not None:
            return ticket
        if (ticket := self._recent.get(ticket_id)) is not None:
            self._recent.move_to_end(ticket_id)
            return ticket
        ticket = self.tickets.load(ticket_id)
        if ticket is not None:
            self._remember(ticket)
        return ticket

    def _remember(self, ticket: Ticket) -> None:
        self._recent[ticket.ticket_id] = ticket
        self._recent.move_to_end(ticket.ticket_id)
        while len(self._recent) > self._recent_bound:
            self._recent.popitem(last=False)

    def at_version(self, ticket_id: str, version: int) -> Ticket:
        """The ticket as it stood at `version`, which this ledger holds."""
        ticket = self.get(ticket_id)
        assert ticket is not None and ticket.version >= version
        return as_of(ticket, version)

    def require_caught_up(self) -> None:
        if not self.caught_up.is_set():
            raise NotReady("intake is still reading the ticket log; retry shortly")

    def apply(self, changes: Changes, event: dict[str, Any], raw: bytes) -> set[bytes]:
        """Fold an event read back from the log (`raw`, and its JSON as written: read_logged) into `changes` (written
        by the caller with the log's position) and into the tickets in memory. Events the store already holds are
        skipped by version, so the log may be read again from any earlier point. Returns the store keys whose
        changelog records changed. InvalidEvent for a message the contract refuses."""
        try:
            logged = Logged.of(event)
        except (KeyError, TypeError, ValueError, AttributeError):
            # A field left out for its default, or written otherwise than intake writes it: the event as the
            # contract reads it, every field filled in (InvalidEvent, saying why, if the contract refuses it).
            logged = Logged.of(read_checked(TICKETS_EVENTS, raw))
        changed = self.tickets.apply(changes, logged, raw)
        if changed and logged.request is not None and (used := self._keys.logged(*logged.request, changes)):
            changed.add(used)
        if not changed:
            return changed
        ticket_id, version = logged.ticket_id, logged.version
        if (ahead := self._ahead.get(ticket_id)) is not None and ahead.version <= version:
            del self._ahead[ticket_id]
        if (cached := self._recent.get(ticket_id)) is not None:
            if cached.version + 1 == version and (folded := self._folded(raw, cached)) is not None:
                self._recent[ticket_id] = folded
            elif cached.version < version:
                del self._recent[ticket_id]  # the store has it; loaded again when asked for
        if self._waiting:  # a new Event per event cost more than the rest of the bookkeeping of a replay
            applied, self._applied = self._applied, asyncio.Event()
            applied.set()
        return changed

    def _folded(self, raw: bytes, ticket: Ticket) -> Ticket | None:
        event: TicketEvent = decode_event(TICKETS_EVENTS, raw)  # type: ignore[assignment]
        try:
            return evolve(self._personal.open_fields(event), ticket)
        except KeyNotYetRead:
            return None  # sealed under a key issued elsewhere a moment ago: loaded from the store when asked for

    def forget_opened(self) -> None:
        """A person was erased: the tickets in memory may hold their words, opened. Loaded again when asked for."""
        self._recent.clear()

    def _version(self, ticket_id: str) -> int:
        if (ticket := self._ahead.get(ticket_id) or self._recent.get(ticket_id)) is not None:
            return ticket.version
        return self.tickets.version(ticket_id)

    async def reached(self, ticket_id: str, version: int) -> None:
        """Return once this ledger holds `version` of the ticket (decided elsewhere, read back from the log)."""
        while self._version(ticket_id) < version:
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
                read = self._event_log.read_so_far()  # what the ticket below reflects of the log
                ticket = self._ticket(command.ticket_id)
                events = decide(ticket, command, context)
                if events:
                    sealed = await self._sealed(events, ticket)
                    landed = await self._event_log.append(sealed, read)
                    if not landed.alone:
                        await self._taken_in(command.ticket_id, sealed, landed)
                    ticket = fold(ticket, events)
                    assert ticket is not None
                    if ticket.version > self.tickets.version(command.ticket_id):  # not read back during the append
                        self._ahead[command.ticket_id] = ticket
                        for event in events:
                            self._keys.decided(event)
                    self._remember(ticket)
                    return ticket, False
                assert ticket is not None
                first = replayed_version(ticket, context)
                return (ticket, False) if first is None else (as_of(ticket, first), True)

    async def _taken_in(self, ticket_id: str, events: list[TicketEvent], landed: Landed) -> None:
        """Return once the log is read back past `events` and each is the one its version of the ticket holds; else
        the caller is told to retry, as another writer's event took the version first (owners.py: a zombie)."""
        try:
            await asyncio.wait_for(self._event_log.read_back(landed), READ_BACK_WITHIN_S)
        except TimeoutError:
            READ_BACK.labels("not read back in time").inc()
            raise NotReady(
                "the change was appended, but this replica has not read it back to know it stands; retry shortly (a "
                "retry under the same Idempotency-Key is answered with it if it does)"
            ) from None
        for event in events:
            held = self.tickets.event_id_at(ticket_id, event.aggregate_version)
            if held != str(event.event_id):
                log.warning(
                    "a decision lost its version to another writer's event; its caller is told to retry",
                    extra={"ticket_id": ticket_id, "version": event.aggregate_version, "lost": event.event_id},
                )
                self._recent.pop(ticket_id, None)
                READ_BACK.labels("lost its version").inc()
                raise NotReady(
                    f"ticket {ticket_id} changed on another intake replica while this request was decided (its "
                    "partition changed hands): the change was not taken into the ticket; retry"
                )
        READ_BACK.labels("stands").inc()

    async def _sealed(self, events: list[TicketEvent], ticket: Ticket | None) -> list[TicketEvent]:
        requester = ticket.requester_id if ticket else events[0].data.requester_id  # type: ignore[attr-defined]
        return [await self._personal.seal_fields(event, whose_words(event, requester)) for event in events]

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
