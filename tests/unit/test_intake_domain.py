"""The ticket aggregate: decide and evolve, without any I/O."""

import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.domain import (
    CommandContext,
    CreateTicket,
    IdempotencyKeyReused,
    InvalidCommand,
    LifecycleRules,
    RecordWorklog,
    Role,
    TicketNotFound,
    VersionConflict,
    child_id_for,
    decide,
    fold,
)
from intake.idempotency import request_context
from tests.builders import T0
from ticketstream_shared.contract import Actor, Priority, TicketCreated, WorklogRecorded
from ticketstream_shared.contract.requests import ticket_id_for


def context(key=None, command_id=None):
    return CommandContext(now=T0, correlation_id="c-1", command_id=command_id or str(uuid.uuid4()), request_key=key)


def create(ticket_id="t-1", **fields):
    return CreateTicket(
        ticket_id=ticket_id,
        **{
            "client_id": "acme",
            "requester_id": "alice",
            "title": "VPN down",
            "category": "network",
            "priority": Priority.P2,
            **fields,
        },
    )


def worklog(ticket_id="t-1", minutes=30, worklog_id=None, **fields):
    fields = {"technician_id": "tech-1", "billable": True, "performed_at": T0, **fields}
    return RecordWorklog(ticket_id=ticket_id, worklog_id=worklog_id or uuid.uuid4(), minutes=minutes, **fields)


def opened(**fields):
    return fold(None, decide(None, create(**fields), context()))


def test_creating_a_ticket_starts_it_at_version_one_and_new():
    (event,) = decide(None, create(), context())
    assert isinstance(event, TicketCreated)
    ticket = fold(None, [event])
    assert (ticket.version, ticket.status, ticket.client_id, ticket.created_at) == (1, "new", "acme", T0)


def test_a_retried_creation_decides_nothing_and_a_reused_key_with_another_body_is_refused():
    ticket = opened()
    assert decide(ticket, create(), context(key="k-1")) == []
    with pytest.raises(IdempotencyKeyReused):
        decide(ticket, create(title="Another problem"), context(key="k-1"))


def test_retries_of_one_keyed_request_name_the_same_ticket_and_events():
    assert ticket_id_for("integration", "k-1") == ticket_id_for("integration", "k-1")
    assert ticket_id_for("integration", "k-1") != ticket_id_for("portal", "k-1")
    first = decide(None, create(), context(command_id="cmd-1"))
    again = decide(None, create(), context(command_id="cmd-1"))
    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_worklogs_add_up_and_advance_the_version():
    ticket = opened()
    for minutes in (30, 60):
        ticket = fold(ticket, decide(ticket, worklog(minutes=minutes), context()))
    assert (ticket.version, ticket.worklog_minutes) == (3, 90)


def test_a_worklog_on_an_unknown_ticket_is_refused():
    with pytest.raises(TicketNotFound):
        decide(None, worklog(), context())


def test_a_stale_if_match_is_a_conflict():
    ticket = opened()
    with pytest.raises(VersionConflict):
        decide(ticket, worklog(expected_version=7), context())
    assert decide(ticket, worklog(expected_version=1), context())


def test_a_worklog_dated_in_the_future_is_refused_but_clock_skew_is_tolerated():
    ticket = opened()
    with pytest.raises(InvalidCommand) as refused:
        decide(ticket, worklog(performed_at=T0 + timedelta(hours=1)), context())
    assert refused.value.field_name == "performed_at"
    assert decide(ticket, worklog(performed_at=T0 + timedelta(minutes=4)), context())


def keyed(command, key="k-1", caller="portal"):
    return request_context(
        command,
        caller=caller,
        request_key=key,
        now=T0,
        correlation_id="c-1",
        actor=Actor(key_name=caller, role=Role.ADMIN),
        rules=LifecycleRules(),
    )


def test_a_retried_worklog_is_recorded_once_and_its_key_with_other_minutes_is_refused():
    ticket = opened()
    same = child_id_for("portal", "t-1", "k-1")
    ticket = fold(ticket, decide(ticket, worklog(worklog_id=same), keyed(worklog(worklog_id=same))))
    assert decide(ticket, worklog(worklog_id=same), keyed(worklog(worklog_id=same))) == []
    with pytest.raises(IdempotencyKeyReused) as refused:
        decide(ticket, worklog(worklog_id=same, minutes=45), keyed(worklog(worklog_id=same, minutes=45)))
    assert refused.value.differs == ("body",)
    assert ticket.worklog_minutes == 30


def test_a_keyed_worklog_names_the_same_worklog_for_its_caller_only():
    assert child_id_for("portal", "t-1", "k-1") == child_id_for("portal", "t-1", "k-1")
    assert child_id_for("portal", "t-1", "k-1") != child_id_for("erp", "t-1", "k-1")
    assert child_id_for("portal", "t-1", "k-1") != child_id_for("portal", "t-2", "k-1")
    assert child_id_for("portal", "t-1", None) != child_id_for("portal", "t-1", None)


@given(st.lists(st.integers(min_value=1, max_value=24 * 60), max_size=30))
def test_any_run_of_worklogs_keeps_versions_contiguous_and_minutes_exact(minutes_list):
    ticket = opened()
    versions = [1]
    for minutes in minutes_list:
        events = decide(ticket, worklog(minutes=minutes), context())
        assert all(isinstance(e, WorklogRecorded) for e in events)
        versions += [e.aggregate_version for e in events]
        ticket = fold(ticket, events)
    assert versions == list(range(1, len(minutes_list) + 2))
    assert ticket.worklog_minutes == sum(minutes_list)
