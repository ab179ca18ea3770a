"""What each event means for whom (notify/notices.py) and who is there to tell (notify/directory.py): the brief
notify keeps of a ticket, the mails an event calls for and to whom, the webhooks that get it, and the directory
folded from notify.config."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from notify.directory import Directory
from notify.mails import thread_id
from notify.notices import (
    Brief,
    MailSettings,
    mail_deliveries,
    mails_for,
    next_brief,
    webhook_deliveries,
)
from tests.builders import T0, a_ticket_created
from ticketstream_shared.contract import (
    CommentAdded,
    Envelope,
    Role,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
    decode_event,
    encode,
)
from ticketstream_shared.contract.assignment import TicketAssigned, TicketEscalated
from ticketstream_shared.contract.notify import (
    DeliveryChannel,
    Mail,
    MailMessage,
    PersonChanged,
    PersonRole,
    WebhookChanged,
    WebhookPost,
    WebhookRemoved,
)
from ticketstream_shared.contract.personal import map_personal
from ticketstream_shared.contract.sla import SlaBreached, SlaWarning
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.privacy import ERASED

TICKET = "tk-1001"
NOW = T0 + timedelta(hours=1)
SETTINGS = MailSettings(domain="desk.test", portal_url="https://help.example.com/")


# --- builders -------------------------------------------------------------------------------------------------------


def envelope(version: int | None, client_id: str = "acme", ticket_id: str = TICKET, **more: Any) -> dict[str, Any]:
    fields = {
        "event_id": uuid.uuid4(),
        "occurred_at": T0 + timedelta(minutes=10),
        "ticket_id": ticket_id,
        "client_id": client_id,
        "producer": "intake" if version is not None else "assignment",
        "correlation_id": "test",
        **more,
    }
    if version is not None:
        fields["aggregate_version"] = version
    return fields


def created(client_id: str = "acme", requester: str = "alice") -> Envelope:
    return a_ticket_created(TICKET, client_id, requester_id=requester, title="Printer on fire", priority="P2")


def status_changed(to: TicketStatus, version: int, reason: str = "", client_id: str = "acme") -> TicketStatusChanged:
    return TicketStatusChanged(
        **envelope(version, client_id), data={"from_status": "open", "to_status": to, "reason": reason}
    )


def comment(author: str, role: Role, visibility: str = "public", version: int = 4, body: str = "Try again") -> Envelope:
    data = {"comment_id": uuid.uuid4(), "author_id": author, "author_role": role, "body": body}
    return CommentAdded(**envelope(version), data={**data, "visibility": visibility})


def updated(version: int, title: str | None = None, priority: str | None = None) -> TicketUpdated:
    changes = {key: value for key, value in (("title", title), ("priority", priority)) if value is not None}
    return TicketUpdated(**envelope(version), data={"changes": changes, "previous": {}})


def assigned(technician: str, client_id: str = "acme") -> TicketAssigned:
    data = {"technician_id": technician, "team": "desk", "tier": 1, "strategy": "least_loaded", "reason": "least load"}
    return TicketAssigned(**envelope(None, client_id), data=data)


def escalated(client_id: str = "acme") -> TicketEscalated:
    data = {"from_tier": 1, "to_tier": 2, "team": "desk-2", "reason": "no answer within 4 hours"}
    return TicketEscalated(**envelope(None, client_id), data=data)


def clock(**more: Any) -> dict[str, Any]:
    return {
        "metric": "resolution",
        "policy_id": "standard",
        "policy_version": 1,
        "calendar_id": "office",
        "calendar_version": 1,
        "target_business_seconds": 3600,
        "deadline": T0 + timedelta(hours=8),
        "elapsed_business_seconds": 2700,
        "remaining_business_seconds": 900,
        **more,
    }


def sla_warning(client_id: str = "acme") -> SlaWarning:
    return SlaWarning(**envelope(None, client_id, producer="sla"), data=clock(threshold=0.75))


def sla_breached(client_id: str = "acme") -> SlaBreached:
    return SlaBreached(**envelope(None, client_id, producer="sla"), data=clock(remaining_business_seconds=-1))


def config(event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "occurred_at": T0,
        "producer": "notify",
        "correlation_id": "test",
        "changed_by": "admin-key",
    }


def person(
    person_id: str,
    role: PersonRole = PersonRole.REQUESTER,
    client_id: str | None = None,
    email: str | None = None,
    off: tuple[Mail, ...] = (),
    event_id: str | None = None,
    name: str | None = None,
) -> PersonChanged:
    data = {
        "name": name or person_id.title(),
        "email": email or f"{person_id}@example.com",
        "role": role,
        "client_id": client_id,
        "notify": {kind: False for kind in off},
    }
    return PersonChanged(**config(event_id), person_id=person_id, data=data)


def webhook(
    webhook_id: str,
    *event_types: str,
    client_id: str | None = None,
    active: bool = True,
    event_id: str | None = None,
    url: str = "https://hooks.example.com/in",
) -> WebhookChanged:
    data = {
        "url": url,
        "event_types": list(event_types),
        "client_id": client_id,
        "sealed_secret": "v1.00000000.c2VhbGVk",
        "active": active,
    }
    return WebhookChanged(**config(event_id), webhook_id=webhook_id, data=data)


def directory(*changes: Any) -> Directory:
    folded = Directory()
    for change in changes:
        assert folded.apply(change)
    return folded


def staff_and_people() -> Directory:
    return directory(
        person("alice", client_id="acme", name="Alice Requester"),
        person("tom", PersonRole.TECHNICIAN, name="Tom Technician"),
        person("tina", PersonRole.TECHNICIAN, name="Tina Technician"),
        person("mia", PersonRole.MANAGER, client_id="acme", name="Mia Manager"),
        person("gus", PersonRole.MANAGER, name="Gus Global"),
        person("oz", PersonRole.MANAGER, client_id="globex", name="Oz Other"),
    )


def a_brief(assignee: str | None = "tom", requester: str = "alice", version: int = 3) -> Brief:
    return Brief(
        ticket_id=TICKET,
        client_id="acme",
        requester_id=requester,
        title="Printer on fire",
        priority="P2",
        status=TicketStatus.OPEN,
        assignee_id=assignee,
        version=version,
    )


def who(event: Envelope, brief: Brief | None, people: Directory) -> list[tuple[Mail, str]]:
    return [(kind, person_id) for kind, person_id, _ in mails_for(event, brief, people)]


def sent_to(event: Envelope, brief: Brief | None, people: Directory) -> list[str]:
    return [scheduled.target for scheduled in mail_deliveries(event, brief, people, SETTINGS, NOW)]


# --- the brief -------------------------------------------------------------------------------------------------------


def test_a_created_ticket_makes_a_brief():
    brief = next_brief(None, created())

    assert brief == Brief(
        ticket_id=TICKET, client_id="acme", requester_id="alice", title="Printer on fire", priority="P2"
    )
    assert brief.status is TicketStatus.NEW
    assert brief.assignee_id is None
    assert brief.version == 1


def test_a_redelivered_created_keeps_the_brief():
    first = created()
    brief = next_brief(next_brief(None, first), updated(2, title="Printer melted"))

    again = next_brief(brief, first)

    assert again == brief
    assert again.title == "Printer melted"
    assert again.version == 2


def test_events_of_an_unknown_ticket_make_no_brief():
    assert next_brief(None, status_changed(TicketStatus.OPEN, 2)) is None
    assert next_brief(None, assigned("tom")) is None
    assert next_brief(None, sla_breached()) is None


def test_a_status_change_is_kept():
    brief = next_brief(next_brief(None, created()), status_changed(TicketStatus.IN_PROGRESS, 2))

    assert brief is not None
    assert brief.status is TicketStatus.IN_PROGRESS
    assert brief.version == 2


def test_title_and_priority_updates_are_kept():
    brief = next_brief(None, created())

    brief = next_brief(brief, updated(2, title="Printer on fire, 2nd floor"))
    assert brief is not None
    assert (brief.title, brief.priority, brief.version) == ("Printer on fire, 2nd floor", "P2", 2)

    brief = next_brief(brief, updated(3, priority="P1"))
    assert brief is not None
    assert (brief.title, brief.priority, brief.version) == ("Printer on fire, 2nd floor", "P1", 3)


def test_an_update_of_other_fields_only_moves_the_version():
    brief = next_brief(None, created())
    event = TicketUpdated(**envelope(2), data={"changes": {"category": "network"}, "previous": {}})

    after = next_brief(brief, event)

    assert after == brief.model_copy(update={"version": 2})


def test_a_closed_ticket_is_forgotten():
    brief = next_brief(next_brief(None, created()), status_changed(TicketStatus.RESOLVED, 2))

    assert next_brief(brief, status_changed(TicketStatus.CLOSED, 3)) is None


def test_an_assignment_sets_the_assignee():
    brief = next_brief(next_brief(None, created()), assigned("tom"))
    assert brief is not None
    assert brief.assignee_id == "tom"
    assert brief.version == 1  # assignment events carry no aggregate version

    brief = next_brief(brief, assigned("tina"))
    assert brief is not None
    assert brief.assignee_id == "tina"


@pytest.mark.parametrize("version", [1, 2, 3], ids=str)
def test_a_ticket_event_at_or_below_the_briefs_version_changes_nothing(version: int):
    brief = a_brief(version=3)

    for event in (
        status_changed(TicketStatus.WAITING_ON_CUSTOMER, version),
        status_changed(TicketStatus.CLOSED, version),
        updated(version, title="Old title", priority="P4"),
        comment("tom", Role.TECHNICIAN, version=version),
    ):
        assert next_brief(brief, event) == brief


def test_sla_and_escalation_events_leave_the_brief_as_it_is():
    brief = a_brief()

    assert next_brief(brief, sla_warning()) == brief
    assert next_brief(brief, sla_breached()) == brief
    assert next_brief(brief, escalated()) == brief


# --- mails: to whom ---------------------------------------------------------------------------------------------------


def test_the_requester_hears_their_request_was_received():
    people = staff_and_people()
    event = created()
    brief = next_brief(None, event)

    assert who(event, brief, people) == [(Mail.RECEIVED, "alice")]
    assert sent_to(event, brief, people) == ["alice"]


def test_no_brief_no_mail():
    assert mails_for(status_changed(TicketStatus.RESOLVED, 4), None, staff_and_people()) == []
    assert mail_deliveries(sla_breached(), None, staff_and_people(), SETTINGS, NOW) == []


def test_the_requester_hears_a_public_staff_reply():
    people = staff_and_people()

    for role in (Role.TECHNICIAN, Role.MANAGER, Role.ADMIN):
        mails = mails_for(comment("tom", role, body="Please restart it."), a_brief(), people)
        assert [(kind, person_id) for kind, person_id, _ in mails] == [(Mail.REPLY, "alice")]
        assert mails[0][2] == {"reply": {"author": "Tom Technician", "body": "Please restart it."}}


def test_a_reply_by_staff_outside_the_directory_is_signed_by_the_team():
    mails = mails_for(comment("stranger", Role.TECHNICIAN), a_brief(), staff_and_people())

    assert [(kind, person_id) for kind, person_id, _ in mails] == [(Mail.REPLY, "alice")]
    assert mails[0][2]["reply"]["author"] == "Your IT team"


@pytest.mark.parametrize(
    ("author", "role", "visibility"),
    [
        ("tom", Role.TECHNICIAN, "internal"),
        ("mia", Role.MANAGER, "internal"),
        ("alice", Role.REQUESTER, "public"),
        ("bob", Role.REQUESTER, "public"),
        ("robot", Role.INTEGRATION, "public"),
        ("alice", Role.TECHNICIAN, "public"),  # staff who is the requester: their own words
    ],
    ids=["internal-tech", "internal-manager", "requester", "other-requester", "integration", "requester-as-staff"],
)
def test_no_reply_mail_for_internal_requester_or_own_comments(author: str, role: Role, visibility: str):
    assert mails_for(comment(author, role, visibility), a_brief(), staff_and_people()) == []


def test_the_requester_hears_when_they_are_waited_for_and_when_it_is_resolved():
    people = staff_and_people()

    waiting = mails_for(status_changed(TicketStatus.WAITING_ON_CUSTOMER, 4, "Which printer?"), a_brief(), people)
    resolved = mails_for(status_changed(TicketStatus.RESOLVED, 4, "Toner replaced"), a_brief(), people)

    assert waiting == [(Mail.WAITING_FOR_YOU, "alice", {"reason": "Which printer?"})]
    assert [(kind, person_id) for kind, person_id, _ in resolved] == [(Mail.RESOLVED, "alice")]
    assert resolved[0][2]["reason"] == "Toner replaced"


def test_a_requester_who_solved_it_with_an_article_is_not_told_we_resolved_it():
    solved = TicketStatusChanged(
        **envelope(4, "acme"),
        data={"from_status": "open", "to_status": "resolved", "reason": "self", "article_id": "kb-vpn"},
    )
    assert mails_for(solved, a_brief(), staff_and_people()) == []


@pytest.mark.parametrize("status", [TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.CLOSED])
def test_other_status_changes_send_no_mail(status: TicketStatus):
    assert mails_for(status_changed(status, 4), a_brief(), staff_and_people()) == []


def test_the_technician_hears_of_their_assignment():
    people = staff_and_people()

    mails = mails_for(assigned("tina"), a_brief(assignee="tom"), people)

    assert [(kind, person_id) for kind, person_id, _ in mails] == [(Mail.ASSIGNED, "tina")]
    assert mails[0][2] == {"priority_words": "high", "reason": "least load"}
    assert sent_to(assigned("tina"), a_brief(assignee="tom"), people) == ["tina"]


def test_an_sla_warning_goes_to_the_assignee_only():
    people = staff_and_people()

    assert who(sla_warning(), a_brief(assignee="tom"), people) == [(Mail.SLA_WARNING, "tom")]
    assert sent_to(sla_warning(), a_brief(assignee="tom"), people) == ["tom"]
    assert who(sla_warning(), a_brief(assignee=None), people) == []


@pytest.mark.parametrize(("event", "kind"), [(sla_breached, Mail.SLA_BREACHED), (escalated, Mail.ESCALATED)])
def test_breaches_and_escalations_go_to_the_assignee_and_the_clients_managers(event: Any, kind: Mail):
    people = staff_and_people()

    mails = who(event(), a_brief(assignee="tom"), people)

    assert {person_id for _, person_id in mails} == {"tom", "mia", "gus"}  # not oz, manager of globex
    assert len(mails) == 3
    assert {mail_kind for mail_kind, _ in mails} == {kind}
    assert sorted(sent_to(event(), a_brief(assignee="tom"), people)) == ["gus", "mia", "tom"]


@pytest.mark.parametrize(
    ("policy_id", "metric", "words"),
    [
        ("service:vpn", "next_reply", ("next reply", "service vpn (version 3)")),
        ("standard", "resolution", ("resolution", "policy standard (version 3)")),
    ],
)
def test_a_breach_says_which_target_and_whose_promise(policy_id: str, metric: str, words: tuple[str, str]):
    data = clock(remaining_business_seconds=-1, policy_id=policy_id, policy_version=3, metric=metric)
    breach = SlaBreached(**envelope(None, "acme", producer="sla"), data=data)
    [(_, _, extra), *_] = mails_for(breach, a_brief(assignee="tom"), staff_and_people())
    assert (extra["metric_words"], extra["promise"]) == words


@pytest.mark.parametrize("event", [sla_breached, escalated])
def test_an_assignee_who_is_also_a_manager_hears_once(event: Any):
    people = staff_and_people()

    assert sorted(sent_to(event(), a_brief(assignee="mia"), people)) == ["gus", "mia"]
    assert sorted(sent_to(event(), a_brief(assignee=None), people)) == ["gus", "mia"]


def test_managers_of_another_client_hear_of_its_breaches_only():
    people = staff_and_people()
    brief = a_brief(assignee=None).model_copy(update={"client_id": "globex"})

    assert sorted(sent_to(sla_breached(client_id="globex"), brief, people)) == ["gus", "oz"]


@pytest.mark.parametrize(
    ("kind", "event", "brief"),
    [
        (Mail.RECEIVED, created(), a_brief()),
        (Mail.REPLY, comment("tom", Role.TECHNICIAN), a_brief()),
        (Mail.WAITING_FOR_YOU, status_changed(TicketStatus.WAITING_ON_CUSTOMER, 4), a_brief()),
        (Mail.RESOLVED, status_changed(TicketStatus.RESOLVED, 4), a_brief()),
    ],
    ids=lambda value: value.value if isinstance(value, Mail) else "",
)
def test_a_requester_who_turned_a_kind_off_gets_none_of_it(kind: Mail, event: Envelope, brief: Brief):
    people = staff_and_people()
    assert sent_to(event, brief, people) == ["alice"]

    people.apply(person("alice", client_id="acme", off=(kind,)))

    assert sent_to(event, brief, people) == []


def test_staff_who_turned_a_kind_off_get_none_of_it():
    people = staff_and_people()
    people.apply(person("tom", PersonRole.TECHNICIAN, off=(Mail.ASSIGNED, Mail.SLA_WARNING, Mail.SLA_BREACHED)))
    people.apply(person("gus", PersonRole.MANAGER, off=(Mail.ESCALATED,)))

    assert sent_to(assigned("tom"), a_brief(), people) == []
    assert sent_to(sla_warning(), a_brief(), people) == []
    assert sorted(sent_to(sla_breached(), a_brief(), people)) == ["gus", "mia"]
    assert sorted(sent_to(escalated(), a_brief(), people)) == ["mia", "tom"]


def test_a_kind_turned_on_explicitly_is_sent():
    people = directory(
        PersonChanged(
            **config(),
            person_id="alice",
            data={
                "name": "Alice",
                "email": "alice@example.com",
                "notify": {"received": True, "reply": False},
            },
        )
    )

    assert sent_to(created(), a_brief(), people) == ["alice"]


def test_people_not_in_the_directory_get_nothing():
    nobody = Directory()

    assert sent_to(created(), a_brief(), nobody) == []
    assert sent_to(comment("tom", Role.TECHNICIAN), a_brief(), nobody) == []
    assert sent_to(assigned("tina"), a_brief(), nobody) == []
    assert sent_to(sla_breached(), a_brief(), nobody) == []
    people = staff_and_people()
    assert sent_to(created(requester="zed"), a_brief(requester="zed"), people) == []
    assert sent_to(assigned("ghost"), a_brief(), people) == []
    assert sorted(sent_to(sla_breached(), a_brief(assignee="ghost"), people)) == ["gus", "mia"]


# --- mails: what ------------------------------------------------------------------------------------------------------


def test_delivery_ids_derive_from_event_and_recipient():
    people = staff_and_people()
    event = sla_breached()

    first = mail_deliveries(event, a_brief(), people, SETTINGS, NOW)
    again = mail_deliveries(event, a_brief(), people, SETTINGS, NOW + timedelta(minutes=5))
    other_event = mail_deliveries(sla_breached(), a_brief(), people, SETTINGS, NOW)

    assert [d.delivery_id for d in first] == [d.delivery_id for d in again]
    assert len({d.delivery_id for d in first}) == len(first) == 3
    assert not {d.delivery_id for d in first} & {d.delivery_id for d in other_event}
    for scheduled in first:
        assert isinstance(scheduled.content, MailMessage)
        assert scheduled.content.message_id == f"<{scheduled.delivery_id}@desk.test>"


def test_a_mail_delivery_says_what_and_to_whom():
    people = staff_and_people()
    event = comment("tom", Role.TECHNICIAN, body="Please switch it off and on again.")

    [scheduled] = mail_deliveries(event, a_brief(), people, SETTINGS, NOW)

    assert scheduled.channel is DeliveryChannel.MAIL
    assert scheduled.target == "alice"
    assert scheduled.ticket_id == TICKET
    assert scheduled.source_event_id == str(event.event_id)
    assert scheduled.source_event_type == "ticket.comment_added"
    assert scheduled.occurred_at == NOW
    message = scheduled.content
    assert isinstance(message, MailMessage)
    assert message.to == "alice@example.com"
    assert message.to_name == "Alice Requester"
    assert message.references == [thread_id(TICKET, "desk.test")]
    assert f"[#{TICKET}]" in message.subject
    assert "Please switch it off and on again." in message.text
    assert "Tom Technician" in message.text
    assert "https://help.example.com/tickets/tk-1001" in message.text


@pytest.mark.parametrize(
    ("event", "recipient"),
    [
        (created(), "alice"),
        (comment("tom", Role.TECHNICIAN), "alice"),
        (status_changed(TicketStatus.WAITING_ON_CUSTOMER, 4, "Which one?"), "alice"),
        (status_changed(TicketStatus.RESOLVED, 4, "Fixed"), "alice"),
        (assigned("tina"), "tina"),
        (sla_warning(), "tom"),
        (sla_breached(), "gus"),
        (escalated(), "mia"),
    ],
    ids=["received", "reply", "waiting", "resolved", "assigned", "warning", "breached", "escalated"],
)
def test_every_kind_renders_into_the_tickets_thread(event: Envelope, recipient: str):
    scheduled = mail_deliveries(event, a_brief(), staff_and_people(), SETTINGS, NOW)

    [message] = [d.content for d in scheduled if d.target == recipient]
    assert isinstance(message, MailMessage)
    assert message.references == [thread_id(TICKET, SETTINGS.domain)]
    assert message.subject and message.text and message.html


def test_the_resolved_mail_links_to_the_rating():
    [scheduled] = mail_deliveries(
        status_changed(TicketStatus.RESOLVED, 4), a_brief(), staff_and_people(), SETTINGS, NOW
    )

    assert isinstance(scheduled.content, MailMessage)
    assert "https://help.example.com/tickets/tk-1001/rate" in scheduled.content.text


# --- webhooks ---------------------------------------------------------------------------------------------------------


def hooked() -> Directory:
    return directory(
        webhook("exact", "ticket.created"),
        webhook("family", "ticket.*"),
        webhook("everything", "*"),
        webhook("sla-only", "sla.*"),
        webhook("two-types", "sla.breached", "ticket.created"),
        webhook("acme-only", "*", client_id="acme"),
        webhook("globex-only", "*", client_id="globex"),
        webhook("inactive", "*", active=False),
        webhook("comments", "ticket.comment_added"),
    )


def test_webhooks_get_the_events_they_ask_for():
    event = created()

    scheduled = webhook_deliveries(event, hooked(), NOW)

    assert sorted(d.target for d in scheduled) == ["acme-only", "everything", "exact", "family", "two-types"]


def test_webhooks_of_a_family_and_of_everything_get_sla_events():
    scheduled = webhook_deliveries(sla_breached(client_id="globex"), hooked(), NOW)

    assert sorted(d.target for d in scheduled) == ["everything", "globex-only", "sla-only", "two-types"]


def test_a_family_pattern_does_not_match_a_prefix_of_another_family():
    people = directory(webhook("tick", "ticket.*"))

    assert webhook_deliveries(sla_warning(), people, NOW) == []
    assert [d.target for d in webhook_deliveries(updated(2, title="x"), people, NOW)] == ["tick"]


def test_inactive_webhooks_get_nothing():
    people = directory(webhook("off", "*", active=False), webhook("off-exact", "ticket.created", active=False))

    assert webhook_deliveries(created(), people, NOW) == []


def test_a_webhook_delivery_carries_the_events_json():
    event = created()

    [scheduled] = webhook_deliveries(event, directory(webhook("exact", "ticket.created")), NOW)

    assert scheduled.channel is DeliveryChannel.WEBHOOK
    assert scheduled.target == "exact"
    assert scheduled.ticket_id == TICKET
    assert scheduled.source_event_id == str(event.event_id)
    assert scheduled.source_event_type == "ticket.created"
    assert scheduled.occurred_at == NOW
    assert isinstance(scheduled.content, WebhookPost)
    assert scheduled.content.body == encode(event).decode()
    assert decode_event(TICKETS_EVENTS, scheduled.content.body.encode()) == event


def test_webhook_delivery_ids_are_deterministic_and_distinct():
    event = created()

    first = webhook_deliveries(event, hooked(), NOW)
    again = webhook_deliveries(event, hooked(), NOW + timedelta(seconds=30))

    assert sorted(d.delivery_id for d in first) == sorted(d.delivery_id for d in again)
    assert len({d.delivery_id for d in first}) == len(first)
    mail_ids = {d.delivery_id for d in mail_deliveries(event, a_brief(), staff_and_people(), SETTINGS, NOW)}
    assert not mail_ids & {d.delivery_id for d in first}


# --- the directory ---------------------------------------------------------------------------------------------------


def test_a_twin_change_is_not_folded_again():
    people = Directory()
    change = person("alice", client_id="acme", event_id="evt-1")
    assert people.apply(change) is True

    twin = person("alice", client_id="globex", email="other@example.com", event_id="evt-1")

    assert people.apply(twin) is False
    assert people.apply(change) is False
    assert people.people["alice"].data.client_id == "acme"
    assert people.people["alice"].version == 1
    assert people.by_address == {"alice@example.com": "alice"}


def test_a_twin_webhook_change_is_not_folded_again():
    people = Directory()
    assert people.apply(webhook("wh", "*", event_id="evt-7")) is True

    assert people.apply(webhook("wh", "sla.*", event_id="evt-7")) is False
    assert people.apply(WebhookRemoved(**config("evt-7"), webhook_id="wh")) is False
    assert people.webhooks["wh"].data.event_types == ["*"]
    assert people.webhooks["wh"].version == 1


def test_versions_count_per_subject():
    people = directory(
        person("alice"),
        person("bob"),
        person("alice", name="Alice B."),
        webhook("alice", "*"),
        person("alice", name="Alice C."),
        webhook("wh", "*"),
        webhook("wh", "ticket.*"),
    )

    assert people.people["alice"].version == 3
    assert people.people["alice"].data.name == "Alice C."
    assert people.people["bob"].version == 1
    assert people.webhooks["alice"].version == 1
    assert people.webhooks["wh"].version == 2
    assert people.webhooks["wh"].data.event_types == ["ticket.*"]
    assert people.webhooks["wh"].changed_by == "admin-key"
    assert people.webhooks["wh"].changed_at == T0


def test_changing_an_email_moves_the_address():
    people = directory(person("alice", email="Alice@Example.com"), person("bob"))
    assert people.by_address == {"alice@example.com": "alice", "bob@example.com": "bob"}

    people.apply(person("alice", email="alice.smith@example.org"))

    assert people.by_address == {"alice.smith@example.org": "alice", "bob@example.com": "bob"}


def test_changing_an_email_keeps_an_address_another_person_took():
    people = directory(person("alice", email="shared@example.com"), person("bob", email="shared@example.com"))
    assert people.by_address["shared@example.com"] == "bob"

    people.apply(person("alice", email="alice@example.com"))

    assert people.by_address == {"shared@example.com": "bob", "alice@example.com": "alice"}


def test_an_erased_person_is_forgotten_when_their_keys_are_shredded_and_when_read_again_later():
    people = directory(person("alice"), person("bob"))

    people.forget("alice")  # a tombstone over their keys, read while notify runs

    assert set(people.people) == {"bob"} and people.by_address == {"bob@example.com": "bob"}
    assert people.apply(map_personal(person("alice"), lambda _: ERASED)) is True  # opened after a restart
    assert set(people.people) == {"bob"} and people.by_address == {"bob@example.com": "bob"}
    sealed = "sealed:v1:" + "ab" * 16 + ":QUJD"
    assert people.apply(map_personal(person("carol"), lambda _: sealed)) is True  # read without a master key
    assert set(people.people) == {"bob"}
    assert [d.target for d in mail_deliveries(created(requester="alice"), None, people, SETTINGS, NOW)] == []


def test_a_removed_webhook_is_gone():
    people = directory(webhook("wh", "*"), webhook("other", "*"))

    assert people.apply(WebhookRemoved(**config(), webhook_id="wh")) is True

    assert set(people.webhooks) == {"other"}
    assert [d.target for d in webhook_deliveries(created(), people, NOW)] == ["other"]
    assert people.apply(WebhookRemoved(**config(), webhook_id="never-there")) is True
    assert set(people.webhooks) == {"other"}


def test_managers_of_a_client_are_theirs_and_everyones():
    people = staff_and_people()

    assert sorted(p.person_id for p in people.managers_of("acme")) == ["gus", "mia"]
    assert sorted(p.person_id for p in people.managers_of("globex")) == ["gus", "oz"]
    assert [p.person_id for p in people.managers_of("initech")] == ["gus"]
