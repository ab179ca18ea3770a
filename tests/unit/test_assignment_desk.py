"""The router and the desk: tickets re-keyed by team, and processes that follow a team without deciding for it."""

from __future__ import annotations

import pickle
import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from assignment.desk import CategoryRule, Desk, published, recorded
from assignment.records import TicketParked, TicketRouted, TicketSnapshot, TicketWithdrawn, team_key
from assignment.routing import Routed, route
from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import TicketStatusChanged, TicketUpdated
from ticketstream_shared.contract.assignment import (
    CategoryRouted,
    ShiftChanged,
    TeamLogEvent,
    TechnicianProfiled,
    TicketAssigned,
)
from ticketstream_shared.contract.sla import SlaWarning

NETWORK = {"network": CategoryRule("net-team", "network")}


def rule_of_category(ticket: TicketSnapshot) -> CategoryRule | None:
    return NETWORK.get(ticket.category)


def no_rule(ticket: TicketSnapshot) -> None:
    return None


def roster_event(kind: type[TeamLogEvent], **data: object) -> TeamLogEvent:
    return kind(event_id=uuid.uuid4(), occurred_at=T0, producer="assignment", correlation_id="test", data=data)


def a_profile(technician_id: str, capacity: int = 3) -> TeamLogEvent:
    return roster_event(TechnicianProfiled, technician_id=technician_id, name=technician_id, team="net-team", tier=1,
                        skills=["network"], capacity=capacity)  # fmt: skip


def a_shift(technician_id: str, on_shift: bool) -> TeamLogEvent:
    return roster_event(ShiftChanged, technician_id=technician_id, team="net-team", on_shift=on_shift)


def routed(ticket_id: str, priority: str = "P2") -> TicketRouted:
    created = a_ticket_created(ticket_id, category="network", priority=priority)
    [record] = route(created, None, rule_of_category).records
    assert isinstance(record, TicketRouted)
    return record


def status_of(ticket_id: str, version: int, status: str) -> TeamLogEvent:
    changed = TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id=ticket_id, client_id="acme", aggregate_version=version,
        producer="intake", correlation_id="test", data={"from_status": "new", "to_status": status},
    )  # fmt: skip
    known = Routed("net-team", routed(ticket_id).data.ticket)
    [record] = route(changed, known, rule_of_category).records
    return record


def test_a_new_ticket_goes_to_its_categorys_team_with_the_rules_skill():
    created = a_ticket_created("t1", category="network")
    [record] = route(created, None, rule_of_category).records
    assert isinstance(record, TicketRouted)
    assert record.data.team == "net-team" and record.data.ticket.skill == "network"
    [again] = route(created, None, rule_of_category).records
    assert again.event_id == record.event_id, "a redelivered event is routed under the same id"


def test_a_ticket_whose_category_no_team_takes_is_unassignable_with_the_reason_and_waits_for_a_rule():
    created = a_ticket_created("t1", category="facilities")
    routing = route(created, None, rule_of_category)
    [parked] = routing.records
    assert isinstance(parked, TicketParked) and parked.data.category == "facilities" and team_key(parked) == (
        "category:facilities")  # fmt: skip
    assert routing.where == Routed(None, parked.data.ticket)
    assert routing.unroutable is not None and routing.unroutable.ticket_id == "t1"
    assert routing.unroutable.data.reason.startswith("no team takes category facilities")


def a_change(ticket_id: str, version: int, **changes: object) -> TicketUpdated:
    return TicketUpdated(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id=ticket_id, client_id="acme", aggregate_version=version,
        producer="intake", correlation_id="test", data={"changes": changes, "previous": {}},
    )  # fmt: skip


def test_a_waiting_ticket_waits_with_its_changes_until_its_new_category_routes_it():
    [parked] = route(a_ticket_created("t1", category="facilities"), None, rule_of_category).records
    waiting = Routed(None, parked.data.ticket)
    [again] = route(a_change("t1", 2, priority="P1"), waiting, rule_of_category).records
    assert again.data.category == "facilities" and (again.data.ticket.priority, again.data.ticket.version) == ("P1", 2)
    moved = route(a_change("t1", 3, category="network"), Routed(None, again.data.ticket), rule_of_category)
    left, routed_now = moved.records
    assert isinstance(left, TicketParked) and left.data.category == "facilities"
    assert left.data.ticket.category == "network", "a snapshot of another category takes it out of facilities"
    assert isinstance(routed_now, TicketRouted) and routed_now.data.team == "net-team"
    assert moved.unroutable is None and moved.where.team == "net-team"


def test_a_rule_for_a_waiting_category_routes_its_tickets_and_their_later_changes_follow():
    owner, follower = Desk(), Desk()
    for record in (a_profile("ann", capacity=1), a_shift("ann", True)):
        owner.apply(record, decides=True, instance="owner")
    [parked] = route(a_ticket_created("t1", category="network"), None, no_rule).records
    rule = roster_event(CategoryRouted, category="network", team="net-team", skill="network")
    for desk, decides in ((owner, True), (follower, False)):
        assert desk.apply(parked, decides=decides, instance="x") == [] and "t1" in desk.parked
    [forwarded] = owner.apply(rule, decides=True, instance="owner")
    assert follower.apply(rule, decides=False, instance="follower") == [], "only the category's owner forwards"
    assert owner.parked == follower.parked == {} and owner.released == follower.released
    routed_record = recorded(forwarded, "owner", T0)
    assert isinstance(routed_record, TicketRouted) and forwarded.team == team_key(routed_record) == "net-team"
    [assigned] = owner.apply(routed_record, decides=True, instance="owner")
    assert assigned.outcome.technician_id == "ann"

    resolved = route(status_of_waiting(parked, 2, "resolved"), Routed(None, parked.data.ticket), no_rule).records
    [newer] = owner.apply(resolved[0], decides=True, instance="owner")
    owner.apply(recorded(newer, "owner", T0), decides=True, instance="owner")
    assert owner.ticket("t1").status == "resolved" and owner.teams["net-team"].load_of("ann").open_tickets == 0


def test_a_rule_that_came_first_routes_a_ticket_parked_after_it():
    desk = Desk()
    desk.apply(roster_event(CategoryRouted, category="network", team="net-team", skill="net"), decides=True,
               instance="me")  # fmt: skip
    [parked] = route(a_ticket_created("t1", category="network"), None, no_rule).records
    [forwarded] = desk.apply(parked, decides=True, instance="me")
    assert forwarded.outcome.record.data.ticket.skill == "net" and desk.parked == {}


def test_a_routed_ticket_that_left_its_waiting_category_is_withdrawn_from_the_rules_team():
    desk = Desk()
    [parked] = route(a_ticket_created("t1", category="network"), None, no_rule).records
    desk.apply(parked, decides=True, instance="me")
    desk.apply(roster_event(CategoryRouted, category="network", team="net-team", skill="net"), decides=True,
               instance="me")  # fmt: skip
    [left, _] = route(
        a_change("t1", 2, category="database"), Routed(None, parked.data.ticket), rule_of_category
    ).records
    [withdrawn] = desk.apply(left, decides=True, instance="me")
    assert isinstance(withdrawn.outcome.record, TicketWithdrawn) and withdrawn.team == "net-team"
    assert desk.released == {}


def test_a_waiting_ticket_done_with_stops_waiting_until_it_is_reopened():
    """Closed while no rule took its category, a ticket no longer waits in memory (nor in every checkpoint) for a
    rule that may never come; reopened, it waits again, and a rule then routes it."""
    desk = Desk()
    [parked] = route(a_ticket_created("t1", category="network"), None, no_rule).records
    desk.apply(parked, decides=True, instance="me")
    [closed] = route(status_of_waiting(parked, 2, "closed"), Routed(None, parked.data.ticket), no_rule).records
    assert desk.apply(closed, decides=True, instance="me") == [] and "t1" not in desk.parked
    [reopened] = route(status_of_waiting(parked, 3, "open"), Routed(None, closed.data.ticket), no_rule).records
    desk.apply(reopened, decides=True, instance="me")
    assert desk.parked["t1"].version == 3
    rule = roster_event(CategoryRouted, category="network", team="net-team", skill="net")
    [forwarded] = desk.apply(rule, decides=True, instance="me")
    assert forwarded.team == "net-team" and forwarded.outcome.record.data.ticket.status == "open"


def status_of_waiting(parked: TicketParked, version: int, status: str) -> TicketStatusChanged:
    return TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id=parked.data.ticket.ticket_id, client_id="acme",
        aggregate_version=version, producer="intake", correlation_id="test",
        data={"from_status": "new", "to_status": status},
    )  # fmt: skip


def test_a_category_change_withdraws_the_ticket_and_routes_it_again():
    rules = {**NETWORK, "database": CategoryRule("dba-team", "sql")}
    known = Routed("net-team", routed("t1").data.ticket)
    updated = TicketUpdated(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="test", data={"changes": {"category": "database"}, "previous": {}},
    )  # fmt: skip
    withdrawn, rerouted = route(updated, known, lambda ticket: rules.get(ticket.category)).records
    assert isinstance(withdrawn, TicketWithdrawn) and withdrawn.data.team == "net-team"
    assert isinstance(rerouted, TicketRouted)
    assert (rerouted.data.team, rerouted.data.ticket.skill) == ("dba-team", "sql")


def test_a_ticket_moved_after_a_status_change_carries_its_status_and_version():
    rules = {**NETWORK, "database": CategoryRule("dba-team", "sql")}
    rule_for = lambda ticket: rules.get(ticket.category)  # noqa: E731
    resolved = TicketStatusChanged(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t1", client_id="acme", aggregate_version=2,
        producer="intake", correlation_id="test", data={"from_status": "new", "to_status": "resolved"},
    )  # fmt: skip
    known = route(resolved, Routed("net-team", routed("t1").data.ticket), rule_for).where
    assert (known.ticket.status, known.ticket.version) == ("resolved", 2)
    updated = TicketUpdated(
        event_id=uuid.uuid4(), occurred_at=T0, ticket_id="t1", client_id="acme", aggregate_version=3,
        producer="intake", correlation_id="test", data={"changes": {"category": "database"}, "previous": {}},
    )  # fmt: skip
    _, rerouted = route(updated, known, rule_for).records
    assert (rerouted.data.ticket.status, rerouted.data.ticket.version) == ("resolved", 3)
    assert route(updated, known, rule_for).where.ticket.status == "resolved"


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

    assert route(warning(0.75), known, rule_of_category).records == []
    [due] = route(warning(0.9), known, rule_of_category).records
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


action = st.one_of(
    st.tuples(st.just("ticket"), st.sampled_from(["P1", "P2", "P3", "P4"])),
    st.tuples(st.just("shift"), st.tuples(st.sampled_from(["ann", "bob", "cid"]), st.booleans())),
    st.tuples(st.just("resolve"), st.integers(0, 30)),
    st.tuples(st.just("start"), st.integers(0, 30)),
    st.tuples(st.just("reopen"), st.integers(0, 30)),
)
actions = st.lists(action, max_size=40)
STATUS_OF_ACTION = {"resolve": "resolved", "close": "closed", "start": "in_progress", "reopen": "open"}


def team_log_of(actions: list[tuple[str, object]], inputs: list[TeamLogEvent]) -> list[str]:
    """The records `actions` make, appended to `inputs`; returns the tickets they route."""
    tickets: list[str] = []
    for kind, argument in actions:
        if kind == "ticket":
            tickets.append(f"t{len(tickets)}")
            inputs.append(routed(tickets[-1], argument))
        elif kind == "shift":
            inputs.append(a_shift(*argument))
        elif tickets:
            ticket_id = tickets[argument % len(tickets)]
            inputs.append(status_of(ticket_id, len(inputs) + 2, STATUS_OF_ACTION[kind]))
    return tickets


def owners_log(owner: Desk, inputs: list[TeamLogEvent], lag: int) -> list[TeamLogEvent]:
    """The team log as `owner` leaves it: `inputs`, each outcome the owner records `lag` records after its cause."""
    log: list[TeamLogEvent] = []
    in_flight: list[TeamLogEvent] = []
    for record in inputs:
        log.append(record)
        decisions = owner.apply(record, decides=True, instance="owner")
        in_flight += [r for d in decisions if (r := recorded(d, "owner", T0)) is not None]
        while len(in_flight) > lag:
            log.append(in_flight.pop(0))
    return log + in_flight


@settings(max_examples=400, deadline=None)
@given(actions=actions, lag=st.integers(0, 5))
def test_a_process_following_the_owners_outcomes_holds_the_same_assignments(actions, lag):
    """The owner's outcome records reach the log `lag` records after what caused them; a follower that applies
    them ends with the owner's assignments and loads."""
    owner, follower = Desk(), Desk()
    inputs: list[TeamLogEvent] = [a_profile(name) for name in ("ann", "bob", "cid")]
    team_log_of(actions, inputs)
    log = owners_log(owner, inputs, lag)
    for record in log:
        follower.apply(record, decides=False, instance="follower")
    team, copy = owner.teams["net-team"], follower.teams["net-team"]
    assert {t: ticket.assignee for t, ticket in team.tickets.items()} == {
        t: ticket.assignee for t, ticket in copy.tickets.items()
    }
    assert team.loads == copy.loads and not copy.awaiting


def restarted_from_a_checkpoint(desk: Desk) -> Desk:
    """A desk resumed from `desk`'s checkpoint (what teamlog.TeamLog._checkpoint writes), on the same shelf."""
    desk.put_aside()
    resumed = Desk(shelf=desk.shelf)
    resumed.resume(pickle.loads(pickle.dumps(desk.memory(), pickle.HIGHEST_PROTOCOL)))
    assert resumed == desk
    return resumed


class DictShelf:
    """Tickets done with, held aside (on disk in the service: archive.DeskArchive)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, object]] = {}

    def put(self, team: str, ticket) -> None:
        self.held[ticket.ticket_id] = (team, ticket)

    def get(self, ticket_id: str):
        return self.held.get(ticket_id)

    def take(self, ticket_id: str):
        return self.held.pop(ticket_id, None)


@settings(max_examples=300, deadline=None)
@given(
    actions=st.lists(action | st.tuples(st.just("close"), st.integers(0, 30)), max_size=40),
    lag=st.integers(0, 5),
    put_aside_every=st.integers(1, 6),
)
def test_a_desk_whose_done_tickets_leave_memory_decides_and_answers_as_one_that_keeps_them(
    actions, lag, put_aside_every
):
    """Resolved and closed tickets are put aside on a shelf, out of memory, at the service's checkpoints, and any
    record about one brings it back: the owner decides the same, step by step, and every ticket reads the same, as
    an owner that keeps them all; a follower applying the owner's outcomes holds the same as a follower that keeps
    them all. At each checkpoint the desk goes on as a copy resumed from its pickled memory, as after a restart."""
    keeping, shelf = Desk(), DictShelf()
    shelving = Desk(shelf=shelf)
    inputs: list[TeamLogEvent] = [a_profile(name) for name in ("ann", "bob")]
    tickets = team_log_of(actions, inputs)
    for index, record in enumerate(inputs):
        decided = keeping.apply(record, decides=True, instance="owner")
        assert shelving.apply(record, decides=True, instance="owner") == decided
        if index % put_aside_every == 0:
            shelving = restarted_from_a_checkpoint(shelving)
    shelving.put_aside()
    for ticket_id in tickets:
        assert shelving.ticket(ticket_id) == keeping.ticket(ticket_id)
        assert shelving.located(ticket_id) == (keeping.ticket_teams[ticket_id], keeping.ticket(ticket_id))
    team = shelving.teams.get("net-team")
    in_memory = team.tickets.values() if team is not None else []
    assert all(ticket.is_open for ticket in in_memory)  # what is done with is on the shelf
    assert len(shelf.held) == sum(1 for t in tickets if not keeping.ticket(t).is_open)
    assert team is None or team.loads == keeping.teams["net-team"].loads
    log = owners_log(Desk(), inputs, lag)
    follower, shelving_follower = Desk(), Desk(shelf=DictShelf())
    for index, record in enumerate(log):
        follower.apply(record, decides=False, instance="follower")
        shelving_follower.apply(record, decides=False, instance="follower")
        if index % put_aside_every == 0:
            shelving_follower.put_aside()
    for ticket_id in tickets:
        assert shelving_follower.ticket(ticket_id) == follower.ticket(ticket_id)
    if "net-team" in follower.teams:
        team, copy = follower.teams["net-team"], shelving_follower.teams["net-team"]
        assert (team.loads, team.backlog, team.last_served) == (copy.loads, copy.backlog, copy.last_served)
