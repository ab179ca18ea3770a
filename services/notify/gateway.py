"""Mail to ticket: an SMTP server (aiosmtpd) for the help desk's domain. A new mail from a known person opens a
ticket; a reply (its References or In-Reply-To name one of our threads, or its subject carries '[#<ticket>]')
becomes a public comment by the sender. Both go to tickets.inbound with the Message-ID as request_id, so a mail
sent again changes nothing, and the SMTP reply comes only once Kafka has the request: a mail is either taken
whole or refused with a reason, never half-created.

Automatic mail (Auto-Submitted, bounces, delivery reports, out-of-office answers) is accepted and dropped with a
log line: answering it could start a loop between two robots."""

from __future__ import annotations

import email.policy
import logging
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ticketstream_shared.contract.requests import InboundRequest, inbound_ticket_id
from ticketstream_shared.contract.topics import TICKETS_INBOUND

from .directory import Directory
from .mails import ticket_of_thread
from .settings import NotifySettings

log = logging.getLogger(__name__)

MAX_MAIL_BYTES = 10 * 1024 * 1024
SUBJECT_TOKEN = re.compile(r"\[#([A-Za-z0-9][A-Za-z0-9._:@-]{0,127})\]")
QUOTE_HEADER = re.compile(r"^(On .+ wrote:|-----\s*Original Message\s*-----|From: .+)$")
AUTOMATIC_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


@dataclass(frozen=True)
class Take:
    request: InboundRequest
    key: str


@dataclass(frozen=True)
class Drop:
    reason: str


@dataclass(frozen=True)
class Refuse:
    reply: str


def _senders(message: EmailMessage) -> tuple[Address, ...]:
    """The addresses of From; none if it is missing or unreadable."""
    try:
        return message["From"].addresses if message["From"] is not None else ()
    except (AttributeError, IndexError, ValueError):
        return ()


def read_mail(raw: bytes, mail_from: str, directory: Directory, settings: NotifySettings) -> Take | Drop | Refuse:
    """What a mail means for the help desk (pure: the gateway only carries out the verdict)."""
    message: EmailMessage = BytesParser(policy=email.policy.default).parsebytes(raw)
    if _automatic(message, mail_from):
        return Drop("an automatic mail (auto-reply, bounce or report)")
    message_id = (message.get("Message-ID") or "").strip()
    if not message_id or len(message_id) > 200:
        return Refuse("550 5.6.0 A mail needs a Message-ID (of at most 200 characters) to be taken")
    senders = _senders(message)
    if len(senders) != 1 or not senders[0].addr_spec:
        return Refuse("550 5.6.0 A mail needs one sender in From")
    address = senders[0].addr_spec.lower()
    person_id = directory.by_address.get(address)
    if person_id is None:
        return Refuse(f"550 5.7.1 {address} is not known to the help desk; ask your IT team to add it")
    person = directory.people[person_id].data
    subject = " ".join(str(message.get("Subject") or "").split())
    body = _text_of(message)
    request_id = message_id.strip("<>")
    ticket_id = _ticket_named(message, subject, settings.mail_domain)
    if ticket_id is not None:
        reply = _without_quote(body)
        if not reply:
            return Refuse("550 5.6.0 The reply has no text of its own")
        data = {"author_id": person_id, "body": reply[:20_000], "public": True}
        comment = InboundRequest(type="add_comment", request_id=request_id, ticket_id=ticket_id, data=data)
        return Take(comment, ticket_id)
    client_id = person.client_id or settings.client_domains.get(address.rpartition("@")[2])
    if client_id is None:
        return Refuse(f"550 5.7.1 No organisation is known for {address}; ask your IT team to add it")
    data = {
        "client_id": client_id,
        "requester_id": person_id,
        "title": (subject or "(no subject)")[:200],
        "description": body[:20_000],
        "category": settings.mail_category,
        "priority": settings.mail_priority,
        "channel": "email",
    }
    return Take(InboundRequest(type="create_ticket", request_id=request_id, data=data), inbound_ticket_id(request_id))


def _automatic(message: EmailMessage, mail_from: str) -> bool:
    if mail_from.strip("<>") == "":
        return True  # a bounce: the null sender
    if (message.get("Auto-Submitted") or "no").strip().lower() != "no":
        return True
    if (message.get("Precedence") or "").strip().lower() in AUTOMATIC_PRECEDENCE:
        return True
    return message.get_content_type() == "multipart/report" or "X-Autoreply" in message


def _ticket_named(message: EmailMessage, subject: str, domain: str) -> str | None:
    threads = f"{message.get('In-Reply-To') or ''} {message.get('References') or ''}"
    for message_id in re.findall(r"<[^<>]+>", threads):
        if (ticket_id := ticket_of_thread(message_id, domain)) is not None:
            return ticket_id
    found = SUBJECT_TOKEN.search(subject)
    return found.group(1) if found else None


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # a character set Python does not know (e.g. unknown-8bit)
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_type() == "text/html":
        content = _Text.of(content)
    return content.replace("\r\n", "\n").strip()


def _without_quote(body: str) -> str:
    """The reply without the mail it answers, quoted below it."""
    kept = []
    for line in body.splitlines():
        if QUOTE_HEADER.match(line.strip()):
            break
        if not line.startswith(">"):
            kept.append(line)
    return "\n".join(kept).strip()


class _Text(HTMLParser):
    """The text a person sees in an HTML mail: no head, style sheet or script."""

    UNSEEN = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._unseen = 0

    def handle_data(self, data: str) -> None:
        if not self._unseen:
            self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.UNSEEN:
            self._unseen += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.UNSEEN and self._unseen:
            self._unseen -= 1

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return "".join(parser.parts)


class MailGateway:
    """aiosmtpd's handler: the domain check at RCPT, the verdict at DATA."""

    def __init__(self, settings: NotifySettings, directory: Directory) -> None:
        self._settings = settings
        self._directory = directory
        self.producer: AIOKafkaProducer | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address.rpartition("@")[2].lower() != self._settings.mail_domain.lower():
            return f"550 5.1.1 This server takes mail for {self._settings.mail_domain} only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        try:
            verdict = read_mail(raw, envelope.mail_from or "", self._directory, self._settings)
        except Exception:  # whatever a stranger's bytes make the mail parser do: refused, and a defect to look at
            log.exception("a mail could not be read")
            return "554 5.6.0 The mail could not be read"
        if isinstance(verdict, Refuse):
            log.info("mail refused", extra={"reply": verdict.reply})
            return verdict.reply
        if isinstance(verdict, Drop):
            log.info("mail dropped", extra={"reason": verdict.reason})
            return "250 2.0.0 Accepted; automatic mail is not turned into requests"
        if self.producer is None:
            return "451 4.3.0 The help desk is starting; try again shortly"
        try:
            await self.producer.send_and_wait(
                TICKETS_INBOUND, verdict.request.model_dump_json().encode(), key=verdict.key.encode()
            )
        except KafkaError as error:
            log.warning("mail not taken: Kafka did not take it", extra={"error": type(error).__name__})
            return "451 4.3.0 The help desk cannot take mail just now; try again later"
        return f"250 2.0.0 Taken as {verdict.request.type} {verdict.key}"
