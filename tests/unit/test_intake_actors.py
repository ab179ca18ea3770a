"""Who did what, from the key: every ticket event records its actor; a person's own key acts in no one else's
name; managers, admins and integrations act for others, recorded as on behalf of them; and the audit trail tells
each change with its actor and what it was before and after."""

import uuid
from datetime import timedelta

import pytest

from intake.audit import audit
from intake.domain import (
    AddComment,
    ChangeStatus,
    CommandContext,
    CorrectWorklog,
    CreateTicket,
    NotPermitted,
    RecordWorklog,
    VoidWorklog,
    decide,
    fold,
)
from tests.builders import T0
from ticketstream_shared.contract import Actor, Priority, Role, TicketStatus

ANN = Actor(key_name="ann-laptop", role=Role.TECHNICIAN, subject="ann")
DESK = Actor(key_name="desk", role=Role.TECHNICIAN)  # a key the whole desk shares: it names nobody
MARIA = Actor(key_name="maria", role=Role.MANAGER, subject="maria")
ALICE = Actor(key_name="alice", role=Role.REQUESTER, subject="alice")
MAIL = Actor(key_name="mail-gateway", role=Role.INTEGRATION)
WORKLOG = uuid.UUID(int=7)


def run(ticket, command, actor, minutes=0):
    context = CommandContext(now=T0 + timedelta(minutes=minutes), correlation_id="c", command_id=str(uuid.uuid4()),
                             actor=actor)  # fmt: skip
    return fold(ticket, decide(ticket, command, context))


def opened():
    create = CreateTicket("t-1", "acme", "alice", "VPN down", "network", Priority.P2)
    return run(None, create, MAIL)


def worklog(technician_id="ann", minutes=30, worklog_id=WORKLOG):
    return RecordWorklog("t-1", worklog_id, technician_id, minutes, True, performed_at=T0)


def correction(technician_id="ann"):
    return CorrectWorklog("t-1", WORKLOG, technician_id, 20, True, T0, "it was 20 minutes")


@pytest.mark.parametrize(
    "command",
    [
        AddComment("t-1", uuid.uuid4(), "bob", "I fixed it", True),
        worklog("bob", worklog_id=uuid.uuid4()),
        correction("bob"),
    ],
    ids=["comment", "worklog", "correction"],
)
def test_a_technicians_own_key_writes_and_logs_in_no_one_elses_name(command):
    bobs = run(opened(), worklog("bob"), MARIA)
    with pytest.raises(NotPermitted, match="this key is ann's"):
        run(bobs, command, ANN)
    for anyone in (DESK, MARIA):
        assert run(bobs, command, anyone).history[-1].actor == anyone.acting_for("bob")


def test_nor_does_it_correct_or_void_another_persons_time():
    bobs = run(opened(), worklog("bob"), MARIA)
    with pytest.raises(NotPermitted):
        run(bobs, correction("ann"), ANN)
    with pytest.raises(NotPermitted):
        run(bobs, VoidWorklog("t-1", WORKLOG, "not mine"), ANN)
    assert run(bobs, VoidWorklog("t-1", WORKLOG, "twice"), MARIA).history[-1].actor.on_behalf_of == "bob"


def test_each_event_records_its_key_and_for_whom_it_acted():
    ticket = opened()
    assert ticket.history[0].actor == MAIL.acting_for("alice")  # a portal opening alice's ticket
    ticket = run(ticket, worklog(), ANN)
    assert ticket.history[-1].actor == ANN  # her own time: on behalf of nobody
    ticket = run(ticket, AddComment("t-1", uuid.uuid4(), "alice", "It works again", True), ALICE)
    assert ticket.history[-1].actor == ALICE
    ticket = run(ticket, ChangeStatus("t-1", TicketStatus.OPEN), DESK)
    assert ticket.history[-1].actor == DESK


def test_the_audit_tells_every_change_with_its_actor_and_what_it_was_before():
    ticket = opened()
    for command, actor in [
        (ChangeStatus("t-1", TicketStatus.OPEN), DESK),
        (worklog(minutes=45), ANN),
        (correction(), MARIA),
        (AddComment("t-1", uuid.uuid4(), "ann", "Restarted the tunnel", False), ANN),
        (VoidWorklog("t-1", WORKLOG, "logged on the wrong ticket"), ANN),
    ]:
        ticket = run(ticket, command, actor)
    trail = [change.view() for change in audit(ticket.history)]
    assert [(change["version"], change["by"], change["what"]) for change in trail] == [
        (1, "key mail-gateway (integration), on behalf of alice", "opened \u201cVPN down\u201d for alice"),
        (2, "key desk (technician)", "moved it from new to open"),
        (3, "ann (technician, key ann-laptop)", "logged 45 min billable by ann"),
        (4, "maria (manager, key maria), on behalf of ann",
         "corrected a time entry: 45 min billable by ann now 20 min billable by ann (it was 20 minutes)"),
        (5, "ann (technician, key ann-laptop)", "wrote an internal note as ann"),
        (6, "ann (technician, key ann-laptop)",
         "voided the time entry of 20 min billable by ann (logged on the wrong ticket)"),
    ]  # fmt: skip
    corrected = trail[3]
    assert (corrected["before"]["minutes"], corrected["after"]["minutes"]) == (45, 20)
    assert trail[1]["before"] == {"status": "new"} and trail[1]["after"] == {"status": "open"}
    assert trail[5]["before"]["minutes"] == 20 and trail[5]["after"] is None
    assert trail[3]["actor"] == {"key_name": "maria", "role": "manager", "subject": "maria", "on_behalf_of": "ann"}


def test_a_technicians_own_key_opens_tickets_for_the_people_who_call():
    ticket = run(None, CreateTicket("t-1", "acme", "alice", "Printer jammed", "printing", Priority.P3), ANN)
    assert ticket.history[0].actor == ANN.acting_for("alice")
