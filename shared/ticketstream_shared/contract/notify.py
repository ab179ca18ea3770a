"""The notify service's logs: who is told of what (notify.config), and every delivery with each attempt
(notify.deliveries).

notify.config holds webhooks and the people mail goes to, one partition, every change kept. A webhook's secret is
never in it in plain text: `sealed_secret` is AES-GCM under the operator's key (notify/sealing.py).

A person's name and e-mail address are personal (contract/personal.py): sealed under their data key on notify.config
(schema_version 3 on), so that erasing them erases both.

notify.deliveries is keyed by '<channel>:<target>' (a webhook id, or the person a mail is for), so one partition
holds a target's deliveries in the order they were scheduled, and the replica owning it sends them in that order.
A mail waiting there is sealed whole (`SealedMail`, schema_version 3 on): it holds its recipient's name and address
and the words of the people it quotes, and erasing any of them erases it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field

from .events import Frozen, Identifier, RecordedActor, UtcDatetime
from .personal import Personal

#: A pattern of event types a webhook asks for: an exact type ("sla.breached"), a family ("ticket.*") or "*".
#: An address mail can be sent to: ASCII (mail is sent without SMTPUTF8), one @, a dot in the domain; the SMTP
#: server has the last word.
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
EmailAddress = Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]
#: A person's name and address as notify.config holds them: in plain text, or sealed under their data key.
PersonName = Annotated[str, Personal(1, 200)]
PersonalEmailAddress = Annotated[str, Personal(3, 254, EMAIL_PATTERN)]
EventTypePattern = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")]


class NotifyConfigEventV1(Frozen):
    """A change on notify.config (one partition, key = '<kind>/<id>', kept forever)."""

    event_id: str = Field(min_length=1, max_length=64)
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    changed_by: str = Field(min_length=1, description="The API key's name that made the change.")


class NotifyConfigEvent(NotifyConfigEventV1):
    """A change on notify.config (one partition, key = '<kind>/<id>', kept forever), with who made it
    (schema_version 2 on)."""

    actor: RecordedActor = None


class WebhookData(Frozen):
    url: AnyHttpUrl
    event_types: list[EventTypePattern] = Field(min_length=1, max_length=100)
    client_id: Identifier | None = Field(default=None, description="Only this client's events, if set.")
    sealed_secret: str = Field(min_length=1, description="The signing secret, sealed (AES-GCM) by notify's key.")
    active: bool = True


class WebhookChanged(NotifyConfigEvent):
    event_type: Literal["notify.webhook_changed"] = "notify.webhook_changed"
    schema_version: Literal[2] = 2
    webhook_id: Identifier
    data: WebhookData


class WebhookRemoved(NotifyConfigEvent):
    event_type: Literal["notify.webhook_removed"] = "notify.webhook_removed"
    schema_version: Literal[2] = 2
    webhook_id: Identifier


class PersonRole(StrEnum):
    """Which mails a person gets: requesters hear about their own requests, technicians about the work given
    to them, managers also about every breach and escalation (of their client, if they have one)."""

    REQUESTER = "requester"
    TECHNICIAN = "technician"
    MANAGER = "manager"


class Mail(StrEnum):
    """Every kind of mail notify sends; a person may turn each off."""

    RECEIVED = "received"
    REPLY = "reply"
    WAITING_FOR_YOU = "waiting_for_you"
    RESOLVED = "resolved"
    ASSIGNED = "assigned"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ESCALATED = "escalated"


class PersonData(Frozen):
    name: str = Field(min_length=1, max_length=200)
    email: EmailAddress
    language: str = Field(default="en", pattern=r"^[a-z]{2}$", description="Templates in this language, else English.")
    role: PersonRole = PersonRole.REQUESTER
    client_id: Identifier | None = Field(default=None, description="The client whose tickets mail from them opens.")
    notify: dict[Mail, bool] = Field(default_factory=dict, description="Kinds of mail turned on or off; default on.")

    def wants(self, mail: Mail) -> bool:
        return self.notify.get(mail, True)


class PersonEntry(PersonData):
    """A person as notify.config holds them: their name and address personal, so sealed where a master key is set."""

    name: PersonName
    email: PersonalEmailAddress


class PersonChanged(NotifyConfigEvent):
    event_type: Literal["notify.person_changed"] = "notify.person_changed"
    schema_version: Literal[3] = 3
    person_id: Identifier
    data: PersonEntry


NOTIFY_CONFIG_EVENT_TYPES: tuple[type[NotifyConfigEvent], ...] = (WebhookChanged, WebhookRemoved, PersonChanged)
NotifyConfigEventUnion = Annotated[WebhookChanged | WebhookRemoved | PersonChanged, Field(discriminator="event_type")]


# --- notify.deliveries ----------------------------------------------------------------------------------------


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    MAIL = "mail"


class WebhookPost(Frozen):
    body: str = Field(description="The event's JSON envelope, exactly as POSTed.")


class MailMessage(Frozen):
    message_id: str = Field(description="Derived from (event, recipient): the same on every retry and replica.")
    to: EmailAddress
    to_name: str
    subject: str
    text: str
    html: str
    references: list[str] = Field(default_factory=list, description="The ticket's thread, for mail clients.")


class SealedMail(Frozen):
    """A MailMessage as JSON, sealed under the data keys of its recipient and of each person whose words it quotes,
    one layer per key: it opens only while none of them is erased."""

    sealed: str = Field(
        pattern=r"^sealed:v1:[0-9a-f]{32}:[A-Za-z0-9+/]+={0,2}$", json_schema_extra={"x-personal": True}
    )


class DeliveryRecordV1(Frozen):
    """A record of notify.deliveries (key = '<channel>:<target>')."""

    delivery_id: str = Field(min_length=1, max_length=64)
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    channel: DeliveryChannel
    target: Identifier = Field(description="The webhook id, or the person the mail is for.")


class DeliveryRecord(DeliveryRecordV1):
    """A record of notify.deliveries (key = '<channel>:<target>'), with who made it: notify itself (system:notify),
    or the key that asked for a redelivery (schema_version 2 on)."""

    actor: RecordedActor = None


class DeliveryScheduled(DeliveryRecord):
    """An event to deliver to one target; the delivery id derives from (event, target)."""

    event_type: Literal["notify.delivery_scheduled"] = "notify.delivery_scheduled"
    schema_version: Literal[3] = 3
    ticket_id: Identifier
    source_event_id: str
    source_event_type: str
    content: WebhookPost | MailMessage | SealedMail


class Outcome(StrEnum):
    DELIVERED = "delivered"
    WILL_RETRY = "will_retry"
    GAVE_UP = "gave_up"


class DeliveryAttempted(DeliveryRecord):
    event_type: Literal["notify.delivery_attempted"] = "notify.delivery_attempted"
    schema_version: Literal[2] = 2
    attempt: int = Field(ge=1)
    outcome: Outcome
    status_code: int | None = Field(default=None, description="The receiver's HTTP status, or SMTP reply code.")
    error: str | None = Field(default=None, max_length=500, description="Why it failed, when it did.")
    latency_ms: float = Field(ge=0)
    next_attempt_at: UtcDatetime | None = None


class RedeliveryRequested(DeliveryRecord):
    event_type: Literal["notify.redelivery_requested"] = "notify.redelivery_requested"
    schema_version: Literal[2] = 2
    requested_by: str = Field(min_length=1)


DELIVERY_RECORD_TYPES: tuple[type[DeliveryRecord], ...] = (DeliveryScheduled, DeliveryAttempted, RedeliveryRequested)
DeliveryRecordUnion = Annotated[
    DeliveryScheduled | DeliveryAttempted | RedeliveryRequested, Field(discriminator="event_type")
]


def delivery_key(channel: DeliveryChannel, target: str) -> bytes:
    return f"{channel.value}:{target}".encode()
