"""sla's use cases without FastAPI or Kafka (desk.py): who may read a ticket's clocks, where they are found, and
what a what-if refuses or lets a scoped key see. The ticket log a what-if reads is a fake here (pure logic); the
routes on a real broker are in tests/integration/test_sla_service.py and test_sla_whatif.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest

from sla.agreements import Agreements
from sla.clock_store import ClockStore
from sla.config_log import sla_config_log
from sla.configuration import CALENDARS, Configuration
from sla.desk import ClockDesk, HeldElsewhere
from sla.history import TicketHistory
from sla.timekeeper import Timekeeper
from sla.whatif import Candidate, Replay
from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import Role, TicketEvent
from ticketstream_shared.contract.sla import PolicyData
from ticketstream_shared.contract.topics import TICKET_PARTITIONS
from ticketstream_shared.runtime.auth import Principal
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.kafka import partition_of
from ticketstream_shared.runtime.refusals import Forbidden, InvalidField, NotFound, Unavailable
from ticketstream_shared.runtime.store import LocalStore

HERE, THERE = "http://sla-0:8002", "http://sla-1:8002"
NOW = T0 + timedelta(days=30)
MANAGER = Principal("manager-key", Role.MANAGER)
ACME_REQUESTER = Principal("alice-key", Role.REQUESTER, client_id="acme", requester_id="alice")


class TicketLog(TicketHistory):
    """The period's ticket events, as tickets.events would give them."""

    def __init__(self, events: list[TicketEvent]) -> None:
        self._events = events

    async def replay(self, replay: Replay, admits: Callable[[TicketEvent], bool]) -> None:
        for event in self._events:
            if admits(event):
                replay.fold(event)


class Desk:
    """A desk whose replica holds the partitions in `here` and whose sla.config has been read if `read`."""

    def __init__(self, here: set[int], events: list[TicketEvent] = (), read: bool = True) -> None:  # type: ignore[assignment]
        agreements = Agreements.with_defaults()
        self.timekeeper = Timekeeper(agreements)
        self.store = LocalStore(None)
        config_log = sla_config_log(self.timekeeper)
        if read:
            config_log.caught_up.set()
        directory = ReplicaDirectory(HERE)
        directory.holders = {p: HERE if p in here else THERE for p in range(TICKET_PARTITIONS)}
        self.desk = ClockDesk(
            Configuration(agreements, config_log, lambda: NOW),
            self.timekeeper,
            ClockStore(self.store, agreements),
            config_log,
            TicketLog(list(events)),
            directory,
            lambda: NOW,
        )

    def __enter__(self) -> ClockDesk:
        return self.desk

    def __exit__(self, *_: object) -> None:
        self.store.close()


def test_a_ticket_held_here_is_answered_to_those_who_may_see_it() -> None:
    ticket = a_ticket_created(client_id="acme", requester_id="alice")
    partition = partition_of(ticket.ticket_id, TICKET_PARTITIONS)
    harness = Desk(here={partition})
    harness.timekeeper.handle(ticket, partition)
    with harness as desk:
        view = desk.clocks_of(ticket.ticket_id, ACME_REQUESTER, forwarded=False)
        assert isinstance(view, dict) and view["ticket_id"] == ticket.ticket_id
        assert desk.clocks_of(ticket.ticket_id, MANAGER, forwarded=False) == view
        with pytest.raises(Forbidden, match="scoped to client globex"):
            desk.clocks_of(ticket.ticket_id, Principal("g", Role.MANAGER, client_id="globex"), forwarded=False)
        with pytest.raises(Forbidden, match="their own tickets"):
            bob = Principal("bob-key", Role.REQUESTER, client_id="acme", requester_id="bob")
            desk.clocks_of(ticket.ticket_id, bob, forwarded=False)


def test_a_ticket_held_elsewhere_names_its_holder_once() -> None:
    """The replica holding the partition answers; a request it passed on is not passed on again (no loop)."""
    ticket = a_ticket_created()
    with Desk(here=set()) as desk:
        assert desk.clocks_of(ticket.ticket_id, MANAGER, forwarded=False) == HeldElsewhere(THERE)
        with pytest.raises(NotFound, match=ticket.ticket_id):
            desk.clocks_of(ticket.ticket_id, MANAGER, forwarded=True)


def test_a_ticket_no_replica_has_is_not_found() -> None:
    with Desk(here=set(range(TICKET_PARTITIONS))) as desk, pytest.raises(NotFound):
        desk.clocks_of("no-such-ticket", MANAGER, forwarded=False)


def test_versions_of_an_unknown_calendar_are_not_found() -> None:
    with Desk(here=set()) as desk:
        assert desk.versions(CALENDARS, "default")["current_version"] == 1
        with pytest.raises(NotFound, match="no calendar nights"):
            desk.versions(CALENDARS, "nights")


def test_a_what_if_sees_only_the_clients_a_key_may_see() -> None:
    acme, globex = a_ticket_created(client_id="acme"), a_ticket_created(client_id="globex")
    stricter = Candidate(policies={"default": PolicyData.model_validate(strict_default())})

    async def story() -> None:
        with Desk(here=set(), events=[acme, globex]) as desk:
            for caller, clients in ((MANAGER, ["acme", "globex"]), (ACME_REQUESTER, ["acme"])):
                view = await desk.what_if(T0, T0 + timedelta(days=1), stricter, caller)
                assert sorted(view["actual"]["by_client"]) == clients

    asyncio.run(story())


def test_a_what_if_refuses_the_future_an_unread_configuration_and_an_unknown_calendar() -> None:
    async def story() -> None:
        with Desk(here=set()) as desk:
            with pytest.raises(InvalidField) as future:
                await desk.what_if(T0, NOW + timedelta(hours=1), Candidate(), MANAGER)
            assert future.value.field == "to"
            unknown = Candidate(policies={"p": PolicyData.model_validate({**strict_default(), "calendar_id": "x"})})
            with pytest.raises(InvalidField) as calendar:
                await desk.what_if(T0, NOW, unknown, MANAGER)
            assert calendar.value.field == "candidate.policy.calendar_id"
        with Desk(here=set(), read=False) as unread, pytest.raises(Unavailable, match="reading its configuration"):
            await unread.what_if(T0, NOW, Candidate(), MANAGER)

    asyncio.run(story())


def strict_default() -> dict[str, object]:
    """The default policy with every target a minute."""
    default = Agreements.with_defaults().policies["default"].versions[-1].value
    minute = {"first_response_minutes": 1, "resolution_minutes": 1}
    return {**default.model_dump(mode="json"), "targets": {p: minute for p in default.model_dump()["targets"]}}
