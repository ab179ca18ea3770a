"""Intake's whole HTTP surface against the real broker: lifecycle, listing, timeline, and every role on every
endpoint."""

import html
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from tests.builders import a_clock_event
from tests.integration.conftest import NEW_TICKET
from tests.keys import (
    ACME_MANAGER,
    ADMIN,
    ANN,
    INTEGRATION,
    MANAGER,
    MARIA,
    REQUESTER,
    TECHNICIAN,
    UMBRELLA_MANAGER,
    bearer,
)
from tests.polling import eventually
from tests.publishing import publish
from ticketstream_shared.contract.assignment import TicketAssigned
from ticketstream_shared.contract.sla import SlaMetric

pytestmark = pytest.mark.integration


def open_ticket(intake, key=ADMIN, **fields):
    answer = intake.post("/v1/tickets", json={**NEW_TICKET, **fields}, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


#: A form sent by the browser from the service's own page.
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}


def sign_in(intake, key, page):
    """The session's intake signed in like a browser (the caller clears its cookie after, for the other tests)."""
    signed = intake.post("/tickets/session", content=f"key={key}&next={page}", headers=FORM, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == page, signed.text


def sent(intake, page, form, **fields):
    """`form` of `page` sent as the browser sends it: its hidden fields (the request key the page drew for it, an
    article's id) and `fields`."""
    shown = intake.get(page)
    assert shown.status_code == 200, shown.text
    found = re.search(rf'<form id="{form}-form" method="post" action="([^"]+)">(.*?)</form>', shown.text, re.S)
    assert found, f"no {form} form on the page"
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', found[2]))
    assert hidden["request_key"].startswith("page-")
    body = urlencode({**{name: html.unescape(value) for name, value in hidden.items()}, **fields})
    return intake.post(html.unescape(found[1]), content=body, headers=FORM, follow_redirects=False), body


def test_a_ticket_lives_through_its_lifecycle_over_http(intake):
    ticket = open_ticket(intake)
    path = f"/v1/tickets/{ticket}"
    assert intake.post(f"{path}/status", json={"status": "in_progress"}, headers=bearer(TECHNICIAN)).status_code == 200
    internal = {"author_id": "tech-1", "body": "Looks like the driver", "public": False}
    assert intake.post(f"{path}/comments", json=internal, headers=bearer(TECHNICIAN)).status_code == 201
    reply = {"author_id": "tech-1", "body": "Please restart", "public": True}
    assert intake.post(f"{path}/comments", json=reply, headers=bearer(TECHNICIAN)).status_code == 201
    assert (
        intake.post(f"{path}/status", json={"status": "waiting_on_customer"}, headers=bearer(TECHNICIAN)).status_code
        == 200
    )
    answer = {"author_id": "alice", "body": "Restarted, still broken", "public": True}
    assert intake.post(f"{path}/comments", json=answer, headers=bearer(REQUESTER)).status_code == 201
    assert intake.get(path, headers=bearer(ADMIN)).json()["status"] == "open", "the answer puts it back in the queue"

    worklog = intake.post(
        f"{path}/worklogs",
        json={"technician_id": "tech-1", "minutes": 60, "billable": True},
        headers=bearer(TECHNICIAN),
    ).json()
    corrected = intake.post(
        f"{path}/worklogs/{worklog['id']}/correction",
        json={
            "technician_id": "tech-1",
            "minutes": 40,
            "billable": True,
            "performed_at": worklog["performed_at"],
            "reason": "overestimated",
        },
        headers=bearer(TECHNICIAN),
    )
    assert (corrected.status_code, corrected.json()["minutes"], corrected.json()["corrections"]) == (200, 40, 1)
    mistaken = intake.post(
        f"{path}/worklogs",
        json={"technician_id": "tech-1", "minutes": 25, "billable": True},
        headers=bearer(TECHNICIAN),
    ).json()
    void = {"reason": "logged on the wrong ticket"}
    voided = intake.post(f"{path}/worklogs/{mistaken['id']}/void", json=void, headers=bearer(TECHNICIAN))
    assert (voided.status_code, voided.json()["voided"]) == (200, True)
    again = intake.post(f"{path}/worklogs/{mistaken['id']}/void", json=void, headers=bearer(TECHNICIAN))
    assert again.status_code == 409, "a voided worklog stays voided"
    assert (
        intake.post(f"{path}/worklogs/{mistaken['id']}/void", json=void, headers=bearer(REQUESTER)).status_code == 403
    )

    stale = intake.patch(path, json={"priority": "P1"}, headers={**bearer(MANAGER), "If-Match": '"1"'})
    assert stale.status_code == 409
    current = intake.get(path, headers=bearer(ADMIN)).headers["ETag"]
    assert (
        intake.patch(path, json={"priority": "P1"}, headers={**bearer(MANAGER), "If-Match": current}).status_code == 200
    )
    assert intake.post(f"{path}/status", json={"status": "resolved"}, headers=bearer(TECHNICIAN)).status_code == 200
    illegal = intake.post(f"{path}/status", json={"status": "waiting_on_customer"}, headers=bearer(TECHNICIAN))
    assert illegal.status_code == 409
    assert intake.post(f"{path}/csat", json={"rating": 5}, headers=bearer(REQUESTER)).status_code == 201
    assert intake.post(f"{path}/csat", json={"rating": 1}, headers=bearer(REQUESTER)).status_code == 409

    seen_by_requester = intake.get(f"{path}/comments", headers=bearer(REQUESTER)).json()["comments"]
    assert [c["body"] for c in seen_by_requester] == ["Please restart", "Restarted, still broken"]
    assert len(intake.get(f"{path}/comments", headers=bearer(TECHNICIAN)).json()["comments"]) == 3
    final = intake.get(path, headers=bearer(ADMIN)).json()
    assert (final["status"], final["priority"], final["worklog_minutes"], final["csat"]) == ("resolved", "P1", 40, 5)

    lines = [entry["text"] for entry in intake.get(f"{path}/timeline", headers=bearer(REQUESTER)).json()["timeline"]]
    assert lines[0].startswith("We received your request")
    assert "We are waiting for your answer." in lines and "You replied." in lines
    assert not any("driver" in line or "minutes" in line for line in lines), "nothing internal in the timeline"


def test_a_requester_follows_the_request_on_its_page(intake):
    """Where the links in notify's mails point: the request, what happened in plain words, the answers it was given
    (nothing internal), behind a sign-in that comes back to it; another person's request is not shown."""
    ticket = open_ticket(intake, title="Printer <b>jams</b> on floor 3")
    path = f"/v1/tickets/{ticket}"
    internal = {"author_id": "tech-1", "body": "Looks like the fuser", "public": False}
    assert intake.post(f"{path}/comments", json=internal, headers=bearer(TECHNICIAN)).status_code == 201
    reply = {"author_id": "tech-1", "body": "Please open tray 2 & take out the torn sheet.", "public": True}
    assert intake.post(f"{path}/comments", json=reply, headers=bearer(TECHNICIAN)).status_code == 201
    try:
        asked = intake.get(f"/tickets/{ticket}")
        assert asked.status_code == 401 and f'name="next" value="/tickets/{ticket}"' in asked.text
        sign_in(intake, REQUESTER, f"/tickets/{ticket}")
        page = intake.get(f"/tickets/{ticket}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<h1>Printer &lt;b&gt;jams&lt;/b&gt; on floor 3</h1>" in page.text
        assert "We have received your request and will look into it." in page.text
        assert "A technician replied." in page.text and "Please open tray 2 &amp; take out the torn sheet." in page.text
        assert "fuser" not in page.text, "nothing internal on the requester's page"

        someone_elses = open_ticket(intake, requester_id="bob")
        refused = intake.get(f"/tickets/{someone_elses}")
        assert refused.status_code == 403 and "This request is not one your key may see." in refused.text
        assert intake.get("/tickets/no-such-request").status_code == 404

        mine = intake.get("/tickets")  # where a sign-in asked for no request in particular lands
        assert mine.status_code == 200 and "<h1>Your requests</h1>" in mine.text
        listed = re.findall(r'<li><a href="/tickets/([^"]+)">', mine.text)
        assert ticket in listed and someone_elses not in listed
        assert f'<a href="/tickets/{ticket}">Printer &lt;b&gt;jams&lt;/b&gt; on floor 3</a>' in mine.text
        newest = intake.post("/v1/tickets", json={**NEW_TICKET, "title": "Newest"}, headers=bearer(REQUESTER))

        def first_listed() -> bool:  # the list reads the store, which has the new request once read back from the log
            return re.findall(r'<li><a href="/tickets/([^"]+)">', intake.get("/tickets").text)[0] == newest.json()["id"]

        eventually(first_listed, timeout_s=10, what="the newest request listed first")
        sign_in(intake, REQUESTER, "/tickets")
        system = intake.get("/tickets", headers=bearer(INTEGRATION))
        assert system.status_code == 200 and "the desk&#39;s work; this key is neither" in system.text

        assert '<form id="sign-out-form" method="post" action="/tickets/session/end">' in mine.text
        out = intake.post("/tickets/session/end", headers=FORM, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/tickets"
        assert intake.get(f"/tickets/{ticket}").status_code == 401, "signed out: the key is forgotten"
    finally:
        intake.cookies.clear()


def test_a_key_that_names_its_client_and_requester_need_not_repeat_them(intake):
    """A requester's key names its client and person, a scoped key its client: a new ticket takes them from the key
    when the body leaves them out, and asks for what the key does not name."""
    what = {"title": "Mouse is gone", "category": "hardware", "priority": "P4"}
    keyed = {**bearer(REQUESTER), "Idempotency-Key": uuid.uuid4().hex}
    mine = intake.post("/v1/tickets", json=what, headers=keyed)
    assert mine.status_code == 201, mine.text
    assert (mine.json()["client_id"], mine.json()["requester_id"]) == ("acme", "alice")
    # The same request spelled out is the same request: replayed under its key, not a 409.
    spelled_out = {**what, "client_id": "acme", "requester_id": "alice"}
    again = intake.post("/v1/tickets", json=spelled_out, headers=keyed)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == mine.json()["id"]

    for_bob = intake.post("/v1/tickets", json={**what, "requester_id": "bob"}, headers=bearer(ACME_MANAGER))
    assert for_bob.status_code == 201 and for_bob.json()["client_id"] == "acme"
    no_one = intake.post("/v1/tickets", json=what, headers=bearer(ACME_MANAGER))
    assert no_one.status_code == 422 and [e["field"] for e in no_one.json()["errors"]] == ["requester_id"]
    no_client = intake.post("/v1/tickets", json={**what, "requester_id": "bob"}, headers=bearer(ADMIN))
    assert no_client.status_code == 422 and [e["field"] for e in no_client.json()["errors"]] == ["client_id"]
    someone_else = intake.post("/v1/tickets", json={**what, "requester_id": "bob"}, headers=bearer(REQUESTER))
    assert someone_else.status_code == 403


def test_a_requester_answers_confirms_and_rates_on_the_page(intake):
    """The page's forms act as the API does, for the request's requester only: an answer to a waiting request puts
    it back in the queue, and sent twice is one answer; a resolution confirmed closes it; the help is rated once. A
    refusal is the page saying why, with what was written kept; another site's page cannot send a form."""
    ticket = open_ticket(intake, title="VPN drops every hour")
    path, page = f"/v1/tickets/{ticket}", f"/tickets/{ticket}"
    for status in ("in_progress", "waiting_on_customer"):
        assert intake.post(f"{path}/status", json={"status": status}, headers=bearer(TECHNICIAN)).status_code == 200

    def comments():
        return [
            (c["author_id"], c["body"])
            for c in intake.get(f"{path}/comments", headers=bearer(ADMIN)).json()["comments"]
        ]

    def status():
        return intake.get(path, headers=bearer(ADMIN)).json()["status"]

    try:
        sign_in(intake, REQUESTER, page)
        words = "It drops at <b>:05</b> past & stays down"
        answered, body = sent(intake, page, "reply", words=words)
        assert answered.status_code == 303 and answered.headers["location"] == page, answered.text
        assert intake.post(f"{page}/reply", content=body, headers=FORM, follow_redirects=False).status_code == 303
        assert comments() == [("alice", words)], "sent twice, answered once"
        assert status() == "open", "the answer puts it back in the queue"
        shown = intake.get(page).text
        assert "You replied." in shown and "It drops at &lt;b&gt;:05&lt;/b&gt; past &amp; stays down" in shown

        empty, _ = sent(intake, page, "reply", words="   ")
        assert empty.status_code == 422 and "Your answer: String should have at least 1 character." in empty.text
        too_long, _ = sent(intake, page, "reply", words="a long story " * 2000)
        assert (
            too_long.status_code == 422 and "Your answer: String should have at most 20000 characters" in too_long.text
        )
        assert "a long story " * 2000 in too_long.text, "what was written is kept"
        forged = {**FORM, "Sec-Fetch-Site": "cross-site"}
        elsewhere = intake.post(f"{page}/reply", content=urlencode({"words": "forged"}), headers=forged)
        assert elsewhere.status_code == 403
        not_mine = open_ticket(intake, requester_id="bob")
        theirs = intake.post(f"/tickets/{not_mine}/reply", content=urlencode({"words": "hi"}), headers=FORM)
        assert theirs.status_code == 403 and "not one your key may see" in theirs.text
        unknown = intake.post(f"{page}/erase", content=urlencode({"words": "hi"}), headers=FORM)
        assert unknown.status_code == 404 and "nothing called erase to do" in unknown.text
        assert comments() == [("alice", words)], "nothing refused was recorded"

        assert 'id="status-form"' not in shown and 'id="rating-form"' not in shown, "nothing to choose before"
        hand_made = urlencode({"status": "in_progress", "request_key": "by-hand"})
        moved = intake.post(f"{page}/status", content=hand_made, headers=FORM)
        assert moved.status_code == 403 and "requesters may reopen their ticket or confirm its resolution" in moved.text
        assert status() == "open"

        assert intake.post(f"{path}/status", json={"status": "resolved"}, headers=bearer(TECHNICIAN)).status_code == 200
        shown = intake.get(page).text
        assert "Is it solved?" in shown and 'id="rating-form"' in shown
        rate_link = intake.get(f"{page}/rate", follow_redirects=False)  # the link of notify's "solved" mail
        assert rate_link.status_code == 303 and rate_link.headers["location"] == f"{page}#rating-form"
        confirmed, _ = sent(intake, page, "status", status="closed")
        assert confirmed.status_code == 303 and status() == "closed"
        rated, _ = sent(intake, page, "rating", rating="4", comment="Quick, thanks")
        assert rated.status_code == 303
        assert intake.get(path, headers=bearer(ADMIN)).json()["csat"] == 4
        shown = intake.get(page).text
        assert 'id="rating-form"' not in shown and 'id="reply-form"' not in shown and "Reopen it" in shown
        again = intake.post(f"{page}/rating", content=urlencode({"rating": "1", "request_key": "again"}), headers=FORM)
        assert again.status_code == 409 and 'id="notice"' in again.text
        assert intake.get(path, headers=bearer(ADMIN)).json()["csat"] == 4

        intake.cookies.clear()
        system = intake.post(f"{page}/status", content="status=open", headers={**FORM, **bearer(INTEGRATION)})
        assert system.status_code == 403 and "Only the person who asked, and the people of the desk" in system.text
        assert status() == "closed"
    finally:
        intake.cookies.clear()


def test_the_desk_sees_its_open_work_the_most_urgent_first_and_a_technician_their_own(intake, kafka_bootstrap):
    """Where the sign-in of the desk lands: the open requests its key may see, the most urgent first, then the
    oldest; nothing done with; a technician's own above them. Client umbrella's tickets are this test's only."""

    def opened(priority, title):
        return open_ticket(intake, client_id="umbrella", requester_id="uma", priority=priority, title=title)

    normal, critical, high = opened("P3", "Normal"), opened("P1", "Critical"), opened("P2", "High <b>")
    older_critical = critical
    newer_critical = opened("P1", "Critical too")
    done = opened("P1", "Done with")
    assert intake.post(f"/v1/tickets/{done}/status", json={"status": "resolved"}, headers=bearer(TECHNICIAN)).is_success
    elsewhere = open_ticket(intake, title="Another client's")
    publish(kafka_bootstrap, [assigned(normal, "umbrella", "ann"), assigned(high, "umbrella", "ann")])

    def queue(key, asked=""):
        page = intake.get(f"/tickets{asked}", headers=bearer(key))
        assert page.status_code == 200, page.text
        return page.text

    def listed(page, list_id):
        found = re.search(rf'<ol id="{list_id}">(.*?)</ol>', page, re.S)
        return re.findall(r'<li><a href="/tickets/([^"]+)">', found[1]) if found else []

    def hers() -> list[str]:  # ann may have others' tickets too: tests of notify assign to her
        return [ticket for ticket in listed(queue(ANN), "mine") if ticket in (normal, critical, high)]

    # The queue reads the store, which has a change once read back from the log (and an assignment once read from
    # assignment.events).
    eventually(lambda: hers() == [high, normal], timeout_s=10, what="the assignments read from assignment.events")
    in_order = [older_critical, newer_critical, high, normal]
    eventually(lambda: listed(queue(UMBRELLA_MANAGER), "queue") == in_order, timeout_s=10, what="the open work")
    page = queue(UMBRELLA_MANAGER)
    assert done not in page and elsewhere not in page and 'id="mine"' not in page, "open work, of its client only"
    assert "High &lt;b&gt;</a><time>P2, new; umbrella, uma; since" in page and "assigned to ann</time>" in page
    urgent = queue(UMBRELLA_MANAGER, "?priority=P1&client_id=")
    assert listed(urgent, "queue") == [older_critical, newer_critical] and '<option value="P1" selected>' in urgent
    assert listed(queue(ADMIN, "?client_id=umbrella"), "queue") == in_order, "a key of no client picks one"
    assert 'id="client"' not in page, "a scoped key's work is its client's"
    refusals = [("?client_id=acme", 403, "this key is scoped to client umbrella"), ("?priority=P9", 422, "How urgent")]
    for asked, status, why in refusals:
        refused = intake.get(f"/tickets{asked}", headers=bearer(UMBRELLA_MANAGER))
        assert refused.status_code == status and why in refused.text, refused.text
        assert listed(refused.text, "queue") == in_order, "the refusal said, the work shown whole"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("intake.portal.QUEUED", 2)
        first = queue(UMBRELLA_MANAGER)
        assert listed(first, "queue") == [older_critical, newer_critical] and "The first 2 are listed here." in first


def test_the_requests_page_says_what_was_promised_as_sla_last_timed_it(intake, kafka_bootstrap):
    """sla times the request on sla.events; its page (the requester's and the desk's) says what is promised and by
    when, and stops saying it once done."""
    ticket = open_ticket(intake, key=REQUESTER)
    page = f"/tickets/{ticket}"
    due = datetime(2026, 12, 9, 16, 30, tzinfo=UTC)
    publish(kafka_bootstrap, [a_clock_event("sla.clock_started", ticket, metric, due) for metric in SlaMetric])

    def promised(key=REQUESTER):
        found = re.search(r'<ul id="promises">(.*?)</ul>', intake.get(page, headers=bearer(key)).text, re.S)
        return re.findall(r"<li>([^<]*)</li>", found[1]) if found else []

    promises = ("a first answer", "a reply to your message", "a solution")
    every = [f"We promised {words} by 9 Dec 2026, 16:30 UTC." for words in promises]
    eventually(lambda: promised() == every, timeout_s=10, what="the clocks read from sla.events")
    assert promised(TECHNICIAN) == every, "the desk reads the same"
    publish(kafka_bootstrap, [a_clock_event("sla.met", ticket, SlaMetric.FIRST_RESPONSE, due),
                              a_clock_event("sla.met", ticket, SlaMetric.NEXT_REPLY, due),
                              a_clock_event("sla.breached", ticket, SlaMetric.RESOLUTION, due, -60)])  # fmt: skip
    late = ["We promised a solution by 9 Dec 2026, 16:30 UTC; we are late and on it."]
    eventually(lambda: promised() == late, timeout_s=10, what="the clocks met and breached")


def assigned(ticket_id, client_id, technician_id):
    data = {"technician_id": technician_id, "team": "desk", "tier": 1, "strategy": "round_robin", "reason": "test"}
    envelope = {"event_id": uuid.uuid4(), "occurred_at": datetime.now(UTC), "ticket_id": ticket_id,
                "client_id": client_id, "producer": "assignment", "correlation_id": "test"}  # fmt: skip
    return TicketAssigned(**envelope, data=data)


def test_the_desk_works_a_ticket_on_its_page(intake):
    """Where the links in a technician's mails point ("assigned to you", an SLA warning): the same page shows the
    desk who wrote what, the internal notes and the time logged, the ticket's details, and lets them log time, reply,
    write a note and move its status; the requester's page still shows no note and no time."""
    ticket = open_ticket(intake, title="Mail quota full", description="Outlook says <full> since Monday")
    path, page = f"/v1/tickets/{ticket}", f"/tickets/{ticket}"
    hint = {"author_id": "tech-1", "body": "Quota is 2 GB <old plan>", "public": False}
    assert intake.post(f"{path}/comments", json=hint, headers=bearer(TECHNICIAN)).status_code == 201
    try:
        sign_in(intake, TECHNICIAN, page)
        shown = intake.get(page).text
        assert '<li class="internal">' in shown and "Internal note by tech-1." in shown
        assert "Quota is 2 GB &lt;old plan&gt;" in shown
        assert '<nav><a href="/tickets">Open requests</a></nav>' in shown
        asked = "alice asked for help (api): \u201cMail quota full\u201d.<blockquote>Outlook says &lt;full&gt; since"
        assert asked in shown, "what the requester wrote, in their words"
        assert "new, priority P2, category hardware; requested by alice of acme; assigned to no one yet" in shown
        assert 'id="self-help"' not in shown and 'id="rating-form"' not in shown, "the requester's forms are theirs"

        assert 'name="billable" value="yes" checked>' in shown, "time is billable unless said otherwise"
        logged, _ = sent(intake, page, "worklog", minutes="30", billable="yes", note="Raised the quota")
        nothing, _ = sent(intake, page, "worklog", minutes="0")
        assert logged.status_code == 303 and nothing.status_code == 422
        assert "Minutes: Input should be greater than 0." in nothing.text
        shown = intake.get(page).text
        assert "technician logged 30 minutes (billable)." in shown and "Raised the quota" in shown
        assert "; 30 minutes logged" in shown
        assert intake.get(path, headers=bearer(ADMIN)).json()["worklog_minutes"] == 30
        noted, _ = sent(intake, page, "reply", words="Asked the mail team", internal="yes")
        answered, _ = sent(intake, page, "reply", words="We doubled your quota.")
        assert intake.patch(path, json={"priority": "P1"}, headers=bearer(MANAGER)).status_code == 200
        moved, _ = sent(intake, page, "status", status="resolved")
        assert (noted.status_code, answered.status_code, moved.status_code) == (303, 303, 303)
        comments = intake.get(f"{path}/comments", headers=bearer(ADMIN)).json()["comments"]
        assert [(c["author_id"], c["body"], c["public"]) for c in comments][1:] == [
            ("technician", "Asked the mail team", False),
            ("technician", "We doubled your quota.", True),
        ]
        assert intake.get(path, headers=bearer(ADMIN)).json()["status"] == "resolved"
        shown = intake.get(page).text
        assert "key technician moved it from new to resolved." in shown, "who did what, from the audit trail"
        assert "key manager changed the priority from P2 to P1." in shown
        options = re.findall(r'<option value="([a-z_]+)">', shown)
        assert options == ["open", "in_progress", "closed"], "the moves a resolved ticket may make"

        intake.cookies.clear()
        seen = intake.get(page, headers=bearer(REQUESTER)).text
        assert "Asked the mail team" not in seen and "We doubled your quota." in seen and "Internal note" not in seen
        assert "<blockquote>Outlook says &lt;full&gt; since Monday</blockquote>" in seen, "their request, as written"
        assert '<a href="/tickets">Your requests</a>' in seen
        assert "Raised the quota" not in seen and "minutes" not in seen
        own_time = intake.post(
            f"{page}/worklog", content="minutes=5&billable=yes", headers={**FORM, **bearer(REQUESTER)}
        )
        assert own_time.status_code == 403 and "only staff may log time" in own_time.text
    finally:
        intake.cookies.clear()


def test_listing_filters_and_pages_with_a_cursor(intake):
    client = f"list-{uuid.uuid4().hex[:8]}"
    created = [open_ticket(intake, client_id=client, priority=p) for p in ("P1", "P2", "P1", "P1", "P3")]
    first = intake.get("/v1/tickets", params={"client_id": client, "priority": "P1", "limit": 2}, headers=bearer(ADMIN))
    page = first.json()
    assert [t["id"] for t in page["tickets"]] == [created[0], created[2]]
    second = intake.get(
        "/v1/tickets",
        params={"client_id": client, "priority": "P1", "limit": 2, "cursor": page["next_cursor"]},
        headers=bearer(ADMIN),
    ).json()
    assert [t["id"] for t in second["tickets"]] == [created[3]] and second["next_cursor"] is None
    assert intake.get("/v1/tickets", params={"cursor": "garbage"}, headers=bearer(ADMIN)).status_code == 422


def test_a_requester_lists_only_their_own_tickets(intake):
    mine = open_ticket(intake, key=REQUESTER)
    someone_elses = open_ticket(intake, requester_id="bob")
    listed = intake.get("/v1/tickets", params={"limit": 500}, headers=bearer(REQUESTER)).json()["tickets"]
    ids = {t["id"] for t in listed}
    assert mine in ids and someone_elses not in ids
    assert all(t["client_id"] == "acme" and t["requester_id"] == "alice" for t in listed)
    assert intake.get("/v1/tickets", params={"client_id": "globex"}, headers=bearer(REQUESTER)).status_code == 403


# --- every role against every endpoint ---------------------------------------------------------------------------

ROLES = {
    "admin": ADMIN,
    "manager": MANAGER,
    "technician": TECHNICIAN,
    "integration": INTEGRATION,
    "requester": REQUESTER,
    "acme_manager": ACME_MANAGER,
    "ann": ANN,  # a technician's own key
    "maria": MARIA,  # a manager's own key
}
STAFF_ONLY = {**dict.fromkeys(ROLES, 200), "requester": 403}
EVERYONE = dict.fromkeys(ROLES, 200)
#: Writing in someone else's name (not ann's, not the requester's): her own key may not, nor a requester's.
AS_ANOTHER = {**STAFF_ONLY, "ann": 403}


def _expect(codes, created=False):
    return {role: (201 if created and code == 200 else code) for role, code in codes.items()}


CASES = {
    "read": ("GET", "", None, EVERYONE),
    "timeline": ("GET", "/timeline", None, EVERYONE),
    "comments": ("GET", "/comments", None, EVERYONE),
    "patch": ("PATCH", "", {"priority": "P1"}, STAFF_ONLY),
    "status": ("POST", "/status", {"status": "open"}, STAFF_ONLY),
    "public comment": (
        "POST",
        "/comments",
        {"author_id": "alice", "body": "hi", "public": True},
        _expect({**EVERYONE, "ann": 403}, True),
    ),
    "internal comment": (
        "POST",
        "/comments",
        {"author_id": "tech-1", "body": "hm", "public": False},
        _expect(AS_ANOTHER, True),
    ),
    "public comment as ann": (
        "POST",
        "/comments",
        {"author_id": "ann", "body": "hi", "public": True},
        _expect({**STAFF_ONLY, "requester": 403}, True),
    ),  # fmt: skip
    "worklog": ("POST", "/worklogs", {"technician_id": "t", "minutes": 5, "billable": True}, _expect(AS_ANOTHER, True)),
    "worklog of ann": (
        "POST",
        "/worklogs",
        {"technician_id": "ann", "minutes": 5, "billable": True},
        _expect(STAFF_ONLY, True),
    ),  # fmt: skip
    "audit": ("GET", "/audit", None, {**STAFF_ONLY, "integration": 403}),
    "csat on an open ticket": ("POST", "/csat", {"rating": 4}, {**dict.fromkeys(ROLES, 403), "requester": 409}),
}


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_role_on_every_ticket_endpoint(intake, role, case):
    method, suffix, body, expected = CASES[case]
    ticket = open_ticket(intake)
    answer = intake.request(method, f"/v1/tickets/{ticket}{suffix}", json=body, headers=bearer(ROLES[role]))
    assert answer.status_code == expected[role], answer.text


@pytest.mark.parametrize("role", sorted(ROLES))
def test_scoped_keys_never_reach_another_clients_ticket(intake, role):
    globex = open_ticket(intake, client_id="globex", requester_id="gina")
    answer = intake.get(f"/v1/tickets/{globex}", headers=bearer(ROLES[role]))
    assert answer.status_code == (403 if role in ("requester", "acme_manager") else 200)
    creation = intake.post("/v1/tickets", json={**NEW_TICKET, "client_id": "globex"}, headers=bearer(ROLES[role]))
    assert creation.status_code == (403 if role in ("requester", "acme_manager") else 201)


def test_the_audit_shows_who_did_what_from_their_keys(intake):
    """The actor comes from the key, whatever the body says; a manager's time entry for ann is on her behalf."""
    ticket = open_ticket(intake, key=INTEGRATION)
    path = f"/v1/tickets/{ticket}"
    logged = intake.post(f"{path}/worklogs", json={"technician_id": "ann", "minutes": 45, "billable": True},
                         headers=bearer(ANN))  # fmt: skip
    assert logged.status_code == 201, logged.text
    correction = {"technician_id": "ann", "minutes": 30, "billable": True,
                  "performed_at": logged.json()["performed_at"], "reason": "it was half an hour"}  # fmt: skip
    corrected = intake.post(f"{path}/worklogs/{logged.json()['id']}/correction", json=correction, headers=bearer(MARIA))
    assert corrected.status_code == 200, corrected.text
    refused = intake.post(f"{path}/comments", json={"author_id": "maria", "body": "done", "public": True},
                          headers=bearer(ANN))  # fmt: skip
    assert refused.status_code == 403 and "ann's" in refused.json()["detail"]

    answer = intake.get(f"{path}/audit", headers=bearer(MANAGER))
    assert answer.status_code == 200, answer.text
    changes = answer.json()["changes"]
    assert [(change["version"], change["event_type"], change["by"]) for change in changes] == [
        (1, "ticket.created", "key integration (integration), on behalf of alice"),
        (2, "ticket.worklog_recorded", "ann (technician, key ann-laptop)"),
        (3, "ticket.worklog_corrected", "maria (manager, key maria), on behalf of ann"),
    ]
    assert (changes[2]["before"]["minutes"], changes[2]["after"]["minutes"]) == (45, 30)
    assert changes[2]["what"].endswith("(it was half an hour)")
    assert intake.get(f"{path}/audit", headers=bearer(REQUESTER)).status_code == 403
