"""assignment's use cases without HTTP or Kafka: the dispatcher judges a change against the desk, reads from it, and
refuses in its own words (the API maps each refusal to a status; integration tests cover the appends)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from assignment.desk import Desk
from assignment.dispatcher import Dispatcher, TechnicianRequest, Written
from assignment.teamlog import TeamLog
from tests.unit.test_assignment_desk import a_profile, a_shift, roster_event, routed
from ticketstream_shared.contract import Role
from ticketstream_shared.contract.assignment import CategoryRouted, Strategy, TechnicianProfiled
from ticketstream_shared.runtime.auth import Principal
from ticketstream_shared.runtime.refusals import Conflict, InvalidField, NotFound, Unavailable

MANAGER = Principal("manager-key", Role.MANAGER)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def a_dispatcher(*records: object, caught_up: bool = True) -> Dispatcher:
    """Over a desk folded from `records` as a follower folds them; its team log has no producer, so anything the
    dispatcher tried to append would fail the test."""
    desk = Desk()
    for record in records:
        desk.apply(record, decides=True, instance="test")  # type: ignore[arg-type]
    team_log = TeamLog(desk, lambda: NOW)
    if caught_up:
        team_log.caught_up.set()
    return Dispatcher(team_log, lambda: NOW, lambda: "correlation-1")


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_nothing_is_answered_before_the_team_log_is_read() -> None:
    dispatcher = a_dispatcher(a_profile("ann"), caught_up=False)
    with pytest.raises(Unavailable, match="still reading its team log"):
        run(dispatcher.technician("ann"))
    with pytest.raises(Unavailable):
        run(dispatcher.change_shift("ann", True, MANAGER))


def test_a_technician_is_read_from_the_desk_with_their_load() -> None:
    dispatcher = a_dispatcher(a_profile("ann"), a_shift("ann", True), routed("t-1", priority="P1"))
    answer = run(dispatcher.technician("ann"))
    assert answer.written is Written.SAVED  # type: ignore[attr-defined]
    assert answer.view == {  # type: ignore[attr-defined]
        "id": "ann", "name": "ann", "team": "net-team", "tier": 1, "skills": ["network"], "capacity": 3,
        "on_shift": True, "open_tickets": 1, "weighted_load": 4,
    }  # fmt: skip
    listed = run(dispatcher.technicians("net-team"))
    assert [view["id"] for view in listed.view["technicians"]] == ["ann"]  # type: ignore[attr-defined]
    assert run(dispatcher.technicians("no-such-team")).view == {"technicians": []}  # type: ignore[attr-defined]


def test_a_change_that_changes_nothing_appends_nothing_and_says_so() -> None:
    dispatcher = a_dispatcher(a_profile("ann"), a_shift("ann", True))
    same = TechnicianRequest(name="ann", team="net-team", tier=1, skills=["network"], capacity=3)
    profiled = run(dispatcher.put_technician("ann", same, MANAGER))
    assert profiled.written is Written.UNCHANGED and profiled.view["capacity"] == 3  # type: ignore[attr-defined]
    shifted = run(dispatcher.change_shift("ann", True, MANAGER))
    assert shifted.written is Written.UNCHANGED and shifted.view["on_shift"] is True  # type: ignore[attr-defined]


def test_a_rule_and_a_strategy_already_so_append_nothing() -> None:
    rule = roster_event(CategoryRouted, category="network", team="net-team", skill="network")
    dispatcher = a_dispatcher(rule, a_profile("ann"))
    again = run(dispatcher.route_category("network", "net-team", None, MANAGER))
    assert again.written is Written.UNCHANGED  # type: ignore[attr-defined]
    assert again.view == {"category": "network", "team": "net-team", "skill": "network"}  # type: ignore[attr-defined]
    kept = run(dispatcher.choose_strategy("net-team", Strategy.LEAST_LOADED, MANAGER))
    assert kept.written is Written.UNCHANGED and kept.view["strategy"] == "least_loaded"  # type: ignore[attr-defined]


def test_what_the_desk_does_not_know_is_not_found() -> None:
    dispatcher = a_dispatcher(a_profile("ann"))
    for unknown in (
        dispatcher.technician("bob"),
        dispatcher.change_shift("bob", True, MANAGER),
        dispatcher.team("no-team"),
        dispatcher.category("printing"),
        dispatcher.assignment("t-404", MANAGER),
    ):
        with pytest.raises(NotFound):
            run(unknown)


def test_manual_is_not_a_team_strategy() -> None:
    with pytest.raises(InvalidField) as refused:
        run(a_dispatcher(a_profile("ann")).choose_strategy("net-team", Strategy.MANUAL, MANAGER))
    assert refused.value.field == "strategy" and "POST /v1/assignments" in refused.value.message


def test_a_ticket_is_assigned_by_hand_only_within_its_team() -> None:
    elsewhere = roster_event(TechnicianProfiled, technician_id="eve", name="Eve", team="desk-team", tier=1,
                             skills=[], capacity=5)  # fmt: skip
    dispatcher = a_dispatcher(a_profile("ann"), a_shift("ann", True), elsewhere, routed("t-1"))
    with pytest.raises(Conflict, match="eve is in team desk-team; the ticket is routed to team net-team"):
        run(dispatcher.assign_by_hand("t-1", "eve", MANAGER))
    with pytest.raises(NotFound):
        run(dispatcher.assign_by_hand("t-1", "nobody", MANAGER))
    assert run(dispatcher.assignment("t-1", MANAGER)).view["technician_id"] == "ann"  # type: ignore[attr-defined]
