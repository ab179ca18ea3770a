"""The sla worker's state on local disk: every ticket's clocks as their snapshot (snapshots.py), an index of the
tickets whose clocks still run or wait (the hot set, what a worker holds), and how far each partition of
tickets.events and sla.events the clocks reflect, written atomically with them (runtime/store.py).

The index says, for each hot ticket, when its next alarm falls due and up to when it was advanced: a worker taking
a partition over reads the index only, and decodes a ticket's clocks when an alarm or an event first needs them.

Its changelog is sla.clocks (runtime/changelog.py): keyed by ticket, a snapshot per record, partitioned as
tickets.events. The other replicas follow it into their own stores as standbys.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from pydantic_core import from_json

from ticketstream_shared.contract.topics import SLA_CLOCKS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.changelog import Changelog
from ticketstream_shared.runtime.store import Changes, LocalStore

from . import snapshots
from .agreements import Agreements
from .clocks import ClockStatus, TicketClocks

#: The store's changelog: a record per ticket, partitioned as tickets.events, whose headers also say how far the
#: sla events published are reflected.
CHANGELOG = Changelog(SLA_CLOCKS, TICKETS_EVENTS, also=(SLA_EVENTS,))
_CLOCKS, _HOT = b"c|", b"h|"
#: Clocks that may still raise an alarm or be re-timed by a configuration change.
_LIVE = frozenset({ClockStatus.RUNNING, ClockStatus.PAUSED})
_LIVE_VALUES = frozenset(status.value for status in _LIVE)


class HotTicket(NamedTuple):
    """An entry of the hot index. `as_of` is None in a store written before the index held it: load the clocks."""

    ticket_id: str
    next_due: datetime | None
    as_of: datetime | None


def is_settled(state: TicketClocks) -> bool:
    """Whether no clock of the ticket can change without a new ticket event (a reopen): it need not be in memory."""
    return not any(clock.status in _LIVE for clock in state.clocks)


class ClockStore:
    def __init__(self, store: LocalStore, agreements: Agreements) -> None:
        self.store = store
        self.agreements = agreements
        #: Terms already restored, shared by the clocks of tickets alike (snapshots.TermsSeen).
        self._terms_seen: snapshots.TermsSeen = {}

    def save(self, changes: Changes, partition: int, state: TicketClocks) -> bytes:
        """Add a ticket's clocks to `changes`; returns its key (the changelog's)."""
        key = state.ticket_id.encode()
        changes.put(_CLOCKS + key, snapshots.encode(state))
        due = state.next_due
        when = None if due is None else due.isoformat()
        self._index(changes, partition, key, not is_settled(state), when, state.as_of.isoformat())
        return key

    def restore(self, changes: Changes, partition: int, key: bytes, record: bytes) -> None:
        """A record of sla.clocks into `changes` (a restore or a standby). Whether the ticket is hot is read from the
        record's clock statuses, not by decoding its terms: a standby follows every record its owner writes."""
        changes.put(_CLOCKS + key, record)
        data = from_json(record)
        clocks = data["clocks"]
        dues = [clock["alarms"][0][0] for clock in clocks if clock["alarms"]]
        due = min(dues, key=datetime.fromisoformat) if dues else None
        hot = any(clock["status"] in _LIVE_VALUES for clock in clocks)
        self._index(changes, partition, key, hot, due, data["as_of"])

    def _index(self, changes: Changes, partition: int, key: bytes, hot: bool, next_due: str | None, as_of: str) -> None:
        if hot:
            changes.put(_hot_prefix(partition) + key, f"{next_due or ''}|{as_of}".encode())
        else:
            changes.delete(_hot_prefix(partition) + key)

    def records_of(self, key: bytes) -> list[tuple[bytes, bytes]]:
        """A ticket's changelog record: its clocks, under the ticket's key."""
        raw = self.store.get(_CLOCKS + key)
        return [] if raw is None else [(key, raw)]

    def load(self, ticket_id: str) -> TicketClocks | None:
        """A ticket's clocks as last saved, or None if it has none here. Raises snapshots.UnreadableSnapshot."""
        raw = self.store.get(_CLOCKS + ticket_id.encode())
        return None if raw is None else snapshots.decode(raw, self.agreements, self._terms_seen)

    def hot(self, partition: int) -> Iterator[HotTicket]:
        """The partition's tickets whose clocks still run or wait, from the index alone (no clocks decoded)."""
        prefix = _hot_prefix(partition)
        for key, value in self.store.scan(prefix, prefix):
            ticket_id = key[len(prefix) :].decode()
            if not value:
                yield HotTicket(ticket_id, None, None)
                continue
            due, as_of = value.decode().split("|")
            yield HotTicket(ticket_id, datetime.fromisoformat(due) if due else None, datetime.fromisoformat(as_of))


def _hot_prefix(partition: int) -> bytes:
    return _HOT + b"%05d|" % partition
