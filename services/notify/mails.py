"""The mails notify sends, in plain words: each kind a pair of Jinja2 templates in templates/<language>/,
<kind>.txt.j2 (its first line 'Subject: ...', a blank line, then the text) and <kind>.html.j2 (the same in HTML,
escaped). A language without its own templates falls back to English."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from ticketstream_shared.contract.notify import Mail, MailMessage

TEMPLATES = Path(__file__).parent / "templates"
FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,  # a template naming what it is not given fails its test, not a requester's mail
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def languages() -> list[str]:
    return sorted(path.name for path in TEMPLATES.iterdir() if path.is_dir())


def render(kind: Mail, language: str, context: dict[str, Any]) -> Rendered:
    environment = _environment()
    try:
        text_template = environment.get_template(f"{language}/{kind.value}.txt.j2")
        html_template = environment.get_template(f"{language}/{kind.value}.html.j2")
    except TemplateNotFound:
        if language == FALLBACK_LANGUAGE:
            raise
        return render(kind, FALLBACK_LANGUAGE, context)
    first, _, text = text_template.render(context).partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"{language}/{kind.value}.txt.j2 must begin with 'Subject: '")
    return Rendered(first.removeprefix("Subject: ").strip(), text.lstrip("\n"), html_template.render(context))


def thread_id(ticket_id: str, domain: str) -> str:
    """The Message-ID every mail about a ticket refers to, so mail clients thread them and a reply names its
    ticket. The id goes in as it is ('p' before it) when it is safe in a Message-ID, else in hex ('x' before)."""
    plain = ticket_id.replace("-", "").replace(".", "").isalnum()
    token = f"p{ticket_id}" if plain else f"x{ticket_id.encode().hex()}"
    return f"<ticket.{token}@{domain}>"


def ticket_of_thread(message_id: str, domain: str) -> str | None:
    """The ticket a Message-ID of `thread_id` names, if it is one of ours."""
    inner = message_id.strip().strip("<>")
    local, _, at = inner.rpartition("@")
    if at.lower() != domain.lower() or not local.startswith("ticket."):
        return None
    token = local.removeprefix("ticket.")
    if token.startswith("x"):
        try:
            return bytes.fromhex(token[1:]).decode()
        except ValueError:
            return None
    return token[1:] if token.startswith("p") and len(token) > 1 else None


def as_email(message: MailMessage, sender: str, written_at: datetime | None = None) -> EmailMessage:
    """The MIME message to send: text and HTML alternatives, with the ids that make it one mail however often it
    is sent (a mail client shows one message per Message-ID)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = formataddr((message.to_name, message.to))
    mail["Subject"] = message.subject
    mail["Message-ID"] = message.message_id
    if written_at is not None:  # when it was scheduled: the same on every retry
        mail["Date"] = format_datetime(written_at)
    if message.references:
        mail["In-Reply-To"] = message.references[-1]
        mail["References"] = " ".join(message.references)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: an out-of-office answer must not come back to us
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail
