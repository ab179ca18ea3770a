"""The mails notify sends, as the people who get them read them: every kind renders in English with what it is
given, requesters read plain words (no desk jargon), the HTML part is escaped and a small valid document, a language
without templates gets the English ones, and the MIME message threads the mails of one ticket."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from html import unescape
from html.parser import HTMLParser
from typing import Any

from notify import mails

Mail = mails.Mail

TICKET_ID = "3f2a9c1e-5b7d-4c1a-9e2f-0a1b2c3d4e5f"
REFERENCE = f"[#{TICKET_ID}]"
LINK = f"https://help.example.com/requests/{TICKET_ID}"
RATE_LINK = f"{LINK}/rate"
TITLE = "Printer on the 2nd floor only prints blank pages"
PROMISE = "We answer within 4 working hours and solve it within 2 working days (Mon-Fri 08:00-17:00, Europe/Berlin)."
REPLY_BODY = "Hello Anna,\n\nplease switch the printer off and on again.\n  Then print one test page for us."
HOSTILE = '<script>alert("hi")</script> & <b>bold</b>'

REQUESTER_KINDS = (Mail.RECEIVED, Mail.REPLY, Mail.WAITING_FOR_YOU, Mail.RESOLVED)
STAFF_KINDS = (Mail.ASSIGNED, Mail.SLA_WARNING, Mail.SLA_BREACHED, Mail.ESCALATED)

BANNED_JARGON = (
    "SLA",
    "P1",
    "P2",
    "P3",
    "P4",
    "ticket id",
    "ticket",
    "tickets",
    "escalation",
    "escalated",
    "escalate",
    "tier",
    "queue",
    "incident",
    "assignee",
    "assigned",
    "priority",
)
#: Any banned word, whatever its case, as a whole word (the words of "ticket id" apart by any whitespace).
_ALTERNATIVES = "|".join(r"\s+".join(map(re.escape, word.split())) for word in BANNED_JARGON)
JARGON = re.compile(rf"\b(?:{_ALTERNATIVES})\b", re.I)


def extras(kind: Mail) -> dict[str, Any]:
    """What each kind is given on top of person, ticket and desk_name: realistic, and free of desk jargon."""
    return {
        Mail.RECEIVED: {"promise": PROMISE},
        Mail.REPLY: {"reply": {"author": "Jonas Keller", "body": REPLY_BODY}},
        Mail.WAITING_FOR_YOU: {"reason": "Please send us a photo of the printer's display."},
        Mail.RESOLVED: {"reason": "We replaced the empty toner cartridge.", "rate_link": RATE_LINK},
        Mail.ASSIGNED: {"priority_words": "high", "reason": "least loaded among skilled on-shift tier-1"},
        Mail.SLA_WARNING: {"metric_words": "first response", "due": "Thu 3 Dec 2026, 14:00 UTC", "share_used": 75},
        Mail.SLA_BREACHED: {
            "metric_words": "resolution",
            "due": "Fri 4 Dec 2026, 09:30 UTC",
            "client_id": "acme",
            "promise": "service vpn (version 2)",
        },
        Mail.ESCALATED: {"from_tier": 1, "to_tier": 2, "reason": "no fix found within 2 hours on tier 1"},
    }[kind]


def a_context(kind: Mail, title: str = TITLE, **overrides: Any) -> dict[str, Any]:
    return {
        "person": {"name": "Anna Berg"},
        "ticket": {"id": TICKET_ID, "title": title, "reference": REFERENCE, "link": LINK},
        "desk_name": "IT help desk",
        **extras(kind),
        **overrides,
    }


def expected_values(kind: Mail) -> list[str]:
    """What of a kind's own context its mail must show."""
    given = extras(kind)
    return {
        Mail.RECEIVED: [PROMISE],
        Mail.REPLY: ["Jonas Keller", REPLY_BODY],
        Mail.WAITING_FOR_YOU: [given.get("reason", "")],
        Mail.RESOLVED: [given.get("reason", ""), RATE_LINK],
        Mail.ASSIGNED: ["high", "least loaded among skilled on-shift tier-1"],
        Mail.SLA_WARNING: ["first response", "Thu 3 Dec 2026, 14:00 UTC", "75%"],
        Mail.SLA_BREACHED: ["resolution", "Fri 4 Dec 2026, 09:30 UTC", "acme", "service vpn (version 2)"],
        Mail.ESCALATED: ["tier 1", "tier 2", "no fix found within 2 hours on tier 1"],
    }[kind]


def visible_text(html: str) -> str:
    """The HTML as a reader sees it: tags (and with them link targets) dropped, entities decoded."""
    return unescape(re.sub(r"<[^>]*>", " ", html))


def pre_wrapped(html: str) -> list[str]:
    """The text of every element whose style keeps line breaks."""
    found = re.findall(r"<(\w+)\b[^>]*white-space:\s*pre-wrap[^>]*>(.*?)</\1>", html, re.S)
    return [unescape(inner) for _, inner in found]


class DocumentChecker(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.doctype = ""
        self.open: list[str] = []
        self.seen: list[str] = []
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.seen.append(tag)
        if tag in ("style", "script", "link") or "class" in names:
            self.problems.append(f"<{tag}> not inline-styled")
        if tag == "a":
            self.links.append(names.get("href") or "")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def check_document(html: str, *links: str) -> None:
    checker = DocumentChecker()
    checker.feed(html)
    checker.close()
    assert html.lower().startswith("<!doctype html>")
    assert checker.doctype.lower() == "doctype html"
    assert checker.seen[:1] == ["html"] and "body" in checker.seen and "title" in checker.seen
    assert not checker.problems, checker.problems
    assert not checker.open, f"left open: {checker.open}"
    for link in links:
        assert link in checker.links, f"{link} is no <a href>"


def test_every_kind_has_an_english_text_and_html_template() -> None:
    names = {path.name for path in (mails.TEMPLATES / "en").iterdir()}
    assert names == {f"{kind.value}.{part}.j2" for kind in Mail for part in ("txt", "html")}


def test_every_kind_renders_its_reference_title_and_own_values() -> None:
    for kind in Mail:
        rendered = mails.render(kind, "en", a_context(kind))
        assert REFERENCE in rendered.subject, kind
        assert TITLE in rendered.subject, kind
        assert "\n" not in rendered.subject, kind
        assert not rendered.text.startswith("Subject:") and rendered.text.strip(), kind
        for part in (rendered.text, unescape(rendered.html)):
            assert TITLE in part, kind
            assert "Anna Berg" in part and "IT help desk" in part, kind
            assert LINK in part, kind
            for value in expected_values(kind):
                assert value in part, (kind, value)
        check_document(rendered.html, LINK, *([RATE_LINK] if kind is Mail.RESOLVED else []))


def test_a_reply_keeps_its_line_breaks_in_html() -> None:
    rendered = mails.render(Mail.REPLY, "en", a_context(Mail.REPLY))
    assert REPLY_BODY in rendered.text
    assert REPLY_BODY in pre_wrapped(rendered.html)
    assert "reply to this mail" in rendered.text and "reply to this mail" in visible_text(rendered.html)


def test_markup_from_the_context_is_escaped_in_html_and_kept_in_text() -> None:
    hostile_extras = {
        Mail.REPLY: {"reply": {"author": "Jonas Keller", "body": f"Try this:\n{HOSTILE}"}},
        Mail.WAITING_FOR_YOU: {"reason": HOSTILE},
        Mail.RESOLVED: {"reason": HOSTILE, "rate_link": RATE_LINK},
        Mail.ASSIGNED: {"priority_words": "urgent", "reason": HOSTILE},
        Mail.ESCALATED: {"from_tier": 1, "to_tier": 2, "reason": HOSTILE},
    }
    for kind in Mail:
        context = a_context(kind, title=f"Printer {HOSTILE}", **hostile_extras.get(kind, {}))
        rendered = mails.render(kind, "en", context)
        assert HOSTILE in rendered.subject, kind
        assert f"Printer {HOSTILE}" in rendered.text, kind
        assert "<script>" not in rendered.html and "<b>" not in rendered.html, kind
        assert "&lt;script&gt;" in rendered.html and "&amp;" in rendered.html, kind
        assert f"Printer {HOSTILE}" in unescape(rendered.html), kind
        check_document(rendered.html, LINK)
    reply = mails.render(Mail.REPLY, "en", a_context(Mail.REPLY, reply=hostile_extras[Mail.REPLY]["reply"]))
    assert f"Try this:\n{HOSTILE}" in reply.text
    assert f"Try this:\n{HOSTILE}" in pre_wrapped(reply.html)


def test_a_title_over_several_lines_gives_a_one_line_subject() -> None:
    rendered = mails.render(Mail.RECEIVED, "en", a_context(Mail.RECEIVED, title="Printer\r\nbroken   again"))
    assert rendered.subject.startswith("We have received your request")
    assert "Printer broken again" in rendered.subject and "\n" not in rendered.subject


def requester_variants() -> list[tuple[Mail, dict[str, Any]]]:
    """Every requester kind with each branch of its template taken."""
    return [
        (Mail.RECEIVED, a_context(Mail.RECEIVED)),
        (Mail.RECEIVED, a_context(Mail.RECEIVED, promise=None)),
        (Mail.REPLY, a_context(Mail.REPLY)),
        (Mail.WAITING_FOR_YOU, a_context(Mail.WAITING_FOR_YOU)),
        (Mail.WAITING_FOR_YOU, a_context(Mail.WAITING_FOR_YOU, reason="")),
        (Mail.RESOLVED, a_context(Mail.RESOLVED)),
        (Mail.RESOLVED, a_context(Mail.RESOLVED, reason="", rate_link="")),
    ]


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    return [value] if isinstance(value, str) else []


def test_the_jargon_pattern_catches_what_it_should() -> None:
    for sample in ("Your SLA", "prio p1", "the Ticket ID", "ticket\nid", "Escalated!", "tier 2", "the queue"):
        assert JARGON.search(sample), sample
    for sample in ("your request", "tiered", "Ticketstream", "SLAB", "P10", "prioritise"):
        assert not JARGON.search(sample), sample


def test_requesters_read_no_desk_jargon() -> None:
    for kind, context in requester_variants():
        assert not any(JARGON.search(text) for text in strings_in(context)), "the context itself must be clean"
        rendered = mails.render(kind, "en", context)
        for name, part in (
            ("subject", rendered.subject),
            ("text", rendered.text),
            ("html", visible_text(rendered.html)),
        ):
            found = JARGON.findall(part)
            assert not found, f"{kind.value} {name} says {found}"
            if name != "subject":
                assert "your request" in part, f"{kind.value} {name} does not say 'your request'"


def test_requester_mails_that_wait_for_an_answer_say_they_can_reply() -> None:
    for kind, context in requester_variants():
        rendered = mails.render(kind, "en", context)
        for part in (rendered.text, visible_text(rendered.html)):
            assert "reply to this mail" in part, kind


def test_waiting_for_you_without_a_reason_says_something_generic() -> None:
    rendered = mails.render(Mail.WAITING_FOR_YOU, "en", a_context(Mail.WAITING_FOR_YOU, reason=""))
    assert "tell us a little more" in rendered.text
    assert "What we need from you" not in rendered.text
    assert "tell us a little more" in visible_text(rendered.html)
    with_reason = mails.render(Mail.WAITING_FOR_YOU, "en", a_context(Mail.WAITING_FOR_YOU))
    assert "tell us a little more" not in with_reason.text


def test_resolved_says_how_to_carry_on_and_shows_no_empty_rating() -> None:
    rendered = mails.render(Mail.RESOLVED, "en", a_context(Mail.RESOLVED))
    assert "not solved" in rendered.text and "carry on" in rendered.text
    assert "1 (poor) to 5 (excellent)" in rendered.text
    bare = mails.render(Mail.RESOLVED, "en", a_context(Mail.RESOLVED, reason="", rate_link=""))
    assert "rate" not in bare.text and "rate" not in visible_text(bare.html)
    assert "Our note" not in bare.text and 'href=""' not in bare.html


def test_received_shows_the_promise_only_when_given() -> None:
    promised = mails.render(Mail.RECEIVED, "en", a_context(Mail.RECEIVED))
    assert PROMISE in promised.text and PROMISE in visible_text(promised.html)
    silent = mails.render(Mail.RECEIVED, "en", a_context(Mail.RECEIVED, promise=None))
    for part in (silent.text, visible_text(silent.html)):
        assert "None" not in part
        assert "within" not in part and "working" not in part
    assert silent.subject == promised.subject
    assert silent.text == promised.text.replace(f"\n{PROMISE}\n", "")


def test_a_language_without_templates_falls_back_to_english() -> None:
    assert "en" in mails.languages() and "xx" not in mails.languages()
    for kind in Mail:
        context = a_context(kind)
        fallback, english = mails.render(kind, "xx", context), mails.render(kind, "en", context)
        assert fallback.subject == english.subject, kind
        assert fallback == english, kind


def test_staff_mails_are_short_and_name_the_essentials() -> None:
    for kind in STAFF_KINDS:
        rendered = mails.render(kind, "en", a_context(kind))
        assert TICKET_ID in rendered.text, kind
        assert len(rendered.text.splitlines()) <= 20, kind
    warning = mails.render(Mail.SLA_WARNING, "en", a_context(Mail.SLA_WARNING))
    assert "first response" in warning.subject and "Thu 3 Dec 2026, 14:00 UTC" in warning.subject
    escalated = mails.render(Mail.ESCALATED, "en", a_context(Mail.ESCALATED))
    assert "from tier 1 to tier 2" in escalated.text
    assigned = mails.render(Mail.ASSIGNED, "en", a_context(Mail.ASSIGNED, reason=""))
    assert "Why you" not in assigned.text


def test_thread_ids_round_trip() -> None:
    domain = "mail.example.com"
    for ticket_id in (TICKET_ID, "ext:123@acme", "INC.2026-0042", "x41", "xyz", "p"):
        message_id = mails.thread_id(ticket_id, domain)
        assert message_id.startswith("<") and message_id.endswith(">")
        assert message_id.count("@") == 1 and ":" not in message_id, message_id
        assert mails.ticket_of_thread(message_id, domain) == ticket_id
        assert mails.ticket_of_thread(f"  {message_id}\n", domain.upper()) == ticket_id
        assert mails.ticket_of_thread(message_id, "other.example.com") is None
    assert mails.thread_id(TICKET_ID, domain) == f"<ticket.p{TICKET_ID}@{domain}>"  # readable where it can be
    assert mails.ticket_of_thread(f"<reply.{TICKET_ID}@{domain}>", domain) is None
    assert mails.ticket_of_thread(f"<ticket.{TICKET_ID}@other.example.com>", domain) is None


def test_as_email_is_a_threaded_multipart_alternative() -> None:
    rendered = mails.render(Mail.REPLY, "en", a_context(Mail.REPLY, person={"name": "Jürgen Weiß"}))
    thread = mails.thread_id(TICKET_ID, "mail.example.com")
    earlier = "<0c9d2f1a@mail.example.com>"
    message = mails.MailMessage(
        message_id="<5e1b7c3d@mail.example.com>",
        to="juergen.weiss@example.com",
        to_name="Jürgen Weiß",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        references=[thread, earlier],
    )
    mail = mails.as_email(message, "IT help desk <helpdesk@example.com>")
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Message-ID"] == "<5e1b7c3d@mail.example.com>"
    assert mail["In-Reply-To"] == earlier
    assert mail["References"] == f"{thread} {earlier}"
    assert mail["Auto-Submitted"] == "auto-generated"

    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)  # as it goes over the wire
    assert parsed["Subject"] == rendered.subject
    assert parsed["Message-ID"] == "<5e1b7c3d@mail.example.com>"
    assert parsed["In-Reply-To"] == earlier
    assert parsed["References"].split() == [thread, earlier]
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "Jürgen Weiß" in str(parsed["To"]) and "juergen.weiss@example.com" in str(parsed["To"])
    text_part, html_part = parsed.iter_parts()
    assert text_part.get_content() == rendered.text.replace("\r\n", "\n")
    assert html_part.get_content() == rendered.html


def test_as_email_without_references_starts_a_thread() -> None:
    rendered = mails.render(Mail.RECEIVED, "en", a_context(Mail.RECEIVED))
    message = mails.MailMessage(
        message_id="<1a2b@mail.example.com>",
        to="anna.berg@example.com",
        to_name="Anna Berg",
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )
    mail = mails.as_email(message, "helpdesk@example.com")
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["In-Reply-To"] is None and mail["References"] is None
    assert mail["Auto-Submitted"] == "auto-generated"
