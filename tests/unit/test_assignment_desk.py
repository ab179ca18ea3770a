"""The router and the desk: tickets re-keyed by team, and processes that follow a team without deciding for it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from assignment.desk import CategoryRule, Desk, published, recorded
from assignment.records import TicketRouted, TicketWithdrawn
from assignment.routing import Routed, route
from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import TicketStatusChanged, TicketUpdated
from ticketstream_shared.contract.assignment import (
    ShiftChanged,
    TeamLogEvent,
    TechnicianProfiled,
    TicketAssigned,
)
from ticketstream_shared.contract.sla import SlaWarning

NETWORK = {"network": CategoryRule("net-team", "network")}


def roster_event(kind: type[TeamLogEvent], **data: object) -> TeamLogEvent:
    return kind(event_id=uuid.uuid4(), occurred_at=T0, producer="assignment", correlation_id="test", data=data)


def a_profile(technician_id: str, capacity: int = 3) -> TeamLogEvent:
    return roster_event(TechnicianProfiled, technician_id=technician_id, name=technician_id, team="net-team", tier=1,
                        skills=["network"], capacity=capacity)  # fmt: skip


def a_shift(technician_id: str, on_shift: bool) -> TeamLogEvent:
    return roster_event(ShiftChanged, technician_id=technician_id, team="net-team", on_shift=on_shift)


def routed(ticket_id: str, priority: str = "P2") -> TicketRouted:
    created = a_ticket_created(ticket_id, category="network", priority=priority)
    [record] = route(created, None, NETWORK.get).records
    assert isinstance(record, TicketRouted)
    return record


def status_of(ticket_id: str, version: int, status: str) -> TeamLogEvent:
    changed = TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id=ticket_id, client_id="acme", aggregate_version=version,
        producer="intake", correlation_id="test", data={"from_status": "new", "to_status": status},
    )  # fmt: skip
    known = Routed("net-team", routed(ticket_id).data.ticket)
    [record] = route(changed, known, NETWORK.get).records
    return record


def test_a_new_ticket_goes_to_its_categorys_team_with_the_rules_skill():
    created = a_ticket_created("t1", category="network")
    [record] = route(created, None, NETWORK.get).records
    assert isinstance(record, TicketRouted)
    assert record.data.team == "net-team" and record.data.ticket.skill == "network"
    [again] = route(created, None, NETWORK.get).records
    assert again.event_id == record.event_id, "a redelivered event is routed under the same id"


def test_a_ticket_whose_category_no_team_takes_is_unassignable_with_the_reason():
    created = a_ticket_created("t1", category="facilities")
    routing = route(created, None, NETWORK.get)
    assert routing.records == [] and routing.where is None
    assert routing.unroutable is not None and routing.unroutable.ticket_id == "t1"
    assert routing.unroutable.data.reason.startswith("no team takes category facilities")


def test_a_category_change_withdraws_the_ticket_and_routes_it_again():
    rules = {**NETWORK, "database": CategoryRule("dba-team", "sql")}
    known = Routed("net-team", routed("t1").data.ticket)
    updated = TicketUpdated(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="test", data={"changes": {"category": "database"}, "previous": {}},
    )  # fmt: skip
    withdrawn, rerouted = route(updated, known, rules.get).records
    assert isinstance(withdrawn, TicketWithdrawn) and withdrawn.data.team == "net-team"
    assert isinstance(rerouted, TicketRouted)
    assert (rerouted.data.team, rerouted.data.ticket.skill) == ("dba-team", "sql")


def test_only_the_last_sla_threshold_escalates():
    known = Routed("net-team", routed("t1").data.ticket)

    def warning(threshold: float) -> SlaWarning:
        clock = {
            "metric": "resolution", "policy_id": "std", "policy_version": 1, "calendar_id": "office",
            "calendar_version": 1, "target_business_seconds": 3600, "deadline": T0, "elapsed_business_seconds": 0,
            "remaining_business_seconds": 10, "threshold": threshold,
        }  # fmt: skip
        return SlaWarning(event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t1", client_id="acme",
                          producer="sla", correlation_id="test", data=clock)  # fmt: skip

    assert route(warning(0.75), known, NETWORK.get).records == []
    [due] = route(warning(0.9), known, NETWORK.get).records
    assert due.data.reason == "SLA resolution 90% used: escalated to tier 2"


def test_the_owner_publishes_assignments_with_their_reason():
    desk = Desk()
    for record in (a_profile("ann"), a_shift("ann", True)):
        desk.apply(record, decides=True, instance="me")
    [decision] = desk.apply(routed("t1"), decides=True, instance="me")
    event = published(decision, desk.ticket("t1"), datetime.now(UTC))
    assert isinstance(event, TicketAssigned) and event.ticket_id == "t1" and event.client_id == "acme"
    assert (event.data.technician_id, event.data.team, event.data.strategy) == ("ann", "net-team", "least_loaded")
    assert event.data.reason == "least loaded (weighted load 0) among 1 on-shift tier-1 technician"
    assert desk.apply(routed("t1"), decides=True, instance="me") == [], "a redelivered routing decides nothing"


actions = st.lists(
    st.one_of(
        st.tuples(st.just("ticket"), st.sampled_from(["P1", "P2", "P3", "P4"])),
        st.tuples(st.just("shift"), st.tuples(st.sampled_from(["ann", "bob", "cid"]), st.booleans())),
        st.tuples(st.just("resolve"), st.integers(0, 30)),
        st.tuples(st.just("start"), st.integers(0, 30)),
        st.tuples(st.just("reopen"), st.integers(0, 30)),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(actions=actions, lag=st.integers(0, 5))
def test_a_process_following_the_owners_outcomes_holds_the_same_assignments(actions, lag):
    """The owner's outcome records reach the log `lag` records after what caused them; a follower that applies
    them ends with the owner's assignments and loads."""
    owner, follower = Desk(), Desk()
    inputs: list[TeamLogEvent] = [a_profile(name) for name in ("ann", "bob", "cid")]
    tickets: list[str] = []
    for kind, argument in actions:
        if kind == "ticket":
            tickets.append(f"t{len(tickets)}")
            inputs.append(routed(tickets[-1], argument))
        elif kind == "shift":
            inputs.append(a_shift(*argument))
        elif tickets:
            status = {"resolve": "resolved", "start": "in_progress", "reopen": "open"}[kind]
            inputs.append(status_of(tickets[argument % len(tickets)], len(inputs) + 2, status))
    log: list[TeamLogEvent] = []
    in_flight: list[TeamLogEvent] = []
    for record in inputs:
        log.append(record)
        decisions = owner.apply(record, decides=True, instance="owner")
        in_flight += [r for d in decisions if (r := recorded(d, "owner", T0)) is not None]
        while len(in_flight) > lag:
            log.append(in_flight.pop(0))
    log += in_flight
    for record in log:
        follower.apply(record, decides=False, instance="follower")
    team, copy = owner.teams["net-team"], follower.teams["net-team"]
    assert {t: ticket.assignee for t, ticket in team.tickets.items()} == {
        t: ticket.assignee for t, ticket in copy.tickets.items()
    }
    assert team.loads == copy.loads and not copy.awaiting
