"""Every text a requester reads, checked against the desk's jargon (the list notify's mails are held to): the
timeline of their request, the lines about its promised times, and the catalogue's promises. Mails to requesters
are checked in test_notify_templates.py with the same list; article texts are their authors' words."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from intake.ticket_store import ClockNote
from intake.timeline import REOPENED, SELF_SOLVED, STATUS_LINES, describe, promises
from sla.clocks import ClockStatus
from sla.views import opening_hours, plain_line, promise
from tests.builders import T0, a_clock_event, a_ticket_created
from tests.unit.test_notify_templates import JARGON
from tests.unit.test_sla_clocks import HOUR, Story
from tests.unit.test_sla_next_reply import replying
from ticketstream_shared.contract import CommentAdded, CsatRecorded, TicketStatusChanged, TicketUpdated
from ticketstream_shared.contract.sla import CalendarData, ServiceTargets, SlaMetric


def jargon_in(text: str) -> list[str]:
    return JARGON.findall(text)


def envelope(version: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(), "occurred_at": T0, "ticket_id": "t-1", "client_id": "acme",
        "aggregate_version": version, "producer": "intake", "correlation_id": "c",
    }  # fmt: skip


def timeline_texts() -> list[str]:
    events = [
        a_ticket_created("t-1"),
        *(
            TicketStatusChanged(**envelope(2), data={"from_status": before, "to_status": after, **more})
            for before, after, more in (
                ("new", "open", {}), ("open", "in_progress", {}), ("in_progress", "waiting_on_customer", {}),
                ("open", "resolved", {}), ("resolved", "open", {}), ("resolved", "closed", {}),
                ("open", "resolved", {"article_id": "kb-1"}),
            )
        ),
        *(
            CommentAdded(**envelope(3), data={"comment_id": uuid.uuid4(), "author_id": "x", "author_role": role,
                                             "body": "b", "visibility": "public"})
            for role in ("requester", "technician")
        ),
        *(
            TicketUpdated(**envelope(4), data={"changes": changes, "previous": {}})
            for changes in ({"priority": "P1"}, {"priority": "P4"}, {"title": "New name"}, {"category": "x"})
        ),
        CsatRecorded(**envelope(5), data={"rating": 4}),
    ]  # fmt: skip
    return [text for event in events if (text := describe(event))] + [*STATUS_LINES.values(), REOPENED, SELF_SOLVED]


def promised_times_texts() -> list[str]:
    """The line of every metric's clock in every state: running, late, paused, met on time and late, stopped."""
    story = Story(replying(next_reply=30))
    story.comment(T0 + 10 * HOUR / 60)
    story.comment(T0 + HOUR, role="requester")
    texts = [plain_line(clock, T0 + HOUR) for clock in story.state.clocks]
    story.tick(T0 + 9 * HOUR)  # late
    texts += [plain_line(clock, T0 + 9 * HOUR) for clock in story.state.clocks]
    story.status(T0 + 9 * HOUR, "new", "waiting_on_customer")
    texts += [plain_line(clock, T0 + 9 * HOUR) for clock in story.state.clocks]
    story.status(T0 + 10 * HOUR, "waiting_on_customer", "resolved")
    texts += [plain_line(clock, T0 + 10 * HOUR) for clock in story.state.clocks]
    stopped = replace(story.state.clocks[0], status=ClockStatus.STOPPED)
    return [*texts, plain_line(stopped, T0 + 10 * HOUR), *promises_on_the_page()]


def promises_on_the_page() -> list[str]:
    """What a request's page says was promised (intake's own words, from sla.events): every metric, running, late,
    breached and paused."""
    states = [("sla.clock_started", 600), ("sla.retargeted", -60), ("sla.breached", -60), ("sla.paused", 600)]
    return [
        line
        for kind, remaining in states
        for line in promises(ClockNote.of(a_clock_event(kind, "t-1", metric, T0, remaining)) for metric in SlaMetric)
    ]


def catalogue_texts() -> list[str]:
    office = CalendarData(
        timezone="Europe/Berlin",
        week={day: [{"start": "08:00", "end": "17:00"}] for day in ("monday", "tuesday", "wednesday")},
        holidays=[T0.date() + timedelta(days=30)],
    )
    always = CalendarData(timezone="UTC", always_open=True)
    targets = ServiceTargets(first_response_minutes=240, next_reply_minutes=90, resolution_minutes=18 * 60)
    return [promise(targets, calendar) for calendar in (office, always)] + [opening_hours(office)]


@pytest.mark.parametrize(
    "texts", [timeline_texts, promised_times_texts, catalogue_texts], ids=["timeline", "promised times", "catalogue"]
)
def test_a_requester_reads_no_desk_jargon(texts) -> None:
    found = {text: jargon_in(text) for text in texts()}
    assert found and not {text: words for text, words in found.items() if words}
