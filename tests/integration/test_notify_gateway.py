"""Mail to ticket: notify's SMTP gateway against the real broker, with a real SMTP client (aiosmtplib). What a mail
becomes on tickets.inbound (read back by a consumer in no group), what the gateway refuses and with which reply,
what it accepts and drops, and, with intake running, the ticket a mail opens and the comment a reply to notify's
own mail adds.

That nothing reaches tickets.inbound is never waited for: after the mails that must not reach it, a normal mail is
sent, and once its request is there, the records since the offsets noted at the start must be exactly its. The
gateway answers a mail only once Kafka has its request, so whatever an earlier mail wrote is there by then.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi.testclient import TestClient

from deploy.kafka.launcher import free_ports
from notify.app import build_app
from notify.mails import thread_id
from notify.settings import NotifySettings
from tests.keys import ADMIN, TECHNICIAN, TEST_KEYS, bearer
from tests.polling import eventually
from tests.receivers import Mailbox, smtp_server
from ticketstream_shared.contract.requests import InboundRequest, inbound_ticket_id
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_INBOUND
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.integration

DOMAIN = "desk.test"
HELP = f"help@{DOMAIN}"
QUOTED = (
    "On Thu, 3 Dec 2026 at 09:00, IT help desk <help@desk.test> wrote:\n"
    "> Hello Ann,\n"
    ">\n"
    "> We have received your request and will look into it.\n"
)


@dataclass(frozen=True)
class Gateway:
    client: TestClient
    kafka: str
    port: int
    #: Where notify's own mails go.
    mailbox: Mailbox


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    key_file = write_key(tmp_path_factory.mktemp("notify-gateway") / "secrets.key")
    with smtp_server() as mailbox:
        (port,) = free_ports(1)
        settings = NotifySettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            api_keys_file="unused-keys-come-from-tests",
            consumer_group=f"notify-gateway-{uuid.uuid4().hex[:8]}",
            notify_secrets_key_file=key_file,
            mail_gateway_port=port,
            mail_domain=DOMAIN,
            mail_from=f"IT help desk <{HELP}>",
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            portal_url="https://portal.test",
            # Deliveries other modules left waiting (their receivers are gone) are given up on quickly.
            webhook_first_retry_s=0.1,
            webhook_longest_retry_s=0.5,
            webhook_retry_budget_s=5.0,
        )
        with TestClient(build_app(settings, TEST_KEYS)) as client:
            eventually(lambda: client.get("/readyz").status_code == 200, timeout_s=60, what="notify ready")
            yield Gateway(client, kafka_bootstrap, port, mailbox)


def address(person_id: str) -> str:
    return f"{person_id}@acme.example"


def register(gateway: Gateway) -> str:
    person_id = f"requester-{uuid.uuid4().hex[:8]}"
    body = {"name": "Ann Example", "email": address(person_id), "role": "requester", "client_id": "acme"}
    answer = gateway.client.put(f"/v1/notify/people/{person_id}", json=body, headers=bearer(ADMIN))
    assert answer.status_code == 200 and answer.json()["created"], answer.text
    return person_id


def a_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    to: str = HELP,
    message_id: bool = True,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Ann Example <{sender}>"
    mail["To"] = to
    mail["Subject"] = subject
    if message_id:
        mail["Message-ID"] = make_msgid(domain="mail.acme.example")
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail


def request_id_of(mail: EmailMessage) -> str:
    return str(mail["Message-ID"]).strip().strip("<>")


def send(gateway: Gateway, mail: EmailMessage) -> str:
    """The gateway's reply to DATA (aiosmtplib raises on a refusal)."""
    _, reply = asyncio.run(aiosmtplib.send(mail, hostname="127.0.0.1", port=gateway.port, timeout=10))
    return reply


def transaction(gateway: Gateway, sender: str, mail: EmailMessage) -> aiosmtplib.SMTPResponse:
    """One mail transaction step by step, MAIL FROM:<sender> included; the reply to DATA."""

    async def run() -> aiosmtplib.SMTPResponse:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.port, timeout=10)
        async with client:
            await client.ehlo()
            await client.mail(sender)
            await client.rcpt(HELP)
            return await client.data(mail.as_bytes())

    return asyncio.run(run())


def inbound_ends(kafka_bootstrap: str) -> dict[TopicPartition, int]:
    async def read() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return await consumer.end_offsets([TopicPartition(TICKETS_INBOUND, p) for p in range(TICKET_PARTITIONS)])
        finally:
            await consumer.stop()

    return asyncio.run(read())


def inbound_since(kafka_bootstrap: str, since: dict[TopicPartition, int]) -> list[tuple[str, InboundRequest]]:
    """Every request on tickets.inbound after `since`, with its key."""

    async def read() -> list[tuple[str, InboundRequest]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return [
                ((record.key or b"").decode(), InboundRequest.model_validate_json(record.value or b""))
                async for record in records_to_end(consumer, dict(since))
            ]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def requests_since(gateway: Gateway, start: dict[TopicPartition, int], count: int) -> list[tuple[str, InboundRequest]]:
    """Once there are `count` requests on tickets.inbound after `start`, all of them."""

    def there() -> list[tuple[str, InboundRequest]]:
        requests = inbound_since(gateway.kafka, start)
        return requests if len(requests) >= count else []

    return eventually(there, what=f"{count} request(s) on tickets.inbound")


def test_a_new_mail_from_a_known_person_asks_for_a_ticket_and_the_same_mail_again_for_the_same(
    gateway: Gateway,
) -> None:
    person = register(gateway)
    start = inbound_ends(gateway.kafka)
    mail = a_mail(address(person), "Printer on fire", "The printer on floor 3 is smoking.\nPlease help.")
    request_id = request_id_of(mail)
    ticket_id = inbound_ticket_id(request_id)

    assert send(gateway, mail) == f"2.0.0 Taken as create_ticket {ticket_id}"
    ((key, request),) = requests_since(gateway, start, 1)
    assert key == ticket_id
    assert request.type == "create_ticket" and request.request_id == request_id and request.ticket_id is None
    assert request.data == {
        "client_id": "acme",
        "requester_id": person,
        "title": "Printer on fire",
        "description": "The printer on floor 3 is smoking.\nPlease help.",
        "category": "email",
        "priority": "P3",
        "channel": "email",
    }

    assert send(gateway, mail) == f"2.0.0 Taken as create_ticket {ticket_id}"
    assert requests_since(gateway, start, 2) == [
        (key, request),
        (key, request),
    ]  # the same request_id: intake creates nothing new


def test_a_reply_comments_on_its_ticket_without_the_mail_it_quotes(gateway: Gateway) -> None:
    person = register(gateway)
    by_thread, by_subject = str(uuid.uuid4()), str(uuid.uuid4())
    start = inbound_ends(gateway.kafka)
    threaded = a_mail(
        address(person),
        "Re: We need your answer: Printer on fire",
        "Floor 3, by the window.\n> On which floor is the printer?\nIt beeps too.\n\n" + QUOTED,
        headers={
            "In-Reply-To": f"<{uuid.uuid4().hex}@{DOMAIN}>",
            "References": f"{thread_id(by_thread, DOMAIN)} <{uuid.uuid4().hex}@{DOMAIN}>",
        },
    )
    named = a_mail(address(person), f"Re: Printer on fire [#{by_subject}]", "Thanks, it prints again.\n\n" + QUOTED)

    assert send(gateway, threaded) == f"2.0.0 Taken as add_comment {by_thread}"
    assert send(gateway, named) == f"2.0.0 Taken as add_comment {by_subject}"
    requests = requests_since(gateway, start, 2)
    assert len(requests) == 2
    by_ticket = {request.ticket_id: (key, request) for key, request in requests}
    key, request = by_ticket[by_thread]
    assert key == by_thread and request.type == "add_comment" and request.request_id == request_id_of(threaded)
    assert request.data == {"author_id": person, "body": "Floor 3, by the window.\nIt beeps too.", "public": True}
    key, request = by_ticket[by_subject]
    assert key == by_subject and request.type == "add_comment" and request.request_id == request_id_of(named)
    assert request.data == {"author_id": person, "body": "Thanks, it prints again.", "public": True}


def test_what_must_not_become_a_request_does_not(gateway: Gateway) -> None:
    person = register(gateway)
    start = inbound_ends(gateway.kafka)

    stranger = f"stranger-{uuid.uuid4().hex[:8]}@nowhere.example"
    with pytest.raises(aiosmtplib.SMTPDataError) as unknown:
        send(gateway, a_mail(stranger, "Hello", "Let me in."))
    assert unknown.value.code == 550 and f"{stranger} is not known to the help desk" in unknown.value.message

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as elsewhere:
        send(gateway, a_mail(address(person), "Hello", "Wrong door.", to="help@elsewhere.test"))
    (refused,) = elsewhere.value.recipients
    assert refused.code == 550 and f"takes mail for {DOMAIN} only" in refused.message

    out_of_office = a_mail(
        address(person), "Out of office", "Back on Monday.", headers={"Auto-Submitted": "auto-replied"}
    )
    answer = transaction(gateway, address(person), out_of_office)
    assert answer.code == 250 and "automatic mail" in answer.message

    bounce = a_mail(address(person), "Undelivered Mail Returned to Sender", "No such user here.")
    answer = transaction(gateway, "", bounce)  # MAIL FROM:<>
    assert answer.code == 250 and "automatic mail" in answer.message

    with pytest.raises(aiosmtplib.SMTPDataError) as nameless:
        send(gateway, a_mail(address(person), "No id", "Who am I?", message_id=False))
    assert nameless.value.code == 550 and "Message-ID" in nameless.value.message

    only_quote = a_mail(address(person), f"Re: Printer [#{uuid.uuid4()}]", QUOTED)
    with pytest.raises(aiosmtplib.SMTPDataError) as empty:
        send(gateway, only_quote)
    assert empty.value.code == 550 and "no text of its own" in empty.value.message

    marker = a_mail(address(person), "The marker", "Sent after everything that must not become a request.")
    assert send(gateway, marker).startswith("2.0.0 Taken as create_ticket")
    requests = requests_since(gateway, start, 1)
    assert [request.request_id for _, request in requests] == [request_id_of(marker)]


def test_a_mail_opens_a_ticket_and_a_reply_to_notify_s_mail_comments_on_it(
    gateway: Gateway, intake: TestClient
) -> None:
    person = register(gateway)
    mail = a_mail(address(person), "Laptop does not boot", "It shows a black screen.")
    ticket_id = inbound_ticket_id(request_id_of(mail))
    assert send(gateway, mail) == f"2.0.0 Taken as create_ticket {ticket_id}"
    assert send(gateway, mail) == f"2.0.0 Taken as create_ticket {ticket_id}"  # sent again: the same ticket

    def opened() -> dict | None:
        answer = intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN))
        return answer.json() if answer.status_code == 200 else None

    ticket = eventually(opened, timeout_s=30, what="the ticket in intake")
    assert ticket["channel"] == "email" and ticket["requester_id"] == person and ticket["client_id"] == "acme"
    assert ticket["title"] == "Laptop does not boot" and ticket["description"] == "It shows a black screen."
    assert (ticket["category"], ticket["priority"]) == ("email", "P3")

    (received,) = eventually(
        lambda: [m for m in gateway.mailbox.to(address(person)) if f"[#{ticket_id}]" in str(m["Subject"])],
        timeout_s=30,
        what="notify's mail that the request was received",
    )
    assert str(received["Subject"]).startswith("We have received your request")
    reply = a_mail(
        address(person),
        f"Re: {received['Subject']}",
        "It still shows a black screen after a restart.\n\n" + QUOTED,
        headers={
            "In-Reply-To": str(received["Message-ID"]),
            "References": f"{received['References']} {received['Message-ID']}",
        },
    )
    assert send(gateway, reply) == f"2.0.0 Taken as add_comment {ticket_id}"

    def comments() -> list[dict]:
        answer = intake.get(f"/v1/tickets/{ticket_id}/comments", headers=bearer(ADMIN))
        return answer.json()["comments"] if answer.status_code == 200 else []

    (comment,) = eventually(comments, timeout_s=30, what="the reply as a comment")
    assert comment["body"] == "It still shows a black screen after a restart."
    assert comment["author_id"] == person and comment["public"] is True
    # The resent mail came before the reply on the ticket's partition: it created nothing more.
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["version"] == 2


def test_a_reply_by_mail_to_a_ticket_waiting_on_its_requester_puts_it_back_in_the_queue(
    gateway: Gateway, intake: TestClient
) -> None:
    person = register(gateway)
    mail = a_mail(address(person), "VPN drops every hour", "Since Monday.")
    ticket_id = inbound_ticket_id(request_id_of(mail))
    send(gateway, mail)

    def version() -> int | None:
        answer = intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN))
        return answer.json()["version"] if answer.status_code == 200 else None

    eventually(version, timeout_s=30, what="the ticket in intake")
    asked = intake.post(
        f"/v1/tickets/{ticket_id}/status",
        json={"status": "waiting_on_customer", "reason": "Which VPN client version do you use?"},
        headers=bearer(TECHNICIAN),
    )
    assert asked.status_code == 200, asked.text
    (waiting,) = eventually(
        lambda: [m for m in gateway.mailbox.to(address(person)) if str(m["Subject"]).startswith("We need your answer")],
        timeout_s=30,
        what="notify's mail that the desk waits for the requester",
    )
    reply = a_mail(
        address(person),
        f"Re: {waiting['Subject']}",
        "Version 5.2.\n\n" + QUOTED,
        headers={"In-Reply-To": str(waiting["Message-ID"]), "References": str(waiting["References"])},
    )
    assert send(gateway, reply) == f"2.0.0 Taken as add_comment {ticket_id}"

    def comments() -> list[dict]:
        answer = intake.get(f"/v1/tickets/{ticket_id}/comments", headers=bearer(ADMIN))
        return answer.json()["comments"] if answer.status_code == 200 else []

    (comment,) = eventually(comments, timeout_s=30, what="the reply as a comment")
    assert (comment["body"], comment["author_id"]) == ("Version 5.2.", person)
    ticket = intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()
    # The answer the desk waited for: the requester's, written through the gateway's integration (the role that
    # wrote it stays on record), and back in the queue (which resumes the SLA clock) as when they answer in the portal.
    assert (comment["author_role"], ticket["status"]) == ("integration", "open")
