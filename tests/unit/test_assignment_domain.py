"""Assignment's pure core: strategies, capacity, shifts, load following ticket status, escalation, and why."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assignment.domain import (
    Assigned,
    Escalated,
    Load,
    Team,
    Technician,
    Ticket,
    Unassignable,
)
from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.assignment import Strategy


def a_technician(technician_id: str, tier: int = 1, skills: tuple[str, ...] = ("network",), capacity: int = 5,
                 team: str = "service-desk") -> Technician:  # fmt: skip
    return Technician(technician_id, technician_id.title(), team, tier, frozenset(skills), capacity)


def a_ticket(ticket_id: str, priority: Priority = Priority.P3, skill: str = "network") -> Ticket:
    return Ticket(ticket_id, "acme", priority, TicketStatus.NEW, skill, skill, version=1)


def a_team(*technicians: Technician, strategy: Strategy = Strategy.LEAST_LOADED, on_shift: bool = True) -> Team:
    team = Team("service-desk", strategy=strategy)
    for technician in technicians:
        team.profile(technician)
        team.shift(technician.technician_id, on_shift)
    return team


def arrive(team: Team, *tickets: Ticket) -> list:
    for ticket in tickets:
        team.route(ticket)
    return team.settle()


@given(st.sets(st.sampled_from(Ticket._fields), min_size=1), st.integers(0, 9))
def test_a_ticket_changed_is_the_ticket_with_those_fields_replaced(names: set[str], value: int):
    ticket = a_ticket("t1")
    changes = {name: f"{name}-{value}" for name in names}
    assert ticket.changed(**changes) == ticket._replace(**changes)
    assert type(ticket.changed(**changes)) is Ticket and ticket == a_ticket("t1")


def test_a_ticket_changed_in_a_field_it_has_not_is_refused():
    with pytest.raises(KeyError, match="owner"):
        a_ticket("t1").changed(owner="ann")


def test_least_loaded_says_why_in_plain_words():
    team = a_team(a_technician("ann"), a_technician("bob"), a_technician("cid"))
    arrive(team, a_ticket("t1", Priority.P1))
    [outcome] = arrive(team, a_ticket("t2"))
    assert isinstance(outcome, Assigned) and outcome.technician_id == "bob"
    assert outcome.reason == "least loaded (weighted load 0) among 3 on-shift tier-1 technicians"
    assert team.load_of("ann").weighted == 4


def test_a_ticket_its_service_brought_says_so_in_its_reason():
    team = a_team(a_technician("ann"))
    ticket = a_ticket("t1")._replace(routed_as="the owner team of service VPN")
    [outcome] = arrive(team, ticket)
    assert isinstance(outcome, Assigned) and outcome.reason == (
        "least loaded (weighted load 0) among 1 on-shift tier-1 technician; the team is the owner team of service VPN"
    )


def test_skills_strategy_takes_only_technicians_with_the_categorys_skill():
    team = a_team(a_technician("ann", skills=("printers",)), a_technician("bob"), strategy=Strategy.SKILLS)
    [outcome] = arrive(team, a_ticket("t1"))
    assert isinstance(outcome, Assigned) and outcome.technician_id == "bob"
    assert outcome.reason == "least loaded (weighted load 0) among 1 on-shift tier-1 technician with skill network"
    [nobody] = arrive(team, a_ticket("t2", skill="database"))
    assert nobody == Unassignable("t2", "none of the 2 on-shift technicians of team service-desk has skill database")


def test_tier_1_tickets_go_to_tier_1_while_one_is_free_then_to_tier_2():
    team = a_team(a_technician("ann", capacity=1), a_technician("zoe", tier=2))
    first, second = arrive(team, a_ticket("t1"), a_ticket("t2"))
    assert (first.technician_id, first.tier) == ("ann", 1)
    assert (second.technician_id, second.tier) == ("zoe", 2)


def test_nobody_on_shift_is_unassignable_and_retried_when_someone_comes_on_shift():
    team = a_team(a_technician("ann"), on_shift=False)
    [outcome] = arrive(team, a_ticket("t1"))
    assert outcome == Unassignable("t1", "no tier-1 or higher technician of team service-desk is on shift")
    assert list(team.backlog) == ["t1"]
    team.shift("ann", True)
    [retried] = team.settle()
    assert isinstance(retried, Assigned) and retried.technician_id == "ann" and not team.backlog


def test_a_retry_that_finds_nobody_for_the_same_reason_announces_nothing_new():
    team = a_team(a_technician("ann", capacity=0))
    [first] = arrive(team, a_ticket("t1"))
    team.profile(a_technician("ann", capacity=0, skills=("network", "vpn")))
    [again] = team.settle()
    assert first.announce and isinstance(again, Unassignable) and not again.announce


def test_resolved_frees_capacity_and_reopened_takes_it_again_with_the_same_technician():
    team = a_team(a_technician("ann", capacity=1), a_technician("bob", capacity=1))
    arrive(team, a_ticket("t1", Priority.P1))
    holder = team.tickets["t1"].assignee
    team.change_status("t1", TicketStatus.RESOLVED, 2)
    assert team.load_of(holder).open_tickets == 0
    team.change_status("t1", TicketStatus.OPEN, 3)
    [back] = team.settle()
    assert isinstance(back, Assigned) and back.technician_id == holder and "who handled it before" in back.reason
    assert team.load_of(holder) == Load(open_tickets=1, weighted=4)


def test_a_redelivered_status_change_changes_nothing():
    team = a_team(a_technician("ann"))
    arrive(team, a_ticket("t1"))
    team.change_status("t1", TicketStatus.RESOLVED, 2)
    team.change_status("t1", TicketStatus.OPEN, 3)
    team.settle()
    team.change_status("t1", TicketStatus.RESOLVED, 2)
    assert team.tickets["t1"].status is TicketStatus.OPEN and team.load_of("ann").open_tickets == 1


def test_going_off_shift_hands_back_tickets_not_in_progress_and_keeps_in_progress_ones():
    team = a_team(a_technician("ann"), a_technician("bob", capacity=0), strategy=Strategy.ROUND_ROBIN)
    arrive(team, a_ticket("t1"), a_ticket("t2"))
    team.change_status("t2", TicketStatus.IN_PROGRESS, 2)
    team.profile(a_technician("bob", capacity=5))
    team.settle()
    team.shift("ann", False)
    [moved] = team.settle()
    reason = "next in rotation among 1 on-shift tier-1 technician"
    assert moved == Assigned("t1", "bob", 1, Strategy.ROUND_ROBIN, reason, previous_technician_id="ann")
    assert team.tickets["t2"].assignee == "ann"
    assert team.load_of("ann").open_tickets == 1


def test_escalation_moves_a_tier_1_ticket_to_a_tier_2_technician_once():
    team = a_team(a_technician("ann"), a_technician("zoe", tier=2))
    arrive(team, a_ticket("t1"))
    trigger = uuid.uuid4()
    escalated = team.escalate("t1", "SLA resolution 90% used", trigger)
    assert escalated == Escalated("t1", 1, 2, "SLA resolution 90% used", trigger)
    [moved] = team.settle()
    assert isinstance(moved, Assigned) and (moved.technician_id, moved.tier, moved.previous_technician_id) == (
        "zoe", 2, "ann",
    )  # fmt: skip
    assert team.escalate("t1", "SLA resolution breached", uuid.uuid4()) is None


def test_an_escalated_ticket_nobody_at_tier_2_can_take_stays_with_its_technician():
    team = a_team(a_technician("ann"))
    arrive(team, a_ticket("t1"))
    team.escalate("t1", "SLA breached", None)
    [waiting] = team.settle()
    assert isinstance(waiting, Unassignable) and not waiting.announce and waiting.reason.startswith("stays with ann")
    assert team.tickets["t1"].assignee == "ann"


def test_manual_assignment_overrides_and_says_who():
    team = a_team(a_technician("ann"), a_technician("bob"))
    arrive(team, a_ticket("t1"))
    manual = team.assign_by_hand("t1", "bob" if team.tickets["t1"].assignee == "ann" else "ann", "manager-mia")
    assert manual is not None and manual.strategy is Strategy.MANUAL and manual.assigned_by == "manager-mia"
    assert manual.reason == "assigned by hand by manager-mia"
    assert team.tickets["t1"].assignee == manual.technician_id


# --- properties ---------------------------------------------------------------------------------------------------

priorities = st.sampled_from(list(Priority))
rosters = st.lists(
    st.builds(
        a_technician,
        technician_id=st.sampled_from([f"tech-{n}" for n in range(8)]),
        tier=st.integers(1, 2),
        skills=st.sampled_from([("network",), ("printers",), ("network", "printers")]),
        capacity=st.integers(0, 6),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda technician: technician.technician_id,
)
#: What happens on a help desk, as (kind, argument) steps applied in order.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.tuples(priorities, st.sampled_from(["network", "printers"]))),
        st.tuples(st.just("resolve"), st.integers(0, 40)),
        st.tuples(st.just("reopen"), st.integers(0, 40)),
        st.tuples(st.just("start"), st.integers(0, 40)),
        st.tuples(st.just("shift"), st.tuples(st.integers(0, 7), st.booleans())),
        st.tuples(st.just("escalate"), st.integers(0, 40)),
    ),
    max_size=60,
)


def run_desk_day(team: Team, day: list) -> list:
    """Apply a day's steps to `team`, settling after each as the owner does; returns every outcome."""
    outcomes, ticket_ids, version = [], [], 1
    for kind, argument in day:
        version += 1
        if kind == "arrive":
            ticket_ids.append(f"t{len(ticket_ids)}")
            team.route(a_ticket(ticket_ids[-1], *argument))
        elif kind == "shift":
            technicians = sorted(team.technicians)
            team.shift(technicians[argument[0] % len(technicians)], argument[1])
        elif ticket_ids:
            ticket_id = ticket_ids[argument % len(ticket_ids)]
            if kind == "escalate":
                team.escalate(ticket_id, "SLA breached", None)
            else:
                status = {"resolve": TicketStatus.RESOLVED, "reopen": TicketStatus.OPEN,
                          "start": TicketStatus.IN_PROGRESS}[kind]  # fmt: skip
                team.change_status(ticket_id, status, version)
        outcomes += team.settle()
    return outcomes


@settings(max_examples=300, deadline=None)
@given(roster=rosters, day=steps, strategy=st.sampled_from([Strategy.ROUND_ROBIN, Strategy.LEAST_LOADED,
                                                             Strategy.SKILLS]))  # fmt: skip
def test_no_strategy_assigns_beyond_capacity_or_to_someone_off_shift(roster, day, strategy):
    team = a_team(*roster, strategy=strategy)
    for step in day:
        for outcome in run_desk_day(team, [step]):
            if isinstance(outcome, Assigned):
                assert team.technicians[outcome.technician_id].on_shift, outcome
    for technician_id, technician in team.technicians.items():
        held = [t for t in team.tickets.values() if t.assignee == technician_id and t.is_open]
        assert len(held) == team.load_of(technician_id).open_tickets
        assert sum(t.weight for t in held) == team.load_of(technician_id).weighted
        assert len(held) <= technician.capacity


@settings(max_examples=200, deadline=None)
@given(technicians=st.integers(1, 8), tickets=st.lists(priorities, max_size=60))
def test_round_robin_spreads_evenly_among_equally_eligible_technicians(technicians, tickets):
    team = a_team(*(a_technician(f"tech-{n}", capacity=100) for n in range(technicians)),
                  strategy=Strategy.ROUND_ROBIN)  # fmt: skip
    arrive(team, *(a_ticket(f"t{n}", priority) for n, priority in enumerate(tickets)))
    counts = [team.load_of(f"tech-{n}").open_tickets for n in range(technicians)]
    assert max(counts) - min(counts) <= 1


@settings(max_examples=300, deadline=None)
@given(roster=rosters, day=steps)
def test_least_loaded_never_picks_someone_carrying_more_than_another_eligible_technician(roster, day):
    team = a_team(*roster, strategy=Strategy.LEAST_LOADED)
    run_desk_day(team, day)
    for priority in (Priority.P1, Priority.P4):
        ticket = a_ticket(f"probe-{priority}", priority)
        team.route(ticket)
        eligible = [
            tech for tech in team.technicians.values()
            if tech.on_shift and team.load_of(tech.technician_id).open_tickets < tech.capacity
        ]  # fmt: skip
        lowest_tier = min((tech.tier for tech in eligible), default=None)
        loads = {tech.technician_id: team.load_of(tech.technician_id).weighted for tech in eligible
                 if tech.tier == lowest_tier}  # fmt: skip
        [outcome] = team.settle()
        if isinstance(outcome, Assigned):
            assert loads[outcome.technician_id] == min(loads.values())
        else:
            assert not eligible
