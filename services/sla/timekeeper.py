"""The clocks of every ticket a worker owns, and the deadline index that says which ticket to look at next.

Still pure (no I/O, no wall clock): the service hands it ticket events, configuration changes and the time of each
tick, and publishes what it returns. The index is a heap of (next alarm, ticket); an entry whose ticket has since
moved its next alarm is stale and skipped when popped, so updating a ticket never searches the heap. One heap per
partition: a worker taking partitions over holds their alarms back while the others keep ringing on time.

A ticket may be held asleep: known by its next alarm only, its clocks in the store. It is woken (its clocks loaded
through `wake`, the one lookup the timekeeper makes) by its first event, its next alarm, or a configuration change
read live, which re-times every clock (in parts: `sweeping`). A ticket whose clocks cannot be read marks its
partition unreadable (`mark_unreadable`; the worker's lookups mark too): the worker takes the marks
(`take_unreadable`) and replays those partitions from their beginning.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Set
from datetime import datetime

from ticketstream_shared.contract import TicketEvent
from ticketstream_shared.contract.sla import SlaConfigEvent, SlaEvent

from .agreements import Agreements
from .clocks import TicketClocks, advance, decide, take_effect
from .snapshots import UnreadableSnapshot

#: A ticket's clocks as saved, None if there are none; raises UnreadableSnapshot.
Wake = Callable[[str], TicketClocks | None]
#: Tickets re-timed between two chances for the caller to let others run: a configuration change re-times every
#: clock held, about 0.13 ms a ticket (13 s at 100k tickets), and a process silent that long loses its partitions.
SWEEP_PART = 500


def _nothing_asleep(ticket_id: str) -> TicketClocks | None:
    raise LookupError(f"ticket {ticket_id} was put asleep with nowhere to wake it from")


class Timekeeper:
    def __init__(self, agreements: Agreements, wake: Wake = _nothing_asleep) -> None:
        self.agreements = agreements
        self._wake = wake
        self._tickets: dict[str, TicketClocks] = {}
        #: Tickets asleep, by partition: their clocks are in the store, their next alarm in the heap.
        self._asleep: dict[str, int] = {}
        #: Partitions of tickets whose clocks could not be read, until the worker takes them.
        self._unreadable: set[int] = set()
        self._partition_of: dict[str, int] = {}
        #: Per partition, (next alarm, ticket).
        self._due: dict[int, list[tuple[datetime, str]]] = {}
        #: When configuration changes read live take effect: each then reaches every ticket in one sweep.
        self._changes: list[datetime] = []
        #: Tickets whose clocks changed since the last `take_changed`: their snapshots are due.
        self._changed: set[str] = set()

    def __len__(self) -> int:
        """Tickets held, awake or asleep."""
        return len(self._tickets) + len(self._asleep)

    @property
    def asleep(self) -> int:
        return len(self._asleep)

    def holds(self, ticket_id: str) -> bool:
        return ticket_id in self._tickets or ticket_id in self._asleep

    def ticket(self, ticket_id: str) -> TicketClocks | None:
        """A ticket's clocks if they are awake here."""
        return self._tickets.get(ticket_id)

    def tickets(self) -> Iterator[TicketClocks]:
        return iter(self._tickets.values())

    def next_due(self, paused: Set[int] = frozenset()) -> datetime | None:
        """When the next alarm of the partitions not `paused` falls due (perhaps a stale entry's moment)."""
        tops = [heap[0][0] for partition, heap in self._due.items() if heap and partition not in paused]
        return min(tops, default=None)

    def handle(self, event: TicketEvent, partition: int) -> list[SlaEvent]:
        before = self._awake(event.ticket_id)
        after, events = decide(before, event, self.agreements)
        self._store(before, after, partition)
        return events

    def tick(self, now: datetime, paused: Set[int] = frozenset()) -> list[SlaEvent]:
        """Everything due by `now`: configuration changes that took effect, then alarms, each at its own moment;
        nothing of the `paused` partitions (their clocks are being rebuilt), and no configuration change while any
        partition is paused (a change reaches every ticket in one sweep)."""
        events = [event for part in self.sweeping(now, paused) for event in part]
        for partition, due_in in self._due.items():
            if partition in paused:
                continue
            while due_in and due_in[0][0] <= now:
                due, ticket_id = heapq.heappop(due_in)
                state = self._awake(ticket_id)
                if state is None or state.next_due != due:
                    continue  # stale: the ticket moved on
                after, raised = advance(state, due, self.agreements)
                self._store(state, after, partition)
                events.extend(raised)
        return events

    def sweeping(self, now: datetime, paused: Set[int] = frozenset()) -> Iterator[list[SlaEvent]]:
        """The configuration changes that took effect by `now` (`tick`'s first part), each re-timing every ticket
        held, SWEEP_PART tickets a part. Between parts the caller may let others run, but nothing may take or give
        partitions meanwhile: a sweep reaches every ticket held when it began (a ticket forgotten meanwhile is
        skipped)."""
        while not paused and self._changes and self._changes[0] <= now:
            yield from self._take_effect(heapq.heappop(self._changes))

    def catch_up(self, now: datetime, partitions: Set[int]) -> list[SlaEvent]:
        """Advance the tickets of `partitions` (just rebuilt) to `now`: what fell due while no worker held them is
        raised, and configuration changes since their last event reach them. (The other tickets' alarms and
        changes are the next tick's, and so are those of the tickets asleep: no change has come since they were
        advanced, or they would have been woken, and their alarms are in the heap.)"""
        events: list[SlaEvent] = []
        for ticket_id, state in [(t, s) for t, s in self._tickets.items() if self._partition_of[t] in partitions]:
            after, caused = advance(state, now, self.agreements)
            self._store(state, after, self._partition_of[ticket_id])
            events.extend(caused)
        return events

    def record_change(self, change: SlaConfigEvent) -> None:
        """A configuration change read live from sla.config: every clock is re-timed at the first tick after it
        takes effect. (Changes read before the ticket log need no sweep: clocks meet them in event time.)"""
        self.agreements.apply(change)
        heapq.heappush(self._changes, change.effective_at)

    def restore(self, state: TicketClocks, partition: int) -> None:
        """A ticket's clocks as a snapshot kept them (not a change: the snapshot is already written)."""
        self._asleep.pop(state.ticket_id, None)
        self._store(None, state, partition)
        self._changed.discard(state.ticket_id)

    def rest(self, ticket_id: str, partition: int, next_due: datetime | None) -> None:
        """Hold a ticket asleep: its clocks, in the store, were advanced past every configuration change known."""
        self._asleep[ticket_id] = partition
        self._partition_of[ticket_id] = partition
        if next_due is not None:
            self._schedule(partition, next_due, ticket_id)

    def _awake(self, ticket_id: str) -> TicketClocks | None:
        """The ticket's clocks, woken if it is asleep; None if it is not held here, or its clocks cannot be read."""
        return self._tickets.get(ticket_id) or self._woken(ticket_id)

    def _woken(self, ticket_id: str) -> TicketClocks | None:
        if (partition := self._asleep.get(ticket_id)) is None:
            return None
        try:
            state = self._wake(ticket_id)
        except UnreadableSnapshot:
            state = None
        if state is None:  # a store that lost what its index holds is unreadable too
            del self._asleep[ticket_id], self._partition_of[ticket_id]
            self.mark_unreadable(partition)
            return None
        self.restore(state, partition)
        return state

    @property
    def unreadable(self) -> frozenset[int]:
        return frozenset(self._unreadable)

    def mark_unreadable(self, partition: int) -> None:
        """A ticket of `partition` has clocks that cannot be read: the partition must be replayed."""
        self._unreadable.add(partition)

    def take_unreadable(self) -> set[int]:
        """The partitions marked unreadable since the last call."""
        taken, self._unreadable = self._unreadable, set()
        return taken

    def take_changed(self) -> list[tuple[int, TicketClocks]]:
        """(partition, clocks) of every ticket changed since the last call."""
        changed = [(self._partition_of[ticket_id], self._tickets[ticket_id]) for ticket_id in self._changed]
        self._changed.clear()
        return changed

    def forget(self, ticket_ids: list[str]) -> None:
        """Tickets whose clocks are saved and settled: they leave memory (their heap entries go stale)."""
        for ticket_id in ticket_ids:
            if self._tickets.pop(ticket_id, None) is not None:
                del self._partition_of[ticket_id]
                self._changed.discard(ticket_id)

    def forget_partitions(self, partitions: set[int]) -> None:
        """Partitions taken away by a rebalance: another worker rebuilds their clocks."""
        for ticket_id in [t for t, p in self._partition_of.items() if p in partitions]:
            del self._partition_of[ticket_id]
            self._tickets.pop(ticket_id, None)
            self._asleep.pop(ticket_id, None)
            self._changed.discard(ticket_id)
        for partition in partitions:
            self._due.pop(partition, None)
            self._unreadable.discard(partition)

    def _take_effect(self, moment: datetime) -> Iterator[list[SlaEvent]]:
        held = [*self._asleep, *self._tickets]
        for start in range(0, len(held), SWEEP_PART):
            events: list[SlaEvent] = []
            for ticket_id in held[start : start + SWEEP_PART]:
                state = self._awake(ticket_id)
                if state is not None:
                    after, caused = take_effect(state, moment, self.agreements)
                    self._store(state, after, self._partition_of[ticket_id])
                    events.extend(caused)
            yield events

    def _store(self, before: TicketClocks | None, after: TicketClocks | None, partition: int) -> None:
        if after is None or after is before:
            return
        self._tickets[after.ticket_id] = after
        if before is None or _more_than_time_passed(before, after):
            self._changed.add(after.ticket_id)
        self._partition_of[after.ticket_id] = partition
        due = after.next_due
        if due is not None and (before is None or before.next_due != due):
            self._schedule(partition, due, after.ticket_id)

    def _schedule(self, partition: int, due: datetime, ticket_id: str) -> None:
        heapq.heappush(self._due.setdefault(partition, []), (due, ticket_id))


def _more_than_time_passed(before: TicketClocks, after: TicketClocks) -> bool:
    """Whether the snapshot of a ticket is out of date: anything but `as_of` (how far in event time it has been
    advanced, which a restored worker advances again itself) changed. Clocks are compared by identity: an
    unchanged ticket keeps its tuple of clocks."""
    return (
        after.clocks is not before.clocks
        or after.version != before.version
        or after.status is not before.status
        or after.facts != before.facts
    )
