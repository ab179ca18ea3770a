"""notify's mail against the real broker and a real SMTP server (aiosmtpd): who is mailed of what, the headers that
make a ticket's mails one thread, a kind of mail turned off, one mail per (event, recipient) through a redelivery,
a mailbox the server refuses for good, and what PUT /v1/notify/people refuses.

Events enter on their topics as intake, sla and assignment write them. Each test has its own people and ticket; a
manager without a client hears of every client's breaches, so mails are always picked by recipient and by the
ticket their subject names.

Absence is never waited for: `flush` waits until notify's group has committed past everything published for the
ticket (so every delivery it scheduled is on notify.deliveries already), then publishes one more event per
recipient and waits for its mail. A recipient's mails go out one after another in the order they were scheduled,
so once that marker mail is in, every mail scheduled before it has been sent too.

One notify runs for the module, with one SMTP server: two notify instances at once would both send every delivery
(notify.deliveries is shared, and each instance's senders' group owns all of it). Its server is the Mailbox of
tests/receivers.py, but refusing some addresses for good at RCPT.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx2
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient

from notify.app import build_app
from notify.book import Status
from notify.mails import thread_id
from notify.settings import NotifySettings
from tests.builders import a_ticket_created
from tests.dead_letters import dead_letters, headers, parked_json
from tests.integration.test_data_keys import MASTER_KEY, a_replica
from tests.keys import ADMIN, MANAGER, REQUESTER, TEST_KEYS, bearer
from tests.polling import eventually
from tests.publishing import publish
from tests.receivers import Mailbox, smtp_server
from ticketstream_shared.contract import (
    CommentAdded,
    Envelope,
    TicketCreated,
    TicketStatus,
    TicketStatusChanged,
)
from ticketstream_shared.contract.assignment import TicketAssigned
from ticketstream_shared.contract.notify import DeliveryChannel, delivery_key
from ticketstream_shared.contract.sla import SlaBreached, SlaMetric, SlaWarning
from ticketstream_shared.contract.topics import (
    ASSIGNMENT_EVENTS,
    DELIVERY_PARTITIONS,
    NOTIFY_CONFIG,
    NOTIFY_DELIVERIES,
    NOTIFY_TICKETS,
    SLA_EVENTS,
    TICKET_PARTITIONS,
    TICKETS_EVENTS,
)
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.kafka import partition_of, records_to_end
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.integration

DOMAIN = "desk.test"
PORTAL = "https://portal.test"
#: Each kind of mail by how its (English) subject begins.
SUBJECT_KINDS = (
    ("We have received your request:", "received"),
    ("New answer to your request:", "reply"),
    ("We need your answer:", "waiting_for_you"),
    ("Your request is solved:", "resolved"),
    ("Assigned to you", "assigned"),
    ("SLA warning:", "sla_warning"),
    ("SLA breached:", "sla_breached"),
    ("Escalated to tier", "escalated"),
)


# --- the SMTP server ------------------------------------------------------------------------------------------


@dataclass
class RefusingMailbox(Mailbox):
    """A Mailbox whose server answers RCPT for the `refused` addresses with 550 5.1.1, as a server without such a
    user does, and counts every RCPT it is given."""

    refused: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            self.asked.append(address)
            refuse = address.lower() in self.refused
        if refuse:
            return f"550 5.1.1 <{address}>: no such user"  # as servers do, the address repeated
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def times_asked_for(self, address: str) -> int:
        with self.lock:
            return self.asked.count(address)

    def everything(self) -> list[EmailMessage]:
        with self.lock:
            return [message for _, message in self.messages]


# --- notify ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notify:
    client: TestClient
    kafka: str
    group: str
    mailbox: RefusingMailbox


@pytest.fixture(scope="module")
def notify(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notify]:
    key_file = write_key(tmp_path_factory.mktemp("notify-mail") / "secrets.key")
    master_key_file = tmp_path_factory.mktemp("notify-privacy") / "master.key"
    master_key_file.write_text(base64.b64encode(MASTER_KEY).decode() + "\n")
    group = f"notify-mail-{uuid.uuid4().hex[:8]}"
    with smtp_server(RefusingMailbox) as mailbox:
        settings = NotifySettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            api_keys_file="unused-keys-come-from-tests",
            consumer_group=group,
            notify_secrets_key_file=key_file,
            privacy_master_key_file=master_key_file,
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_timeout_s=10.0,
            mail_from=f"IT help desk <help@{DOMAIN}>",
            mail_domain=DOMAIN,
            portal_url=PORTAL,
            # Deliveries other modules left waiting (their receivers are gone) are given up on quickly.
            webhook_first_retry_s=0.1,
            webhook_longest_retry_s=0.5,
            webhook_retry_budget_s=5.0,
        )
        with TestClient(build_app(settings, TEST_KEYS)) as client:
            eventually(lambda: client.get("/readyz").status_code == 200, timeout_s=60, what="notify ready")
            yield Notify(client, kafka_bootstrap, group, mailbox)


def address(person_id: str) -> str:
    return f"{person_id}@mail.example"


def put_person(notify: Notify, person_id: str, body: dict[str, Any], key: str = ADMIN) -> httpx2.Response:
    return notify.client.put(f"/v1/notify/people/{person_id}", json=body, headers=bearer(key))


def register(notify: Notify, role: str, client_id: str | None = None, wants: dict[str, bool] | None = None) -> str:
    person_id = f"{role}-{uuid.uuid4().hex[:8]}"
    body = {"name": f"{role.title()} {person_id[-4:]}", "email": address(person_id), "role": role}
    answer = put_person(notify, person_id, {**body, "client_id": client_id, "notify": wants or {}})
    assert answer.status_code == 200 and answer.json()["created"], answer.text
    return person_id


# --- events ---------------------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Story:
    """One ticket of one requester, told as intake, assignment and sla tell it, happening now (older than a day,
    an event mails no one)."""

    requester: str
    technician: str = "tech-unregistered"
    client_id: str = field(default_factory=lambda: f"client-{uuid.uuid4().hex[:8]}")
    ticket_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    title: str = "Printer on fire"
    version: int = 0
    status_now: TicketStatus = TicketStatus.NEW
    #: The topics the story has events on.
    topics: set[str] = field(default_factory=set)

    def _envelope(self, producer: str) -> dict[str, Any]:
        self.topics.add({"intake": TICKETS_EVENTS, "assignment": ASSIGNMENT_EVENTS, "sla": SLA_EVENTS}[producer])
        return {
            "event_id": uuid.uuid4(),
            "occurred_at": now(),
            "ticket_id": self.ticket_id,
            "client_id": self.client_id,
            "producer": producer,
            "correlation_id": "test",
        }

    def _next(self) -> dict[str, Any]:
        self.version += 1
        return {**self._envelope("intake"), "aggregate_version": self.version}

    def created(self, **data: Any) -> TicketCreated:
        self.version = 1
        self.topics.add(TICKETS_EVENTS)
        data = {"occurred_at": now(), "requester_id": self.requester, "title": self.title, **data}
        return a_ticket_created(self.ticket_id, client_id=self.client_id, **data)

    def comment(self, body: str, visibility: str = "public") -> CommentAdded:
        data = {
            "comment_id": uuid.uuid4(),
            "author_id": self.technician,
            "author_role": "technician",
            "body": body,
            "visibility": visibility,
        }
        return CommentAdded(**self._next(), data=data)

    def status(self, to: TicketStatus, reason: str = "") -> TicketStatusChanged:
        data = {"from_status": self.status_now, "to_status": to, "reason": reason}
        self.status_now = to
        return TicketStatusChanged(**self._next(), data=data)

    def assigned(self, reason: str = "least loaded among 2 on-shift tier-1 technicians") -> TicketAssigned:
        data = {
            "technician_id": self.technician,
            "team": "desk",
            "tier": 1,
            "strategy": "least_loaded",
            "reason": reason,
        }
        return TicketAssigned(**self._envelope("assignment"), data=data)

    def _clock(self, metric: SlaMetric, remaining_s: int) -> dict[str, Any]:
        target = 8 * 3600
        return {
            "metric": metric,
            "policy_id": "standard",
            "policy_version": 1,
            "calendar_id": "office-hours",
            "calendar_version": 1,
            "target_business_seconds": target,
            "deadline": now() + timedelta(seconds=remaining_s),
            "elapsed_business_seconds": target - remaining_s,
            "remaining_business_seconds": remaining_s,
        }

    def warning(self) -> SlaWarning:
        return SlaWarning(**self._envelope("sla"), data={**self._clock(SlaMetric.RESOLUTION, 7200), "threshold": 0.75})

    def breached(self, metric: SlaMetric = SlaMetric.RESOLUTION) -> SlaBreached:
        return SlaBreached(**self._envelope("sla"), data=self._clock(metric, -60))


def event_ends(kafka_bootstrap: str, story: Story) -> dict[TopicPartition, int]:
    """Where the ticket's partition of each topic the story has events on ends now."""
    partition = partition_of(story.ticket_id, TICKET_PARTITIONS)

    async def read() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return await consumer.end_offsets([TopicPartition(topic, partition) for topic in story.topics])
        finally:
            await consumer.stop()

    return asyncio.run(read())


def committed(kafka_bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    async def read() -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in offsets.items()}

    return asyncio.run(read())


def handled_so_far(notify: Notify, story: Story) -> None:
    """Until notify's group has committed past everything published for the story: the fan-out commits a batch
    once Kafka has the deliveries it scheduled for it. (Only the topics the story wrote to: a partition the group
    has read nothing of since it started has nothing committed.)"""
    ends = event_ends(notify.kafka, story)

    def caught_up() -> bool:
        offsets = committed(notify.kafka, notify.group, list(ends))
        return all(offsets.get(tp, -1) >= end for tp, end in ends.items())

    eventually(caught_up, timeout_s=30, interval_s=0.2, what="notify's group committed past the story's events")


# --- mails ----------------------------------------------------------------------------------------------------


def subject_of(message: EmailMessage) -> str:
    return " ".join(str(message["Subject"]).split())


def kind_of(message: EmailMessage) -> str:
    subject = subject_of(message)
    for prefix, kind in SUBJECT_KINDS:
        if subject.startswith(prefix):
            return kind
    raise AssertionError(f"a mail of no known kind: {subject!r}")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, f"no text part in {subject_of(message)!r}"
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, f"no HTML part in {subject_of(message)!r}"
    return str(part.get_content())


def all_text_of(message: EmailMessage) -> str:
    return "\n".join(str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text")


def mails(notify: Notify, person: str, story: Story, leaving_out: frozenset[str] = frozenset()) -> list[EmailMessage]:
    """The mails `person` got about the story's ticket, but for those whose Message-ID is left out."""
    return [
        message
        for message in notify.mailbox.to(address(person))
        if f"[#{story.ticket_id}]" in subject_of(message) and str(message["Message-ID"]) not in leaving_out
    ]


def kinds(notify: Notify, person: str, story: Story, leaving_out: frozenset[str] = frozenset()) -> list[str]:
    return sorted(kind_of(message) for message in mails(notify, person, story, leaving_out))


def flush(notify: Notify, story: Story, *, staff: str | None = None, managers: tuple[str, ...] = ()) -> frozenset[str]:
    """Until every mail notify scheduled for the story so far has been sent (see the module docstring): a public
    comment marks the requester's mails; a new assignment and then a first-response breach mark the technician's
    and the managers'. The Message-IDs of the marker mails, which the caller leaves out of what it counts."""
    handled_so_far(notify, story)
    token = f"marker-{uuid.uuid4().hex[:8]}"
    publish(notify.kafka, [story.comment(f"Our last word ({token})")] + ([story.assigned(token)] if staff else []))

    def marked(person: str, test: Callable[[EmailMessage], bool]) -> EmailMessage:
        (message,) = eventually(lambda: [m for m in mails(notify, person, story) if test(m)], what=f"{person}'s marker")
        return message

    markers = [marked(story.requester, lambda m: token in text_of(m))]
    if staff:
        markers.append(marked(staff, lambda m: kind_of(m) == "assigned" and token in text_of(m)))
        publish(notify.kafka, [story.breached(SlaMetric.FIRST_RESPONSE)])
        for person in (staff, *managers):
            markers.append(marked(person, lambda m: "first response overdue" in subject_of(m)))
    return frozenset(str(message["Message-ID"]) for message in markers)


def assert_threaded(message: EmailMessage, story: Story) -> None:
    """What every mail about a ticket carries: its reference, its thread, our domain, both alternatives, and the
    mark that keeps an out-of-office answer from coming back."""
    assert f"[#{story.ticket_id}]" in subject_of(message)
    message_id = str(message["Message-ID"])
    assert message_id.startswith("<") and message_id.endswith(f"@{DOMAIN}>"), message_id
    assert thread_id(story.ticket_id, DOMAIN) in str(message["References"]).split()
    assert message.get_content_type() == "multipart/alternative"
    assert sorted(part.get_content_type() for part in message.iter_parts()) == ["text/html", "text/plain"]
    assert str(message["Auto-Submitted"]) == "auto-generated"


@dataclass(frozen=True)
class Cast:
    requester: str
    technician: str
    manager: str


def a_cast(notify: Notify) -> Cast:
    return Cast(
        requester=register(notify, "requester", client_id=f"client-{uuid.uuid4().hex[:8]}"),
        technician=register(notify, "technician"),
        manager=register(notify, "manager", client_id=None),
    )


def tell(notify: Notify, cast: Cast, story: Story, reply: str, internal: str) -> list[Envelope]:
    """The whole story, published as it happens (a step on another topic only once the step it depends on has
    been mailed: nothing orders the topics among themselves); returns every event published."""
    created = story.created()
    publish(notify.kafka, [created])
    eventually(lambda: kinds(notify, cast.requester, story) == ["received"], what="received")
    assigned = story.assigned()
    publish(notify.kafka, [assigned])
    eventually(lambda: kinds(notify, cast.technician, story) == ["assigned"], what="assigned")
    rest: list[Envelope] = [
        story.status(TicketStatus.IN_PROGRESS),
        story.comment(reply),
        story.comment(internal, visibility="internal"),
        story.status(TicketStatus.WAITING_ON_CUSTOMER, reason="On which floor is the printer?"),
        story.warning(),
        story.breached(),
        story.status(TicketStatus.RESOLVED, reason="We replaced the fuser unit."),
    ]
    publish(notify.kafka, rest)
    everything = ["received", "reply", "resolved", "waiting_for_you"]
    eventually(lambda: kinds(notify, cast.requester, story) == everything, timeout_s=30, what="the requester's")
    staff = ["assigned", "sla_breached", "sla_warning"]
    eventually(lambda: kinds(notify, cast.technician, story) == staff, timeout_s=30, what="the technician's")
    eventually(lambda: kinds(notify, cast.manager, story) == ["sla_breached"], timeout_s=30, what="the manager's")
    return [created, assigned, *rest]


# --- tests ----------------------------------------------------------------------------------------------------


def test_each_person_is_mailed_what_concerns_them(notify: Notify) -> None:
    cast = a_cast(notify)
    story = Story(cast.requester, cast.technician)
    reply = f"We have ordered a new fuser unit for you (order {uuid.uuid4().hex[:6]})."
    internal = f"Facilities dropped the printer again, do not tell them ({uuid.uuid4().hex[:6]})"
    tell(notify, cast, story, reply, internal)
    markers = flush(notify, story, staff=cast.technician, managers=(cast.manager,))

    by_kind = {kind_of(message): message for message in mails(notify, cast.requester, story, markers)}
    assert kinds(notify, cast.requester, story, markers) == ["received", "reply", "resolved", "waiting_for_you"]
    assert kinds(notify, cast.technician, story, markers) == ["assigned", "sla_breached", "sla_warning"]
    assert kinds(notify, cast.manager, story, markers) == ["sla_breached"]

    assert reply in text_of(by_kind["reply"]) and reply in html_of(by_kind["reply"])
    assert "On which floor is the printer?" in text_of(by_kind["waiting_for_you"])
    rate_link = f"{PORTAL}/tickets/{story.ticket_id}/rate"
    assert rate_link in text_of(by_kind["resolved"]) and f'href="{rate_link}"' in html_of(by_kind["resolved"])
    assert all(f"{PORTAL}/tickets/{story.ticket_id}" in text_of(message) for message in by_kind.values())

    everyone = [mails(notify, person, story, markers) for person in (cast.requester, cast.technician, cast.manager)]
    for message in (message for theirs in everyone for message in theirs):
        assert_threaded(message, story)
    assert len({str(message["Message-ID"]) for theirs in everyone for message in theirs}) == 8
    assert not [message for message in notify.mailbox.everything() if internal in all_text_of(message)]


def test_a_kind_of_mail_turned_off_is_not_sent(notify: Notify) -> None:
    requester = register(notify, "requester", client_id="acme", wants={"resolved": False})
    shown = notify.client.get(f"/v1/notify/people/{requester}", headers=bearer(ADMIN)).json()
    assert shown["notify"] == {"resolved": False}
    story = Story(requester)
    publish(notify.kafka, [story.created(), story.status(TicketStatus.RESOLVED, reason="Fixed.")])
    markers = flush(notify, story)

    assert kinds(notify, requester, story, markers) == ["received"]


def test_an_event_older_than_a_day_mails_no_one(notify: Notify) -> None:
    requester = register(notify, "requester", client_id="acme")
    story = Story(requester)
    publish(notify.kafka, [story.created(occurred_at=now() - timedelta(hours=25))])
    markers = flush(notify, story)

    assert kinds(notify, requester, story, markers) == []


def test_a_redelivered_event_mails_each_recipient_once(notify: Notify) -> None:
    cast = a_cast(notify)
    story = Story(cast.requester, cast.technician)
    events = tell(notify, cast, story, "Please try printing again.", "Internal: swapped the toner.")
    publish(notify.kafka, events)  # the very same events again: a producer's retry, a consumer's redelivery
    markers = flush(notify, story, staff=cast.technician, managers=(cast.manager,))

    expected = {
        cast.requester: ["received", "reply", "resolved", "waiting_for_you"],
        cast.technician: ["assigned", "sla_breached", "sla_warning"],
        cast.manager: ["sla_breached"],
    }
    for person, kinds_expected in expected.items():
        theirs = mails(notify, person, story, markers)
        assert sorted(kind_of(message) for message in theirs) == kinds_expected, person
        assert len({str(message["Message-ID"]) for message in theirs}) == len(theirs) == len(kinds_expected)


def test_a_redelivered_ticket_created_does_not_make_notify_forget_the_assignee(notify: Notify) -> None:
    cast = a_cast(notify)
    story = Story(cast.requester, cast.technician)
    created = story.created()
    publish(notify.kafka, [created])
    eventually(lambda: kinds(notify, cast.requester, story) == ["received"], what="received")
    publish(notify.kafka, [story.assigned()])
    eventually(lambda: kinds(notify, cast.technician, story) == ["assigned"], what="assigned")
    publish(notify.kafka, [created])  # delivered again, after the assignment was handled (and committed)
    handled_so_far(notify, story)
    publish(notify.kafka, [story.warning()])

    eventually(
        lambda: kinds(notify, cast.technician, story) == ["assigned", "sla_warning"],
        what="the assignee warned of the SLA",
    )


def test_a_mailbox_the_server_refuses_for_good_fails_at_once_and_goes_to_the_dlq(notify: Notify) -> None:
    gone = register(notify, "requester", client_id="acme")
    notify.mailbox.refused.add(address(gone))
    story = Story(gone)
    created = story.created()
    publish(notify.kafka, [created])

    def parked() -> list[Any]:
        return [
            letter
            for letter in dead_letters(notify.kafka, NOTIFY_DELIVERIES)
            if parked_json(letter).get("target") == gone
        ]

    (letter,) = eventually(parked, timeout_s=30, what="the refused mail in the DLQ")
    reason = headers(letter)["dlq.reason"]
    assert reason.startswith("gave up after 1 attempt(s)") and "SMTP 550" in reason and "no such user" in reason
    assert address(gone) not in reason and address(gone).encode() not in (letter.value or b"")
    parked_delivery = json.loads(letter.value or b"{}")
    assert parked_delivery["source_event_id"] == str(created.event_id)
    assert opened_mail(notify, parked_delivery)["to"] == address(gone)
    assert letter.key == delivery_key(DeliveryChannel.MAIL, gone)

    attempts = [
        (record["attempt"], record["outcome"], record["status_code"], record["actor"]["key_name"])
        for record in delivery_log(notify.kafka, gone)
        if record["event_type"] == "notify.delivery_attempted"
    ]
    assert attempts == [(1, "gave_up", 550, "system:notify")]
    assert notify.mailbox.times_asked_for(address(gone)) == 1  # a 5xx is final: never asked again
    assert notify.mailbox.to(address(gone)) == []
    target = notify.client.app.state.deliveries.book.targets[(DeliveryChannel.MAIL, gone)]
    assert [delivery.status for delivery in target.deliveries.values()] == [Status.FAILED]
    assert target.failing_since is not None and "550" in (target.last_error or "")


def opened(notify: Notify, sealed: str) -> str:
    """A sealed value, opened as another process would."""

    async def open_it() -> str:
        async with a_replica(notify.kafka) as keys:
            return await keys.open(sealed)

    return asyncio.run(open_it())


def opened_mail(notify: Notify, delivery: dict[str, Any]) -> dict[str, Any]:
    """The mail a delivery record of notify.deliveries holds (sealed)."""
    return json.loads(opened(notify, delivery["content"]["sealed"]))  # type: ignore[no-any-return]


def delivery_log(kafka_bootstrap: str, person: str) -> list[dict[str, Any]]:
    """Every record of notify.deliveries about mail to `person`, in order."""
    key = delivery_key(DeliveryChannel.MAIL, person)
    partition = TopicPartition(NOTIFY_DELIVERIES, partition_of(key.decode(), DELIVERY_PARTITIONS))

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            records = records_to_end(consumer, {partition: None})
            return [json.loads(record.value) async for record in records if record.key == key and record.value]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_people_are_refused_what_they_must_be(notify: Notify) -> None:
    person, other = f"requester-{uuid.uuid4().hex[:8]}", f"requester-{uuid.uuid4().hex[:8]}"
    good = {"name": "Ann Example", "email": address(person), "role": "requester", "client_id": "acme"}

    invalid = put_person(notify, person, {**good, "email": "not-an-address"})
    assert invalid.status_code == 422, invalid.text
    assert [error["field"] for error in invalid.json()["errors"]] == ["email"]
    assert put_person(notify, person, good, key=REQUESTER).status_code == 403
    assert notify.client.put(f"/v1/notify/people/{person}", json=good).status_code == 401

    assert put_person(notify, person, good).json()["created"] is True
    again = put_person(notify, person, good)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert put_person(notify, person, {**good, "name": "Ann B. Example"}, key=MANAGER).status_code == 200

    twin = put_person(notify, other, {**good, "email": address(person).upper()})
    assert twin.status_code == 422, twin.text
    (error,) = twin.json()["errors"]
    assert error["field"] == "email" and person in error["message"]
    assert notify.client.get(f"/v1/notify/people/{other}", headers=bearer(ADMIN)).status_code == 404


def test_sealed_words_are_mailed_in_plain_words_and_kept_sealed(notify: Notify) -> None:
    """With a master key, tickets.events carries people's words sealed (intake seals them): notify opens them for
    the mails and keeps its brief of the ticket (notify.tickets) with the title still sealed."""
    cast = a_cast(notify)
    marker = uuid.uuid4().hex
    story = Story(cast.requester, technician=cast.technician, client_id=f"client-{uuid.uuid4().hex[:8]}")

    async def sealed() -> list[Envelope]:
        async with a_replica(notify.kafka) as keys:
            created = await keys.seal_fields(story.created(title=f"Broken screen {marker}-title"), cast.requester)
            reply = await keys.seal_fields(story.comment(f"Replaced it {marker}-reply"), cast.technician)
            return [created, reply]

    events = asyncio.run(sealed())
    assert all(marker not in event.model_dump_json() for event in events)
    publish(notify.kafka, events)
    eventually(lambda: kinds(notify, cast.requester, story) == ["received", "reply"], what="the requester's mails")
    received, reply = sorted(mails(notify, cast.requester, story), key=kind_of)
    assert f"{marker}-title" in subject_of(received) and f"{marker}-title" in text_of(received)
    assert f"{marker}-reply" in text_of(reply)
    handled_so_far(notify, story)

    async def briefs() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=notify.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(NOTIFY_TICKETS, partition_of(story.ticket_id, TICKET_PARTITIONS))
            records = records_to_end(consumer, {partition: None})
            return [record.value async for record in records if record.key == story.ticket_id.encode() and record.value]
        finally:
            await consumer.stop()

    kept = asyncio.run(briefs())
    assert kept and all(b"sealed:v1:" in brief and marker.encode() not in brief for brief in kept)


def config_log_of(kafka_bootstrap: str, person: str) -> list[bytes]:
    """Every record of notify.config about `person`, as written."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            records = records_to_end(consumer, {TopicPartition(NOTIFY_CONFIG, 0): None})
            return [record.value async for record in records if record.key == f"person/{person}".encode()]
        finally:
            await consumer.stop()

    return [value for value in asyncio.run(read()) if value]


def test_a_persons_name_address_and_mails_are_kept_sealed_and_erasing_them_forgets_them(notify: Notify) -> None:
    """notify.config keeps a person's name and address sealed under their key, notify.deliveries each mail sealed
    under its recipient's key and its authors' (the mails go out in plain words). Erased, the person is forgotten:
    not shown, not mailed, and what waits for them or quotes them does not open."""
    marker = uuid.uuid4().hex
    requester, technician = f"requester-{marker[:8]}", register(notify, "technician")
    person = {"name": f"Ann {marker}-name", "email": address(requester), "role": "requester", "client_id": "acme"}
    assert put_person(notify, requester, person).status_code == 200
    shown = notify.client.get(f"/v1/notify/people/{requester}", headers=bearer(ADMIN))
    assert shown.status_code == 200 and shown.json()["name"] == person["name"], shown.text
    assert put_person(notify, requester, person).headers.get("Idempotent-Replayed") == "true"
    (kept,) = config_log_of(notify.kafka, requester)
    assert marker.encode() not in kept and address(requester).encode() not in kept
    assert json.loads(kept)["data"]["email"].startswith("sealed:v1:")
    refused = put_person(notify, f"requester-{marker[8:16]}", {**person, "name": "sealed:v1:" + "ab" * 16 + ":QUJD"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "name", refused.text

    story = Story(requester, technician=technician, client_id="acme")

    async def sealed() -> Envelope:
        async with a_replica(notify.kafka) as keys:
            return await keys.seal_fields(story.created(title=f"Broken screen {marker}-title"), requester)

    publish(notify.kafka, [asyncio.run(sealed())])
    eventually(lambda: kinds(notify, requester, story) == ["received"], what="the requester's mail")
    publish(notify.kafka, [story.assigned()])  # once the ticket is known: nothing orders the two topics
    eventually(lambda: kinds(notify, technician, story) == ["assigned"], what="the technician's mail")
    (received,) = mails(notify, requester, story)
    assert f"{marker}-title" in subject_of(received) and f"{marker}-name" in text_of(received)
    handled_so_far(notify, story)
    scheduled = {
        target: [r for r in delivery_log(notify.kafka, target) if r["event_type"] == "notify.delivery_scheduled"]
        for target in (requester, technician)
    }
    for target, (delivery,) in scheduled.items():
        assert marker not in json.dumps(delivery) and address(target) not in json.dumps(delivery), target
        assert f"{marker}-title" in opened_mail(notify, delivery)["subject"]

    async def erase() -> None:
        async with a_replica(notify.kafka) as keys:
            assert await keys.erase(requester)

    asyncio.run(erase())
    eventually(
        lambda: notify.client.get(f"/v1/notify/people/{requester}", headers=bearer(ADMIN)).status_code == 404,
        what="the erased person forgotten",
    )
    for delivery in (scheduled[requester][0], scheduled[technician][0]):  # the technician's quotes the title
        assert opened(notify, delivery["content"]["sealed"]) == ERASED
    publish(notify.kafka, [story.status(TicketStatus.RESOLVED, reason="Replaced the screen.")])
    handled_so_far(notify, story)
    assert kinds(notify, requester, story) == ["received"]
    assert put_person(notify, requester, person).json()["created"] is True  # a person again, from scratch
