"""The router re-keys ticket and SLA events by team onto the team log, and knows where each ticket went: from what it
sent itself, else from the desk (after a restart, or once a rule routed a waiting ticket). Kafka here is a fake."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from assignment.desk import Desk, recorded
from assignment.records import (
    TicketParked,
    TicketRouted,
    TicketSnapshot,
    TicketStatusMoved,
    TicketWithdrawn,
    decode_team_record,
)
from assignment.router import TicketRouter
from assignment.routing import ESCALATING_SLA_EVENTS, ROUTED_TICKET_EVENTS, Routed, Routing, route
from assignment.teamlog import TeamLog
from tests.builders import T0, a_ticket_created
from tests.fakes_kafka import FakeBroker, FakeProducer, still_waiting
from tests.polling import until
from tests.reporting_events import SLA_EVENT_TYPES, an_sla_event
from tests.unit.test_assignment_desk import a_change, roster_event, routed
from tests.unit.test_contract import DATA
from tests.unit.test_sla_clocks import config
from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract import TicketStatusChanged, decode_assignment_event
from ticketstream_shared.contract.assignment import CategoryRouted, TeamLogEvent, TicketUnassignable
from ticketstream_shared.contract.events import TICKET_EVENT_TYPES
from ticketstream_shared.contract.sla import ServiceChanged
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, ASSIGNMENT_EVENTS, TEAM_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Delivery
from ticketstream_shared.runtime.kafka import partition_of


def a_router(
    broker: FakeBroker, *rules: tuple[str, str], catalogue: ServiceCatalogue | None = None
) -> tuple[TicketRouter, TeamLog]:
    """A router whose team log and catalogue have been read: the desk holds a rule (category, team) for each of
    `rules`."""
    team_log = TeamLog(Desk(), clock=lambda: T0)
    team_log.producer = FakeProducer(broker)  # type: ignore[assignment]
    for category, team in rules:
        team_log.desk.apply(a_rule(category, team), decides=False, instance="me")
    team_log.caught_up.set()
    catalogue = catalogue or ServiceCatalogue()
    return TicketRouter(team_log, catalogue, CatalogueRead(catalogue), lambda: T0), team_log


class CatalogueRead:
    """sla.config read to the end it had at start-up; `unread` changes are what sla wrote since, read by the next
    read to the end."""

    def __init__(self, catalogue: ServiceCatalogue, *unread: ServiceChanged) -> None:
        self.catalogue = catalogue
        self.unread = list(unread)
        self.caught_up = asyncio.Event()
        self.caught_up.set()
        self.reads_to_end = 0

    async def read_to_end(self, timeout_s: float | None = None) -> bool:
        self.reads_to_end += 1
        for change in self.unread:
            self.catalogue.apply(change)
        self.unread.clear()
        return True


def a_rule(category: str, team: str) -> TeamLogEvent:
    return roster_event(CategoryRouted, category=category, team=team, skill=category)


def delivered(*events: object) -> list[Delivery]:
    return [Delivery(event, TICKETS_EVENTS, 0, offset) for offset, event in enumerate(events)]


def status_changed(ticket_id: str, version: int, to_status: str) -> TicketStatusChanged:
    return TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id=ticket_id, client_id="acme", aggregate_version=version,
        producer="intake", correlation_id="test", data={"from_status": "new", "to_status": to_status},
    )  # fmt: skip


def team_records(broker: FakeBroker) -> list[tuple[str, TeamLogEvent]]:
    """What the router wrote on the team log, with the key each went under, checking each is where its key says."""
    written = []
    for record in broker.records(ASSIGNMENT_BY_TEAM):
        assert record.partition == partition_of(record.key.decode(), TEAM_PARTITIONS)
        written.append((record.key.decode(), decode_team_record(record.value)))
    return written


def test_a_new_ticket_is_re_keyed_onto_its_categorys_team():
    """Everything that decides for a team then sits in one partition, with one owner."""

    async def story() -> None:
        broker = FakeBroker()
        router, _ = a_router(broker, ("network", "net-team"))
        await router.handle(delivered(a_ticket_created("t1", category="network")))
        [(key, record)] = team_records(broker)
        assert key == "net-team" and isinstance(record, TicketRouted) and record.data.ticket.ticket_id == "t1"
        assert broker.records(ASSIGNMENT_EVENTS) == []

    asyncio.run(story())


def test_a_ticket_no_rule_takes_waits_under_its_category_and_is_announced_unroutable():
    """Parked under its category, where a rule that comes later finds it; the public event says why nobody has it."""

    async def story() -> None:
        broker = FakeBroker()
        router, _ = a_router(broker, ("network", "net-team"))
        await router.handle(delivered(a_ticket_created("t1", category="facilities")))
        [(key, record)] = team_records(broker)
        assert key == "category:facilities" and isinstance(record, TicketParked)
        [announced] = broker.records(ASSIGNMENT_EVENTS)
        event = decode_assignment_event(announced.value)
        assert announced.key == b"t1" and isinstance(event, TicketUnassignable)

    asyncio.run(story())


def test_the_router_remembers_where_it_sent_a_ticket_before_the_desk_has_read_it():
    """Its own TicketRouted reaches the desk only through the team log, a moment later: the next event of the ticket
    (in the same batch, or the next) must not be lost meanwhile."""

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker, ("network", "net-team"))
        await router.handle(delivered(a_ticket_created("t1", category="network"), status_changed("t1", 2, "open")))
        await router.handle(delivered(status_changed("t1", 3, "in_progress")))
        assert team_log.desk.ticket("t1") is None
        moves = [(key, record.data.status) for key, record in team_records(broker)[1:]]
        assert moves == [("net-team", "open"), ("net-team", "in_progress")]
        assert router.where("t1").ticket.version == 3

    asyncio.run(story())


def test_after_a_restart_the_router_finds_a_ticket_through_the_desk_and_ignores_one_nobody_knows():
    """The team log remembers for it what it forgot; a ticket created before this service kept tickets is not ours."""

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker, ("network", "net-team"))
        team_log.desk.apply(routed("t1"), decides=False, instance="me")  # routed before the restart
        await router.handle(delivered(status_changed("t1", 2, "resolved"), status_changed("t-unknown", 2, "open")))
        [(key, moved)] = team_records(broker)
        assert key == "net-team" and isinstance(moved, TicketStatusMoved) and moved.data.ticket_id == "t1"

    asyncio.run(story())


def test_a_waiting_ticket_follows_the_team_a_rule_later_gave_it():
    """The rule reaches the desk through the team log; the router, which left the ticket waiting, asks the desk."""

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker)
        await router.handle(delivered(a_ticket_created("t1", category="facilities")))
        [(_, parked)] = team_records(broker)
        desk = team_log.desk
        desk.apply(parked, decides=False, instance="me")
        [forwarded] = desk.apply(a_rule("facilities", "fac-team"), decides=True, instance="me")
        desk.apply(recorded(forwarded, "me", T0), decides=False, instance="me")
        await router.handle(delivered(status_changed("t1", 2, "in_progress")))
        key, moved = team_records(broker)[-1]
        assert key == "fac-team" and isinstance(moved, TicketStatusMoved) and moved.data.team == "fac-team"

    asyncio.run(story())


def test_a_ticket_whose_category_changes_moves_team_and_its_later_events_follow_it():
    """Withdrawn from the old team, routed to the new one, and remembered there."""

    async def story() -> None:
        broker = FakeBroker()
        router, _ = a_router(broker, ("network", "net-team"), ("database", "dba-team"))
        created = a_ticket_created("t1", category="network")
        await router.handle(delivered(created, a_change("t1", 2, category="database")))
        await router.handle(delivered(status_changed("t1", 3, "in_progress")))
        kinds = [(key, type(record)) for key, record in team_records(broker)]
        assert kinds == [
            ("net-team", TicketRouted),
            ("net-team", TicketWithdrawn),
            ("dba-team", TicketRouted),
            ("dba-team", TicketStatusMoved),
        ]

    asyncio.run(story())


def test_a_batch_is_done_only_once_kafka_has_every_record():
    """The consumer commits when `handle` returns: before the acknowledgement, a crash would lose the routing."""

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker, ("network", "net-team"))
        team_log.producer.acknowledging = False  # type: ignore[union-attr]
        handling = asyncio.create_task(router.handle(delivered(a_ticket_created("t1", category="network"))))
        await until(lambda: team_log.producer.held)  # type: ignore[union-attr]
        assert await still_waiting(handling) and broker.records(ASSIGNMENT_BY_TEAM) == []
        team_log.producer.acknowledge()  # type: ignore[union-attr]
        await handling
        assert len(broker.records(ASSIGNMENT_BY_TEAM)) == 1

    asyncio.run(story())


def test_routing_waits_for_the_team_log_to_be_read():
    """The rules come from the team log: routing before it is read would park tickets a rule already takes."""

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker)
        team_log.caught_up.clear()
        handling = asyncio.create_task(router.handle(delivered(a_ticket_created("t1", category="network"))))
        assert await still_waiting(handling) and broker.records(ASSIGNMENT_BY_TEAM) == []
        team_log.desk.apply(a_rule("network", "net-team"), decides=False, instance="me")  # read meanwhile
        team_log.caught_up.set()
        await handling
        [(key, record)] = team_records(broker)
        assert key == "net-team" and isinstance(record, TicketRouted)

    asyncio.run(story())


def a_service(service_id: str, owner_team: str, categories: list[str], at: datetime = T0) -> ServiceChanged:
    data = {
        "name": service_id.upper(),
        "owner_team": owner_team,
        "categories": categories,
        "targets": {"P2": {"first_response_minutes": 60, "resolution_minutes": 480}},
    }
    change = config(ServiceChanged, at - timedelta(hours=1), service_id=service_id, data=data)
    assert isinstance(change, ServiceChanged)
    return change


def test_a_ticket_no_rule_routes_goes_to_its_services_owner_team_and_a_rule_comes_first():
    async def story() -> None:
        broker = FakeBroker()
        catalogue = ServiceCatalogue()
        catalogue.apply(a_service("vpn", "network-team", ["vpn"]))
        catalogue.apply(a_service("mail", "messaging", ["mail", "network"]))
        router, _ = a_router(broker, ("network", "net-team"), catalogue=catalogue)
        await router.handle(
            delivered(
                a_ticket_created("t1", category="vpn"),  # its category's service
                a_ticket_created("t2", category="printing", service_id="mail"),  # the service it names
                a_ticket_created("t3", category="network"),  # a rule of its category comes before the service
                a_ticket_created("t4", category="printing", service_id="gone"),  # nothing takes it
            )
        )
        routed = {record.data.ticket.ticket_id: (key, record.data.ticket.routed_as)
                  for key, record in team_records(broker) if isinstance(record, TicketRouted)}  # fmt: skip
        assert routed == {
            "t1": ("network-team", "the owner team of service VPN"),
            "t2": ("messaging", "the owner team of service MAIL"),
            "t3": ("net-team", ""),
        }
        [unroutable] = [decode_assignment_event(r.value) for r in broker.records(ASSIGNMENT_EVENTS)]
        assert unroutable.ticket_id == "t4" and "no service of the catalogue owns it" in unroutable.data.reason

    asyncio.run(story())


def test_a_waiting_ticket_goes_to_the_owner_team_of_a_service_that_came_since_with_its_next_change():
    async def story() -> None:
        broker = FakeBroker()
        catalogue = ServiceCatalogue()
        router, team_log = a_router(broker, catalogue=catalogue)
        await router.handle(delivered(a_ticket_created("t1", category="vpn")))
        for _, record in team_records(broker):
            team_log.desk.apply(record, decides=False, instance="me")
        assert "t1" in team_log.desk.parked
        catalogue.apply(a_service("vpn", "network-team", ["vpn"]))
        await router.handle(delivered(status_changed("t1", 2, "open")))
        key, record = team_records(broker)[-1]
        assert key == "network-team" and isinstance(record, TicketRouted) and record.data.ticket.status == "open"
        team_log.desk.apply(record, decides=False, instance="me")
        assert "t1" not in team_log.desk.parked and team_log.desk.ticket_teams["t1"] == "network-team"

    asyncio.run(story())


def test_a_router_that_did_not_route_a_ticket_itself_reads_it_whole_from_the_desk():
    """After a restart or a rebalance, the desk's ticket stands in for the snapshot the router sent: all of it,
    the service it names too (a later change routes it by that service again)."""

    async def story() -> None:
        broker = FakeBroker()
        catalogue = ServiceCatalogue()
        catalogue.apply(a_service("mail", "messaging", ["mail"]))
        router, team_log = a_router(broker, catalogue=catalogue)
        await router.handle(delivered(a_ticket_created("t1", category="printing", service_id="mail")))
        [(_, sent)] = team_records(broker)
        team_log.desk.apply(sent, decides=False, instance="me")
        restarted = TicketRouter(team_log, catalogue, CatalogueRead(catalogue), lambda: T0)
        assert restarted.where("t1") == Routed(sent.data.team, sent.data.ticket)
        assert sent.data.ticket.service_id == "mail"

    asyncio.run(story())


def test_a_ticket_naming_a_service_published_a_moment_ago_goes_to_its_owner_team():
    """sla wrote the service just before intake took the ticket: the router reads sla.config to its end first."""

    async def story() -> None:
        broker = FakeBroker()
        catalogue = ServiceCatalogue()
        router, _ = a_router(broker, catalogue=catalogue)
        log = CatalogueRead(catalogue, a_service("mail", "messaging", ["mail"]))
        router._catalogue_log = log
        await router.handle(delivered(a_ticket_created("t1", category="printing")))
        assert log.reads_to_end == 0, "a ticket naming no service waits for nothing"
        await router.handle(delivered(a_ticket_created("t2", category="printing", service_id="mail")))
        [(_, first), (_, sent)] = team_records(broker)
        assert log.reads_to_end == 1 and sent.data.team == "messaging"

    asyncio.run(story())


def test_tickets_done_with_are_forgotten_once_the_desk_has_them_and_found_through_it(monkeypatch):
    """Memory holds open work: beyond the newest DONE_REMEMBERED, the router forgets a resolved or closed ticket once
    the desk has read it as far as the router sent it (never before: its answer would be older), and finds it
    through the desk when it comes back."""
    monkeypatch.setattr("assignment.router.DONE_REMEMBERED", 2)

    async def story() -> None:
        broker = FakeBroker()
        router, team_log = a_router(broker, ("network", "net-team"))
        for n in range(4):
            created = a_ticket_created(f"t{n}", category="network")
            await router.handle(delivered(created, status_changed(f"t{n}", 2, "closed")))
        assert sorted(router._routed) == ["t0", "t1", "t2", "t3"]  # the desk has read none of it yet
        for _, record in team_records(broker):
            team_log.desk.apply(record, decides=False, instance="me")
        await router.handle(delivered(a_ticket_created("t4", category="network"), status_changed("t4", 2, "closed")))
        assert sorted(router._routed) == ["t3", "t4"]
        await router.handle(delivered(status_changed("t0", 3, "open")))  # reopened: the desk knows where it is
        reopened = team_records(broker)[-1][1]
        assert isinstance(reopened, TicketStatusMoved) and (reopened.data.team, reopened.data.version) == (
            "net-team",
            3,
        )

    asyncio.run(story())


def test_what_the_router_passes_over_unread_it_would_have_routed_nothing_of():
    """The router's decoder passes over every type but ROUTED_TICKET_EVENTS and ESCALATING_SLA_EVENTS: each other
    type routes nothing and leaves the ticket where it was, for a ticket with a team (at tier 1, where an SLA event
    may escalate) and for one waiting for a rule."""
    snapshot = TicketSnapshot(ticket_id="t-1", client_id="acme", priority="P2", status="open", category="network",
                              skill="network", version=1)  # fmt: skip
    envelope = {"event_id": uuid.uuid4(), "occurred_at": T0, "ticket_id": "t-1", "client_id": "acme",
                "aggregate_version": 2, "producer": "intake", "correlation_id": "c"}  # fmt: skip
    passed_over = [
        *(model(**envelope, data=DATA[model.model_fields["event_type"].default])
          for model in TICKET_EVENT_TYPES if model not in ROUTED_TICKET_EVENTS),
        *(an_sla_event(kind, "t-1") for kind, model in SLA_EVENT_TYPES.items() if model not in ESCALATING_SLA_EVENTS),
    ]  # fmt: skip
    assert len(passed_over) == len(TICKET_EVENT_TYPES) - 3 + len(SLA_EVENT_TYPES) - 2
    for known in (Routed("team-a", snapshot), Routed(None, snapshot)):
        for event in passed_over:
            assert route(event, known, lambda _: None) == Routing([], where=known), event.event_type
