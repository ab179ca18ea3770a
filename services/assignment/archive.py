"""The desk's local store: tickets done with (resolved or closed) put aside on disk, and checkpoints of what the
desk keeps in memory, so that a process's memory grows with open work, not with every ticket it ever routed, and a
restart reads only the tail of the team log.

A ticket is put aside or in the desk, never both. Any team-log record about a ticket put aside brings it back into
its team for the fold (a reopen, an outcome recorded after the closing, a redelivered record), and it returns here
if it is still done with afterwards. Reads (`GET /v1/assignments/{ticket}`, the router's lookups) see it here
without bringing it back.

What is put aside or taken back waits in memory until the next checkpoint, which writes it in one atomic write with
the desk's memory and how far the team log is folded (`LocalStore`). So the store always holds one moment of the
fold: a process killed between checkpoints reopens it as it stood at the last one that reached the disk and folds
the team log again from there. A store without a checkpoint (a new machine) is empty and the team log is read from
its beginning: the team log is itself the changelog every process reads whole.
"""

from __future__ import annotations

import marshal

from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM
from ticketstream_shared.runtime.store import Changes, LocalStore

from .domain import Ticket

#: What the store's keys and values mean; another one (an earlier release) empties the store, to be folded again
#: from the team log. Change it with the layout of a ticket or of the checkpoint (the classes pickled there).
LAYOUT = f"assignment-desk-2-marshal-{marshal.version}"
_CHECKPOINT = b"\x01desk"


class DeskArchive:
    def __init__(self, store: LocalStore) -> None:
        self.store = store
        #: What was put aside or taken back since the last checkpoint, not on disk yet.
        self._pending = Changes()

    # the shelf (desk.Shelf)

    def put(self, team: str, ticket: Ticket) -> None:
        fields = (team, *ticket[:2], ticket.priority._value_, ticket.status._value_, *ticket[4:])
        self._pending.put(_key(ticket.ticket_id), marshal.dumps(fields))

    def get(self, ticket_id: str) -> tuple[str, Ticket] | None:
        """The ticket's team and the ticket as it was put aside, if it is here."""
        held = self.store.get(_key(ticket_id), within=self._pending)
        if held is None:
            return None
        team, ticket_id, client_id, priority, status, *rest = marshal.loads(held)
        return team, Ticket(ticket_id, client_id, Priority(priority), TicketStatus(status), *rest)

    def take(self, ticket_id: str) -> tuple[str, Ticket] | None:
        """The ticket's team and the ticket, taken back into memory, if it is here."""
        found = self.get(ticket_id)
        if found is not None:
            self._pending.delete(_key(ticket_id))
        return found

    # checkpoints

    def checkpoint(self, memory: bytes, folded_to: dict[int, int]) -> None:
        """Write what waits, with the desk's `memory` and the team log's partitions folded up to `folded_to`."""
        changes, self._pending = self._pending, Changes()
        changes.put(_CHECKPOINT, memory)
        for partition, offset in folded_to.items():
            changes.applied(ASSIGNMENT_BY_TEAM, partition, offset)
        changes.restored()
        self.store.write(changes)

    def last_checkpoint(self) -> tuple[bytes, dict[int, int]] | None:
        """The desk's memory and the team log's positions at the last checkpoint on disk; None if there is none."""
        memory = self.store.get(_CHECKPOINT)
        if memory is None or not self.store.is_restored:
            return None
        return memory, self.store.applied(ASSIGNMENT_BY_TEAM)

    def start_over(self) -> None:
        """Forget everything: the team log is folded again from its beginning."""
        self.store.clear()
        self._pending = Changes()


def _key(ticket_id: str) -> bytes:
    return b"t" + ticket_id.encode()
