"""Mail to ticket, the verdict alone (notify/gateway.py read_mail, pure): a new mail from a known person opens a
ticket, a reply to one of our threads becomes a public comment without the quoted mail, automatic mail is dropped,
and anything else is refused with an SMTP reply that says why."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from notify.directory import Directory
from notify.gateway import Drop, Refuse, Take, read_mail
from notify.mails import thread_id
from notify.settings import NotifySettings
from tests.builders import T0
from ticketstream_shared.contract.notify import PersonChanged, PersonRole
from ticketstream_shared.contract.requests import BODY_OF, inbound_ticket_id

TICKET = "3f2a9c1e-5b7d-4c1a-9e2f-0a1b2c3d4e5f"


@pytest.fixture
def settings(tmp_path: Path) -> NotifySettings:
    return NotifySettings(
        notify_secrets_key_file=tmp_path / "notify.key",
        api_keys_file="unused",
        mail_domain="desk.test",
        mail_client_domains="partner.example=partner",
    )


def person(person_id: str, email: str, client_id: str | None = None) -> PersonChanged:
    return PersonChanged(
        event_id=uuid.uuid4().hex,
        occurred_at=T0,
        producer="notify",
        correlation_id="test",
        changed_by="admin-key",
        person_id=person_id,
        data={"name": person_id.title(), "email": email, "role": PersonRole.REQUESTER, "client_id": client_id},
    )


@pytest.fixture
def directory() -> Directory:
    folded = Directory()
    for change in (
        person("anna", "Anna@Acme.example", client_id="acme"),
        person("pete", "pete@partner.example"),
        person("nora", "nora@nowhere.example"),
    ):
        folded.apply(change)
    return folded


def mail(
    body: str | None = "The printer on the 2nd floor prints blank pages.",
    sender: str = "Anna Example <anna@acme.example>",
    subject: str | None = "Printer prints blank pages",
    message_id: str | None = "<CAFx1234.5678@mail.acme.example>",
    html: str | None = None,
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "help@desk.test"
    if subject is not None:
        message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message["Date"] = format_datetime(T0)
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    if body is not None:
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    return message.as_bytes()


def read(directory: Directory, settings: NotifySettings, raw: bytes, mail_from: str = "anna@acme.example"):
    return read_mail(raw, mail_from, directory, settings)


# --- new requests ----------------------------------------------------------------------------------------------------


def test_a_new_mail_from_a_known_person_opens_a_ticket(directory, settings):
    verdict = read(directory, settings, mail())

    assert isinstance(verdict, Take)
    request = verdict.request
    assert request.type == "create_ticket"
    assert request.request_id == "CAFx1234.5678@mail.acme.example"
    assert request.ticket_id is None
    assert request.data == {
        "client_id": "acme",
        "requester_id": "anna",
        "title": "Printer prints blank pages",
        "description": "The printer on the 2nd floor prints blank pages.",
        "category": "email",
        "priority": "P3",
        "channel": "email",
    }
    assert verdict.key == inbound_ticket_id("CAFx1234.5678@mail.acme.example")
    BODY_OF["create_ticket"].model_validate(request.data)  # what intake takes


def test_the_sender_is_found_whatever_the_case_of_the_address(directory, settings):
    verdict = read(directory, settings, mail(sender="ANNA@ACME.EXAMPLE"))

    assert isinstance(verdict, Take)
    assert verdict.request.data["requester_id"] == "anna"


def test_a_subject_is_kept_on_one_line_and_a_missing_one_named(directory, settings):
    raw = (
        b"From: anna@acme.example\r\nTo: help@desk.test\r\nSubject: Printer\r\n  prints   blank pages\r\n"
        b"Message-ID: <folded-1@acme.example>\r\n\r\nBlank pages.\r\n"
    )
    folded = read(directory, settings, raw)
    missing = read(directory, settings, mail(subject=None))

    assert isinstance(folded, Take)
    assert folded.request.data["title"] == "Printer prints blank pages"
    assert isinstance(missing, Take)
    assert missing.request.data["title"] == "(no subject)"


def test_a_person_without_client_takes_the_client_of_their_mail_domain(directory, settings):
    verdict = read(directory, settings, mail(sender="Pete <pete@partner.example>"), mail_from="pete@partner.example")

    assert isinstance(verdict, Take)
    assert verdict.request.data["client_id"] == "partner"
    assert verdict.request.data["requester_id"] == "pete"


def test_a_person_without_client_or_mapped_domain_is_refused_naming_the_address(directory, settings):
    verdict = read(directory, settings, mail(sender="nora@nowhere.example"), mail_from="nora@nowhere.example")

    assert isinstance(verdict, Refuse)
    assert verdict.reply.startswith("550 ")
    assert "nora@nowhere.example" in verdict.reply


def test_an_unknown_sender_is_refused(directory, settings):
    verdict = read(directory, settings, mail(sender="Mallory <mallory@evil.example>"), mail_from="m@evil.example")

    assert isinstance(verdict, Refuse)
    assert verdict.reply.startswith("550 5.7.1")
    assert "mallory@evil.example" in verdict.reply


def test_a_mail_without_message_id_is_refused(directory, settings):
    verdict = read(directory, settings, mail(message_id=None))

    assert isinstance(verdict, Refuse)
    assert verdict.reply.startswith("550 ")
    assert "Message-ID" in verdict.reply


def test_a_mail_with_an_overlong_message_id_is_refused(directory, settings):
    verdict = read(directory, settings, mail(message_id=f"<{'x' * 200}@acme.example>"))

    assert isinstance(verdict, Refuse)
    assert "Message-ID" in verdict.reply


@pytest.mark.parametrize(
    "sender",
    ["anna@acme.example, pete@partner.example", "Anna <anna@acme.example>, Mallory <mallory@evil.example>"],
)
def test_a_mail_from_two_senders_is_refused(directory, settings, sender: str):
    verdict = read(directory, settings, mail(sender=sender))

    assert isinstance(verdict, Refuse)
    assert verdict.reply.startswith("550 ")
    assert "one sender" in verdict.reply


def test_a_mail_without_from_is_refused(directory, settings):
    raw = b"To: help@desk.test\r\nSubject: hi\r\nMessage-ID: <a@b.example>\r\n\r\nHello\r\n"

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Refuse)
    assert "one sender" in verdict.reply


# --- automatic mail ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Auto_Submitted": "auto-generated"},
        {"Auto_Submitted": "Auto-Replied; owner-email=anna@acme.example"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "list"},
        {"Precedence": "auto_reply"},
        {"X_Autoreply": "yes"},
    ],
    ids=lambda headers: "-".join(f"{name}:{value}" for name, value in headers.items()),
)
def test_automatic_mail_is_dropped(directory, settings, headers: dict[str, str]):
    verdict = read(directory, settings, mail(**headers))

    assert isinstance(verdict, Drop)


def test_a_mail_that_is_not_automatic_says_so(directory, settings):
    assert isinstance(read(directory, settings, mail(Auto_Submitted="no")), Take)


def test_a_delivery_report_is_dropped(directory, settings):
    raw = (
        b"From: MAILER-DAEMON@acme.example\r\n"
        b"To: help@desk.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <report-1@acme.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        b"\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"Your mail could not be delivered.\r\n"
        b"--b1\r\n"
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@acme.example\r\n"
        b"Action: failed\r\n"
        b"Status: 5.1.1\r\n"
        b"--b1--\r\n"
    )

    verdict = read(directory, settings, raw, mail_from="anna@acme.example")

    assert isinstance(verdict, Drop)


@pytest.mark.parametrize("mail_from", ["", "<>"])
def test_a_bounce_from_the_null_sender_is_dropped(directory, settings, mail_from: str):
    verdict = read(directory, settings, mail(), mail_from=mail_from)

    assert isinstance(verdict, Drop)


def test_automatic_mail_is_dropped_before_anything_else_is_checked(directory, settings):
    verdict = read(directory, settings, mail(sender="stranger@evil.example", message_id=None), mail_from="<>")

    assert isinstance(verdict, Drop)


# --- replies ----------------------------------------------------------------------------------------------------------


def test_a_reply_in_our_thread_becomes_a_public_comment(directory, settings):
    raw = mail(
        body="It works again, thank you!",
        subject="Re: We have received your request",
        message_id="<reply-1@mail.acme.example>",
        In_Reply_To="<some-delivery@desk.test>",
        References=f"{thread_id(TICKET, 'desk.test')} <some-delivery@desk.test>",
    )

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    request = verdict.request
    assert request.type == "add_comment"
    assert request.ticket_id == TICKET
    assert request.request_id == "reply-1@mail.acme.example"
    assert request.data == {"author_id": "anna", "body": "It works again, thank you!", "public": True}
    assert verdict.key == TICKET
    BODY_OF["add_comment"].model_validate(request.data)  # what intake takes


def test_a_reply_found_by_in_reply_to(directory, settings):
    raw = mail(body="Still broken.", In_Reply_To=thread_id(TICKET, "desk.test"))

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    assert verdict.request.type == "add_comment"
    assert verdict.request.ticket_id == TICKET


def test_a_reply_found_by_the_reference_in_the_subject(directory, settings):
    raw = mail(body="Here is the photo you asked for.", subject=f"Re: We need something from you [#{TICKET}]")

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    assert verdict.request.type == "add_comment"
    assert verdict.request.ticket_id == TICKET
    assert verdict.key == TICKET
    assert verdict.request.data["body"] == "Here is the photo you asked for."


def test_a_thread_of_another_domain_does_not_name_a_ticket(directory, settings):
    raw = mail(References=thread_id(TICKET, "elsewhere.example"))

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    assert verdict.request.type == "create_ticket"


def test_a_reply_keeps_only_its_own_text(directory, settings):
    body = (
        "Thanks, that fixed it.\n"
        "\n"
        "Anna\n"
        "\n"
        "On Mon, 2 Mar 2026 at 10:00, IT help desk <help@desk.test> wrote:\n"
        "> Hello Anna,\n"
        ">\n"
        "> please switch the printer off and on again.\n"
        "Best regards,\n"
        "IT help desk\n"
    )

    verdict = read(directory, settings, mail(body=body, subject=f"Re: [#{TICKET}]"))

    assert isinstance(verdict, Take)
    assert verdict.request.data["body"] == "Thanks, that fixed it.\n\nAnna"


def test_quoted_lines_between_answers_are_left_out(directory, settings):
    body = "> Which printer?\nThe one on the 2nd floor.\n> Since when?\nSince Monday.\n"

    verdict = read(directory, settings, mail(body=body, subject=f"Re: [#{TICKET}]"))

    assert isinstance(verdict, Take)
    assert verdict.request.data["body"] == "The one on the 2nd floor.\nSince Monday."


def test_an_outlook_style_quote_is_left_out(directory, settings):
    body = "Done.\n\n-----Original Message-----\nFrom: IT help desk\nSent: Monday\n\nPlease reboot.\n"

    verdict = read(directory, settings, mail(body=body, subject=f"RE: [#{TICKET}]"))

    assert isinstance(verdict, Take)
    assert verdict.request.data["body"] == "Done."


@pytest.mark.parametrize(
    "body",
    [
        "> I only quote.\n> Nothing else.\n",
        "On Mon, 2 Mar 2026 at 10:00, IT help desk <help@desk.test> wrote:\n> Hello\n",
        "\n\n   \n",
    ],
    ids=["quoted", "header-then-quoted", "blank"],
)
def test_a_reply_with_no_text_of_its_own_is_refused(directory, settings, body: str):
    verdict = read(directory, settings, mail(body=body, subject=f"Re: [#{TICKET}]"))

    assert isinstance(verdict, Refuse)
    assert verdict.reply.startswith("550 ")


# --- html -------------------------------------------------------------------------------------------------------------


def test_the_text_of_an_html_only_mail_is_taken(directory, settings):
    html = "<html><body><p>The printer &amp; the scanner</p><p>are both<br>offline.</p></body></html>"

    verdict = read(directory, settings, mail(body=None, html=html))

    assert isinstance(verdict, Take)
    description = verdict.request.data["description"]
    assert "<" not in description
    assert [line.strip() for line in description.splitlines() if line.strip()] == [
        "The printer & the scanner",
        "are both",
        "offline.",
    ]


def test_the_plain_part_is_preferred_to_the_html_one(directory, settings):
    raw = mail(body="Plain words.", html="<p>HTML words.</p>")

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    assert verdict.request.data["description"] == "Plain words."


def test_the_style_and_title_of_an_html_mail_are_not_its_text(directory, settings):
    html = (
        "<html><head><title>Message</title><style>p { color: red; font-family: Calibri; }</style></head>"
        "<body><p>The printer is offline.</p></body></html>"
    )

    verdict = read(directory, settings, mail(body=None, html=html))

    assert isinstance(verdict, Take)
    assert verdict.request.data["description"] == "The printer is offline."


def test_an_html_reply_is_taken_without_the_quote(directory, settings):
    html = (
        "<div>Works now, thanks.</div>"
        "<div>On Mon, 2 Mar 2026 at 10:00, IT help desk &lt;help@desk.test&gt; wrote:</div>"
        "<blockquote><div>Please reboot.</div></blockquote>"
    )

    verdict = read(directory, settings, mail(body=None, html=html, subject=f"Re: [#{TICKET}]"))

    assert isinstance(verdict, Take)
    assert verdict.request.data["body"] == "Works now, thanks."


def test_a_mail_without_text_opens_a_ticket_with_an_empty_description(directory, settings):
    raw = (
        b"From: anna@acme.example\r\nTo: help@desk.test\r\nSubject: Call me\r\n"
        b"Message-ID: <empty-1@acme.example>\r\n\r\n"
    )

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take)
    assert verdict.request.data["title"] == "Call me"
    assert verdict.request.data["description"] == ""


def test_a_mail_in_an_unknown_charset_gets_a_verdict(directory, settings):
    """Some mailers label 8-bit text they cannot name 'unknown-8bit': the gateway answers it like any other mail
    (taken with what can be read, or refused with a reason), it does not fail on it."""
    raw = (
        b"From: anna@acme.example\r\nTo: help@desk.test\r\nSubject: Drucker\r\n"
        b"Message-ID: <charset-1@acme.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=unknown-8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Der Drucker druckt nur leere Seiten \xe4\xf6\xfc.\r\n"
    )

    verdict = read(directory, settings, raw)

    assert isinstance(verdict, Take | Refuse)
    if isinstance(verdict, Take):
        assert verdict.request.data["description"].startswith("Der Drucker druckt nur leere Seiten")
