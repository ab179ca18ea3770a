"""The ticket lifecycle: the transition table, who may do what, and invariants under any sequence of commands."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.domain import (
    TRANSITIONS,
    AddComment,
    ChangeStatus,
    CommandContext,
    CorrectWorklog,
    CreateTicket,
    DomainError,
    IllegalTransition,
    NotPermitted,
    RecordCsat,
    RecordWorklog,
    SolveMyself,
    UpdateTicket,
    VoidWorklog,
    decide,
    fold,
)
from intake.ticket_store import ClockNote
from intake.timeline import promises, timeline
from tests.builders import T0, a_clock_event
from ticketstream_shared.contract import Actor, Priority, Role, TicketStatus, TicketStatusChanged
from ticketstream_shared.contract.sla import SlaMetric

S = TicketStatus


def key_of(role: Role, subject: str | None = None) -> Actor:
    """The actor of a key of `role`, belonging to `subject` if given."""
    return Actor(key_name=subject or role.value, role=role, subject=subject)


REQUESTER = key_of(Role.REQUESTER, "alice")
TECHNICIAN = key_of(Role.TECHNICIAN)
#: A technician's own key: it acts as ann only.
ANN = key_of(Role.TECHNICIAN, "ann")


def context(actor=TECHNICIAN, now=T0, key=None):
    return CommandContext(now=now, correlation_id="c", command_id=str(uuid.uuid4()), actor=actor, request_key=key)


def new_ticket():
    command = CreateTicket(
        ticket_id="t-1",
        client_id="acme",
        requester_id="alice",
        title="VPN down",
        category="network",
        priority=Priority.P2,
    )
    return fold(None, decide(None, command, context()))


def run(ticket, command, actor=TECHNICIAN, now=T0):
    return fold(ticket, decide(ticket, command, context(actor, now)))


def moved(ticket, *statuses, actor=TECHNICIAN):
    for status in statuses:
        ticket = run(ticket, ChangeStatus("t-1", status), actor)
    return ticket


def test_a_resolved_ticket_can_be_reopened_by_its_requester_but_not_moved_elsewhere():
    resolved = moved(new_ticket(), S.OPEN, S.RESOLVED)
    assert moved(resolved, S.OPEN, actor=REQUESTER).status is S.OPEN
    with pytest.raises(NotPermitted):
        moved(resolved, S.IN_PROGRESS, actor=REQUESTER)
    with pytest.raises(NotPermitted):
        moved(new_ticket(), S.RESOLVED, actor=REQUESTER)


def test_a_closed_ticket_reopens_only_within_the_window():
    closed = moved(new_ticket(), S.RESOLVED, S.CLOSED)
    assert run(closed, ChangeStatus("t-1", S.OPEN), now=T0 + timedelta(days=13)).status is S.OPEN
    with pytest.raises(IllegalTransition):
        run(closed, ChangeStatus("t-1", S.OPEN), now=T0 + timedelta(days=15))
    with pytest.raises(IllegalTransition):
        moved(closed, S.IN_PROGRESS)


def test_the_requesters_answer_puts_a_waiting_ticket_back_in_the_queue():
    waiting = moved(new_ticket(), S.OPEN, S.WAITING_ON_CUSTOMER)
    answered = run(waiting, AddComment("t-1", uuid.uuid4(), "alice", "Here is the log", public=True), REQUESTER)
    assert answered.status is S.OPEN
    assert [e.aggregate_version for e in answered.history] == [1, 2, 3, 4, 5]


def test_the_requesters_answer_to_a_resolution_reopens_it_and_no_one_elses_does():
    """notify's "solved" mail says: if the problem is not solved for you, simply reply and we will carry on."""
    resolved = moved(new_ticket(), S.OPEN, S.RESOLVED)
    answered = run(resolved, AddComment("t-1", uuid.uuid4(), "alice", "Still broken", public=True), REQUESTER)
    assert answered.status is S.OPEN and answered.history[-1].data.reason == "the requester replied to the resolution"
    mail_gateway = key_of(Role.INTEGRATION)  # writes a reply by mail in its sender's name
    by_mail = run(resolved, AddComment("t-1", uuid.uuid4(), "alice", "Still broken", public=True), mail_gateway)
    assert by_mail.status is S.OPEN
    by_staff = run(resolved, AddComment("t-1", uuid.uuid4(), "tech-1", "Glad it works", public=True), TECHNICIAN)
    assert by_staff.status is S.RESOLVED
    assert timeline(answered.history)[-1].text == "Your request was reopened."


def test_requesters_write_only_public_comments_and_rate_once_after_resolution():
    ticket = new_ticket()
    with pytest.raises(NotPermitted):
        run(ticket, AddComment("t-1", uuid.uuid4(), "alice", "psst", public=False), REQUESTER)
    with pytest.raises(IllegalTransition):
        run(ticket, RecordCsat("t-1", 5), REQUESTER)
    resolved = moved(ticket, S.RESOLVED)
    with pytest.raises(NotPermitted):
        run(resolved, RecordCsat("t-1", 5), TECHNICIAN)
    rated = run(resolved, RecordCsat("t-1", 4), REQUESTER)
    assert rated.csat == 4
    with pytest.raises(IllegalTransition):
        run(rated, RecordCsat("t-1", 5), REQUESTER)


def test_corrections_and_voids_change_the_time_spent_without_rewriting_history():
    worklog_id = uuid.uuid4()
    ticket = run(new_ticket(), RecordWorklog("t-1", worklog_id, "tech-1", 60, True, performed_at=T0))
    corrected = run(ticket, CorrectWorklog("t-1", worklog_id, "tech-1", 45, False, T0, reason="typo"))
    assert (corrected.worklog_minutes, corrected.worklogs[worklog_id].billable) == (45, False)
    voided = run(corrected, VoidWorklog("t-1", worklog_id, reason="wrong ticket"))
    assert voided.worklog_minutes == 0
    assert [e.event_type for e in voided.history][-3:] == [
        "ticket.worklog_recorded",
        "ticket.worklog_corrected",
        "ticket.worklog_voided",
    ]
    with pytest.raises(IllegalTransition):
        run(voided, CorrectWorklog("t-1", worklog_id, "tech-1", 30, True, T0, reason="again"))


def test_an_update_that_changes_nothing_records_nothing():
    ticket = new_ticket()
    assert decide(ticket, UpdateTicket("t-1", priority=Priority.P2), context()) == []
    (event,) = decide(ticket, UpdateTicket("t-1", priority=Priority.P1), context())
    assert (event.data.changes.priority, event.data.previous.priority) == (Priority.P1, Priority.P2)


def test_the_timeline_speaks_plainly_and_leaves_internal_things_out():
    worklog_id = uuid.uuid4()
    ticket = moved(new_ticket(), S.IN_PROGRESS)
    ticket = run(ticket, AddComment("t-1", uuid.uuid4(), "tech-1", "internal note", public=False))
    ticket = run(ticket, RecordWorklog("t-1", worklog_id, "tech-1", 30, True, performed_at=T0))
    ticket = run(ticket, AddComment("t-1", uuid.uuid4(), "tech-1", "Try rebooting", public=True))
    ticket = moved(ticket, S.WAITING_ON_CUSTOMER, S.RESOLVED)
    ticket = moved(ticket, S.OPEN, actor=REQUESTER)
    assert [entry.text for entry in timeline(ticket.history)] == [
        "We received your request \u201cVPN down\u201d.",
        "A technician is working on it.",
        "A technician replied.",
        "We are waiting for your answer.",
        "We believe your request is resolved. If it is not, you can reopen it.",
        "Your request was reopened.",
    ]


# --- any sequence of commands, from anyone, keeps the invariants -------------------------------------------------

ACTORS = st.sampled_from([TECHNICIAN, ANN, REQUESTER, key_of(Role.REQUESTER, "mallory"), key_of(Role.MANAGER)])
WORKLOG_IDS = [uuid.UUID(int=n) for n in range(3)]
PEOPLE = ["alice", "ann", "tech-1"]
COMMANDS = st.one_of(
    st.builds(ChangeStatus, st.just("t-1"), st.sampled_from(list(S))),
    st.builds(UpdateTicket, st.just("t-1"), priority=st.sampled_from(list(Priority))),
    st.builds(
        AddComment, st.just("t-1"), st.uuids(), st.sampled_from(["alice", "ann"]), st.just("text"), st.booleans()
    ),
    st.builds(
        RecordWorklog,
        st.just("t-1"),
        st.sampled_from(WORKLOG_IDS),
        st.sampled_from(PEOPLE),
        st.integers(1, 600),
        st.booleans(),
        performed_at=st.just(T0),
    ),
    st.builds(
        CorrectWorklog,
        st.just("t-1"),
        st.sampled_from(WORKLOG_IDS),
        st.sampled_from(PEOPLE),
        st.integers(1, 600),
        st.booleans(),
        st.just(T0),
        st.just("fix"),
    ),
    st.builds(VoidWorklog, st.just("t-1"), st.sampled_from(WORKLOG_IDS), st.just("void")),
    st.builds(RecordCsat, st.just("t-1"), st.integers(1, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(COMMANDS, ACTORS), max_size=40))
def test_any_sequence_of_commands_keeps_the_invariants(steps):
    ticket = new_ticket()
    expected_minutes: dict[uuid.UUID, int] = {}
    for command, actor in steps:
        try:
            events = decide(ticket, command, context(actor))
        except DomainError:
            continue
        assert actor.subject != "mallory" or not events, "a requester acted on someone else's ticket"
        for event in events:
            assert event.actor is not None and event.actor.key_name == actor.key_name, "the key is the actor"
            if actor.subject is not None and actor.role is not Role.MANAGER:
                assert event.actor.on_behalf_of is None, f"{actor.subject}'s key acted in another's name"
            if isinstance(event, TicketStatusChanged):
                assert event.data.to_status in TRANSITIONS[event.data.from_status]
            if event.event_type in ("ticket.worklog_recorded", "ticket.worklog_corrected"):
                expected_minutes[event.data.worklog_id] = event.data.minutes
            if event.event_type == "ticket.worklog_voided":
                expected_minutes.pop(event.data.worklog_id)
        ticket = fold(ticket, events)
    assert [event.aggregate_version for event in ticket.history] == list(range(1, ticket.version + 1))
    assert ticket.worklog_minutes == sum(expected_minutes.values())
    assert sum(e.event_type == "ticket.csat_recorded" for e in ticket.history) <= 1


def test_a_command_decided_again_is_recognised_as_done():
    """What a new partition owner does with a command the old owner already carried out but did not commit."""
    ticket = new_ticket()
    again = context()
    command = RecordWorklog("t-1", uuid.uuid4(), "tech-1", 30, True, performed_at=T0)
    ticket = fold(ticket, decide(ticket, command, again))
    assert decide(ticket, command, again) == []
    assert decide(ticket, ChangeStatus("t-1", S.OPEN), again) == [], "the same command id is the same command"


def test_a_requester_who_solved_it_with_an_article_resolves_it_as_self_service():
    ticket = moved(new_ticket(), S.OPEN)
    [event] = decide(ticket, SolveMyself("t-1", "kb-vpn"), context(REQUESTER))
    assert isinstance(event, TicketStatusChanged)
    assert (event.data.from_status, event.data.to_status, event.data.article_id) == (S.OPEN, S.RESOLVED, "kb-vpn")
    solved = fold(ticket, [event])
    assert solved.status is S.RESOLVED
    assert timeline(solved.history)[-1].text.startswith("You solved it with one of our help articles.")
    with pytest.raises(IllegalTransition):
        decide(solved, SolveMyself("t-1", "kb-vpn"), context(REQUESTER))


@pytest.mark.parametrize("actor", [TECHNICIAN, key_of(Role.MANAGER), key_of(Role.ADMIN), key_of(Role.REQUESTER, "bob")])
def test_only_the_requester_or_their_portal_says_an_article_solved_it(actor):
    with pytest.raises(NotPermitted):
        decide(new_ticket(), SolveMyself("t-1", "kb-vpn"), context(actor))
    [solved] = decide(new_ticket(), SolveMyself("t-1", "kb-vpn"), context(key_of(Role.INTEGRATION)))
    assert solved.actor == key_of(Role.INTEGRATION).acting_for("alice")  # a portal, on behalf of the requester


def test_the_requester_reads_what_was_promised_and_is_not_done_yet():
    """From where sla last left each clock: what is running, by when, first answer before solution; late when late;
    standing still while paused; nothing for what was done or is no longer timed."""
    due = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)

    def noted(kind, metric, remaining=600):
        return ClockNote.of(a_clock_event(kind, "t-1", metric, due, remaining))

    running = [
        noted("sla.resumed", SlaMetric.RESOLUTION),
        noted("sla.clock_started", SlaMetric.FIRST_RESPONSE),
        noted("sla.met", SlaMetric.NEXT_REPLY),
    ]
    assert promises(running) == [
        "We promised a first answer by 8 Dec 2026, 14:00 UTC.",
        "We promised a solution by 8 Dec 2026, 14:00 UTC.",
    ]
    late = [noted("sla.breached", SlaMetric.FIRST_RESPONSE, -60), noted("sla.paused", SlaMetric.RESOLUTION)]
    assert promises(late) == [
        "We promised a first answer by 8 Dec 2026, 14:00 UTC; we are late and on it.",
        "Until you answer, the time we promised for a solution stands still.",
    ]
    assert promises([noted("sla.retargeted", SlaMetric.NEXT_REPLY, -1)]) == [
        "We promised a reply to your message by 8 Dec 2026, 14:00 UTC; we are late and on it."
    ]
    done = [noted("sla.clock_stopped", SlaMetric.RESOLUTION), noted("sla.met", SlaMetric.FIRST_RESPONSE)]
    assert promises(done) == []
