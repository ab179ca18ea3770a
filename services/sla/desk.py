"""sla's use cases behind its HTTP edge, testable without FastAPI or Kafka: the configuration's versions and changes,
a ticket's clocks as the people allowed to see them read them (or which replica holds them), and the what-if.

They refuse with the shared refusals (runtime/refusals.py); the routes (api.py, catalog_api.py) check the caller's
role and shape the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketstream_shared.contract.sla import SlaConfigEvent
from ticketstream_shared.contract.topics import TICKET_PARTITIONS
from ticketstream_shared.runtime.auth import Principal, require_visible
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.kafka import partition_of
from ticketstream_shared.runtime.refusals import InvalidField, NotFound, Unavailable

from .clock_store import ClockStore
from .clocks import TicketClocks
from .configuration import CLOCK_SKEW, NOT_READ_YET, Configurable, Configuration, Effective, history_view
from .history import TicketHistory
from .snapshots import UnreadableSnapshot
from .timekeeper import Timekeeper
from .views import ticket_view, what_if_view
from .whatif import Candidate, Replay, in_force


@dataclass(frozen=True)
class Changed:
    """A configuration PUT answered: the subject's versions, and whether this PUT recorded one."""

    view: dict[str, Any]
    recorded: bool


@dataclass(frozen=True)
class HeldElsewhere:
    """The ticket's partition is held by the replica at `holder`, which answers for its clocks."""

    holder: str


class ClockDesk:
    def __init__(
        self,
        configuration: Configuration,
        timekeeper: Timekeeper,
        clocks: ClockStore,
        config_log: ConfigLog[SlaConfigEvent],
        ticket_history: TicketHistory,
        directory: ReplicaDirectory,
        clock: Callable[[], datetime],
    ) -> None:
        self.configuration = configuration
        self._timekeeper = timekeeper
        self._clocks = clocks
        self._config_log = config_log
        self._ticket_history = ticket_history
        self._directory = directory
        self._clock = clock

    def versions(self, kind: Configurable, subject: str) -> dict[str, Any]:
        if (history := self.configuration.history(kind, subject)) is None:
            raise NotFound(f"no {kind.label} {subject}")
        return history_view(subject, history, self._clock())

    async def change(self, kind: Configurable, subject: str, body: Effective, caller: Principal) -> Changed:
        """The body as the subject's next version (configuration.py); the caller's role is the route's to check."""
        history, recorded = await self.configuration.change(kind, subject, body, caller)
        return Changed(history_view(subject, history, self._clock()), recorded)

    def clocks_of(self, ticket_id: str, caller: Principal, forwarded: bool) -> dict[str, Any] | HeldElsewhere:
        """A ticket's clocks, from memory or (settled or asleep ones) this replica's store; else the replica holding
        them, unless the request was `forwarded` by another replica already."""
        partition = partition_of(ticket_id, TICKET_PARTITIONS)
        state = self._timekeeper.ticket(ticket_id)
        if state is None and self._directory.holds_here(partition):
            state = self._settled(ticket_id)
        if state is None:
            holder = self._directory.holder(partition)
            if holder is not None and not forwarded:
                return HeldElsewhere(holder)
            raise NotFound(f"no SLA clocks for ticket {ticket_id}")
        require_visible(caller, state.client_id, state.requester_id)
        return ticket_view(state, self._clock())

    def _settled(self, ticket_id: str) -> TicketClocks | None:
        """A ticket of a partition held here whose clocks are settled or asleep: they are in the store."""
        try:
            return self._clocks.load(ticket_id)
        except UnreadableSnapshot:
            return None  # its partition is replayed from the beginning (or will be, once the worker needs them)

    async def what_if(
        self, opened_from: datetime, to: datetime, proposed: Candidate, caller: Principal
    ) -> dict[str, Any]:
        """Compliance of the tickets opened from `opened_from` to `to` as it was and as it would have been under the
        proposed policy or calendar, and the clocks whose verdict changes. Emits and records nothing. A key scoped
        to a client sees its own."""
        now = self._clock()
        if to > now + CLOCK_SKEW:
            raise InvalidField("to", "lies in the future: a what-if replays what has happened")
        if not self._config_log.caught_up.is_set():
            raise Unavailable(NOT_READ_YET)
        agreements = self.configuration.agreements
        candidate = in_force(agreements, proposed)
        for policy in proposed.policies.values():
            self.configuration.require_known_calendar(
                policy.calendar_id, opened_from, candidate, "candidate.policy.calendar_id"
            )
        replay = Replay(opened_from, min(to, now), in_force(agreements), candidate)
        await self._ticket_history.replay(replay, admits=lambda event: caller.may_see_client(event.client_id))
        return what_if_view(await asyncio.to_thread(replay.comparison))
