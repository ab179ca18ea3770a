"""Whose key seals what (intake/domain.py): each ticket event's words and each command's are sealed under the key of
the person who wrote them, so that erasing that person erases exactly their words."""

import uuid

from intake.domain import (
    AddComment,
    ChangeStatus,
    RecordCsat,
    RecordWorklog,
    UpdateTicket,
    decide,
    fold,
    whose_words,
    whose_words_in,
)
from tests.unit.test_intake_domain import context, create
from ticketstream_shared.contract import TicketStatus


def test_an_event_s_words_are_its_writer_s_and_the_ticket_s_own_words_its_requester_s():
    created = decide(None, create(requester_id="alice"), context())
    ticket = fold(None, created)
    comment = AddComment("t-1", uuid.uuid4(), author_id="ann", body="Rebooted it", public=True)
    worklog = RecordWorklog("t-1", uuid.uuid4(), technician_id="bob", minutes=30, billable=True, note="On site")
    retitled = UpdateTicket("t-1", title="VPN down since Monday")
    found = {}
    for command in (comment, worklog, retitled):
        [event, *_] = decide(ticket, command, context())
        found[event.event_type] = whose_words(event, ticket.requester_id)
        ticket = fold(ticket, [event])
    assert whose_words(created[0], "alice") == "alice"
    assert found == {"ticket.comment_added": "ann", "ticket.worklog_recorded": "bob", "ticket.updated": "alice"}


def test_a_command_s_words_are_sealed_under_the_same_person_as_its_events_and_one_without_words_is_not():
    ticket = fold(None, decide(None, create(requester_id="alice"), context()))
    assert whose_words_in(create(requester_id="carol"), None) == "carol"
    assert whose_words_in(AddComment("t-1", uuid.uuid4(), "ann", "Rebooted it", True), ticket) == "ann"
    assert whose_words_in(RecordWorklog("t-1", uuid.uuid4(), "bob", 30, True), ticket) == "bob"
    assert whose_words_in(UpdateTicket("t-1", title="VPN down since Monday"), ticket) == "alice"
    assert whose_words_in(RecordCsat("t-1", rating=5, comment="Quick!"), ticket) == "alice"
    assert whose_words_in(ChangeStatus("t-1", TicketStatus.OPEN), ticket) is None
