"""What each event means for whom: the pure core of notify. Given an event, what notify knows of its ticket
(a Brief) and the directory, the deliveries to schedule: one per matching webhook and one per person to mail.
No I/O here; fanout.py reads and writes the logs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ticketstream_shared.contract import (
    Actor,
    CommentAdded,
    Envelope,
    Role,
    TicketCreated,
    TicketEvent,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
    encode,
)
from ticketstream_shared.contract.assignment import TicketAssigned, TicketEscalated
from ticketstream_shared.contract.events import Title
from ticketstream_shared.contract.notify import (
    DeliveryChannel,
    DeliveryScheduled,
    Mail,
    MailMessage,
    WebhookPost,
)
from ticketstream_shared.contract.sla import SERVICE_PREFIX, SlaBreached, SlaMetric, SlaWarning

from .directory import Directory, Person
from .mails import render, thread_id

#: Who schedules and attempts deliveries: notify itself, following the events it is told of.
ACTOR = Actor.system("notify")

DELIVERY_IDS = uuid.UUID("6c1f0c7e-4f7b-4e0f-9a59-2d6f4b8e9a10")
STAFF = (Role.TECHNICIAN, Role.MANAGER, Role.ADMIN)
PRIORITY_WORDS = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}
METRIC_WORDS = {
    SlaMetric.FIRST_RESPONSE: "first response",
    SlaMetric.NEXT_REPLY: "next reply",
    SlaMetric.RESOLUTION: "resolution",
}


class Brief(BaseModel):
    """What notify keeps of an open ticket (notify.tickets, compacted, keyed by ticket id): enough to know whom
    to tell and what to call the ticket. Its title as tickets.events has it: sealed, where personal fields are."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ticket_id: str
    client_id: str
    requester_id: str
    title: Title
    priority: str
    status: TicketStatus = TicketStatus.NEW
    assignee_id: str | None = None
    #: The ticket's aggregate_version folded last: a redelivered ticket event changes nothing.
    version: int = 1


def next_brief(brief: Brief | None, event: Envelope) -> Brief | None:
    """The brief after `event` (None: nothing known of the ticket, or it is closed and forgotten)."""
    if isinstance(event, TicketCreated):
        if brief is not None:
            return brief
        return Brief(
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            requester_id=event.data.requester_id,
            title=event.data.title,
            priority=event.data.priority.value,
        )
    if brief is None:
        return None
    if isinstance(event, TicketEvent):
        if event.aggregate_version <= brief.version:
            return brief
        brief = brief.model_copy(update={"version": event.aggregate_version})
    if isinstance(event, TicketStatusChanged):
        if event.data.to_status is TicketStatus.CLOSED:
            return None
        return brief.model_copy(update={"status": event.data.to_status})
    if isinstance(event, TicketUpdated):
        changes = event.data.changes
        update: dict[str, Any] = {}
        if changes.title is not None:
            update["title"] = changes.title
        if changes.priority is not None:
            update["priority"] = changes.priority.value
        return brief.model_copy(update=update) if update else brief
    if isinstance(event, TicketAssigned):
        return brief.model_copy(update={"assignee_id": event.data.technician_id})
    return brief


@dataclass(frozen=True)
class MailSettings:
    domain: str
    portal_url: str
    desk_name: str = "IT help desk"


def delivery_id(channel: DeliveryChannel, target: str, event_id: str) -> str:
    return uuid.uuid5(DELIVERY_IDS, f"{channel.value}/{target}/{event_id}").hex


def webhook_deliveries(event: Envelope, directory: Directory, now: datetime) -> list[DeliveryScheduled]:
    body = encode(event).decode()
    return [
        DeliveryScheduled(
            delivery_id=delivery_id(DeliveryChannel.WEBHOOK, webhook.webhook_id, str(event.event_id)),
            occurred_at=now,
            channel=DeliveryChannel.WEBHOOK,
            target=webhook.webhook_id,
            ticket_id=event.ticket_id,
            source_event_id=str(event.event_id),
            source_event_type=event.event_type,
            content=WebhookPost(body=body),
            actor=ACTOR,
        )
        for webhook in directory.webhooks_for(event.event_type, event.client_id)
    ]


def mails_for(event: Envelope, brief: Brief | None, directory: Directory) -> list[tuple[Mail, str, dict[str, Any]]]:
    """(kind, person id, the kind's own context) for every mail `event` calls for; `brief` is the ticket as the
    event leaves it (as it was, for the event that closes it)."""
    if brief is None:
        return []
    requester = brief.requester_id
    if isinstance(event, TicketCreated):
        return [(Mail.RECEIVED, requester, {"promise": None})]
    if isinstance(event, CommentAdded):
        data = event.data
        if data.public and data.author_role in STAFF and data.author_id != requester:
            author = directory.people.get(data.author_id)
            name = author.data.name if author else "Your IT team"
            return [(Mail.REPLY, requester, {"reply": {"author": name, "body": data.body}})]
        return []
    if isinstance(event, TicketStatusChanged):
        if event.data.to_status is TicketStatus.WAITING_ON_CUSTOMER:
            return [(Mail.WAITING_FOR_YOU, requester, {"reason": event.data.reason})]
        if event.data.to_status is TicketStatus.RESOLVED and event.data.article_id is None:
            # Solved by the requester with an article: they know, and a mail saying "we resolved it" would not be true.
            return [(Mail.RESOLVED, requester, {"reason": event.data.reason, "rate_link": ""})]
        return []
    if isinstance(event, TicketAssigned):
        extra: dict[str, Any] = {
            "priority_words": PRIORITY_WORDS.get(brief.priority, brief.priority),
            "reason": event.data.reason,
        }
        return [(Mail.ASSIGNED, event.data.technician_id, extra)]
    staff = [brief.assignee_id] if brief.assignee_id else []
    if isinstance(event, SlaWarning):
        extra = {
            "metric_words": METRIC_WORDS.get(event.data.metric, str(event.data.metric)),
            "due": _when(event.data.deadline),
            "share_used": round(event.data.threshold * 100),
        }
        return [(Mail.SLA_WARNING, person, extra) for person in staff]
    managers = [person.person_id for person in directory.managers_of(event.client_id)]
    if isinstance(event, SlaBreached):
        extra = {
            "metric_words": METRIC_WORDS.get(event.data.metric, str(event.data.metric)),
            "due": _when(event.data.deadline),
            "client_id": event.client_id,
            "promise": _promise_words(event.data.policy_id, event.data.policy_version),
        }
        return [(Mail.SLA_BREACHED, person, extra) for person in dict.fromkeys(staff + managers)]
    if isinstance(event, TicketEscalated):
        extra = {"from_tier": event.data.from_tier, "to_tier": event.data.to_tier, "reason": event.data.reason}
        return [(Mail.ESCALATED, person, extra) for person in dict.fromkeys(staff + managers)]
    return []


def _promise_words(policy_id: str, version: int) -> str:
    """Whose promise was broken: a service of the catalogue (its clocks name `service:<id>`) or a policy."""
    service_id = policy_id.removeprefix(SERVICE_PREFIX)
    if service_id != policy_id:
        return f"service {service_id} (version {version})"
    return f"policy {policy_id} (version {version})"


def mail_deliveries(
    event: Envelope, brief: Brief | None, directory: Directory, settings: MailSettings, now: datetime
) -> list[DeliveryScheduled]:
    scheduled = []
    for kind, person_id, extra in mails_for(event, brief, directory):
        person = directory.people.get(person_id)
        if person is None or not person.data.wants(kind):
            continue
        assert brief is not None
        identity = delivery_id(DeliveryChannel.MAIL, person_id, f"{event.event_id}/{kind.value}")
        scheduled.append(
            DeliveryScheduled(
                delivery_id=identity,
                occurred_at=now,
                channel=DeliveryChannel.MAIL,
                target=person_id,
                ticket_id=event.ticket_id,
                source_event_id=str(event.event_id),
                source_event_type=event.event_type,
                content=_message(kind, person, brief, extra, identity, settings),
                actor=ACTOR,
            )
        )
    return scheduled


def _message(
    kind: Mail, person: Person, brief: Brief, extra: dict[str, Any], identity: str, settings: MailSettings
) -> MailMessage:
    link = f"{settings.portal_url.rstrip('/')}/tickets/{brief.ticket_id}"
    if kind is Mail.RESOLVED:
        extra = {**extra, "rate_link": f"{link}/rate"}
    context = {
        "person": {"name": person.data.name},
        "ticket": {"id": brief.ticket_id, "title": brief.title, "reference": f"[#{brief.ticket_id}]", "link": link},
        "desk_name": settings.desk_name,
        **extra,
    }
    rendered = render(kind, person.data.language, context)
    return MailMessage(
        message_id=f"<{identity}@{settings.domain}>",
        to=person.data.email,
        to_name=person.data.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        references=[thread_id(brief.ticket_id, settings.domain)],
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a %-d %b %Y, %H:%M UTC")
