"""The whole system as `make run` starts it: the five service processes under honcho from deploy/Procfile, against a
real broker and a real SMTP server, driven over HTTP only: the hours report, the guards, the service catalogue with
self-help and the next-reply promise from end to end, a requester answering from the link of a mail in a browser,
and a person erased everywhere."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from playwright.sync_api import sync_playwright

from deploy.kafka.launcher import free_ports
from tests.e2e.test_dashboard import chromium
from tests.polling import eventually
from tests.receivers import smtp_server
from ticketstream_shared.contract.topics import TOPICS
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.auth import write_dev_keys
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SERVICES = ("intake", "sla", "assignment", "reporting", "notify")


def processes_marked(marker: str) -> list[int]:
    """Processes whose environment carries `marker`: everything this system started, however it was spawned."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def mailbox():
    with smtp_server() as mailbox:
        yield mailbox


@pytest.fixture(scope="module")
def system(kafka_bootstrap, tmp_path_factory, mailbox):
    """Yields (base URL per service, dev keys); on exit stops honcho as Ctrl-C would and checks nothing is left."""
    local = tmp_path_factory.mktemp("local")
    dev_keys_path, api_keys_path = write_dev_keys(local)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    marker = f"TICKETSTREAM_E2E_RUN={uuid.uuid4()}"
    environment = {
        **os.environ,
        "TICKETSTREAM_E2E_RUN": marker.split("=", 1)[1],
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "API_KEYS_FILE": str(api_keys_path),
        "CHDB_PATH": str(local / "clickhouse"),
        "STATE_ROOT": str(local / "state"),
        # as `make run`: people's words sealed on the way to the log, and every report the same for it
        "PRIVACY_MASTER_KEY_FILE": str(write_key(local / "privacy-master.key")),
        "NOTIFY_SECRETS_KEY_FILE": str(write_key(local / "notify-secrets.key")),
        "SMTP_PORT": str(mailbox.port),
        "PORTAL_URL": f"http://127.0.0.1:{ports['intake']}",  # where the links in mails point: intake's pages
        **{f"{service.upper()}_PORT": str(port) for service, port in ports.items()},
    }
    log = (local / "honcho.log").open("w")
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", "deploy/Procfile", "-d", ".", "start", *SERVICES],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
    try:
        for service, url in urls.items():
            eventually(lambda url=url: _ready(url), timeout_s=60, what=f"{service} ready")
        yield urls, json.loads(dev_keys_path.read_text())
    finally:
        honcho.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            honcho.wait(timeout=30)
        finally:
            log.close()
            eventually(lambda: not processes_marked(marker), timeout_s=15, what="no process left behind")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_hours_logged_over_http_show_in_the_report(system):
    urls, keys = system
    integration = {"Authorization": f"Bearer {keys['integration']}"}
    client_id = f"e2e-{int(time.time())}"
    ticket = httpx.post(
        f"{urls['intake']}/v1/tickets",
        json={
            "client_id": client_id,
            "requester_id": "bob",
            "title": "Mail bounces",
            "category": "email",
            "priority": "P3",
        },
        headers=integration,
    )
    assert ticket.status_code == 201, ticket.text
    for minutes, billable in ((90, True), (30, False)):
        logged = httpx.post(
            f"{urls['intake']}/v1/tickets/{ticket.json()['id']}/worklogs",
            json={"technician_id": "tech-7", "minutes": minutes, "billable": billable},
            headers=integration,
        )
        assert logged.status_code == 201, logged.text

    today = datetime.now(UTC).date().isoformat()
    manager = {"Authorization": f"Bearer {keys['manager']}"}

    def report_row():
        rows = httpx.get(
            f"{urls['reporting']}/v1/reports/hours-per-client",
            params={"from": today, "to": today, "client_id": client_id},
            headers=manager,
        ).json()["rows"]
        return rows[0] if rows and rows[0]["hours"] == 2.0 else None

    row = eventually(report_row, timeout_s=20, what="the report shows both worklogs")
    assert (row["client_id"], row["hours"], row["billable_hours"], row["tickets"]) == (client_id, 2.0, 1.5, 1)

    def reporting_lag() -> list[float] | None:
        metrics = httpx.get(f"{urls['reporting']}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
        lags = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith('ticketstream_consumer_lag_messages{group="reporting"') and "tickets.events" in line
        ]
        return lags if lags and not any(lags) else None

    assert eventually(reporting_lag, timeout_s=20, what="reporting reports its lag, and has caught up")


def test_every_service_shows_what_it_processes_and_what_that_costs(system):
    """After the tickets above, each service's /metrics counts the events (intake: commands) it processed, with the
    rate and the CPU seconds per 1,000 of them that operators watch."""
    urls, keys = system

    def figures(url: str) -> dict[str, float] | None:
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}).text
        wanted = ("ticketstream_events_processed_total", "ticketstream_events_per_second",
                  "ticketstream_cpu_seconds_per_1000_events")  # fmt: skip
        found = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith(wanted)}
        return found if found.get("ticketstream_events_processed_total", 0) > 0 else None

    for service, url in urls.items():
        found = eventually(lambda url=url: figures(url), timeout_s=20, what=f"{service} counts what it processed")
        assert found["ticketstream_events_per_second"] > 0, service
        assert found["ticketstream_cpu_seconds_per_1000_events"] > 0, service


def test_every_service_guards_its_endpoints_but_health(system):
    urls, keys = system
    for url in urls.values():
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {keys['admin']}"})
        assert metrics.status_code == 200 and "ticketstream_http_requests_total" in metrics.text
    assert httpx.get(f"{urls['reporting']}/dashboard").status_code == 401
    technician = httpx.post(f"{urls['reporting']}/dashboard/session", data={"key": keys["technician"]})
    assert technician.status_code == 403, "a technician's key does not open the manager dashboard"


# --- the service catalogue, self-help and the next-reply promise, end to end ----------------------------------------


def a_published_service(owner_team: str, category: str, **targets: int) -> dict:
    """A service around the clock (no calendar), so that its promises fall due in the test's own minutes."""
    return {
        "name": f"Remote access {category}",
        "description": "Working from home: the VPN client and its sign-in.",
        "owner_team": owner_team,
        "categories": [category],
        "targets": {"P2": {"first_response_minutes": 60, "resolution_minutes": 8 * 60, **targets}},
        "published": True,
    }


def test_a_requester_solves_their_problem_with_an_article_of_a_catalogue_service(system):
    """catalogue -> suggestion -> self-solved: a manager publishes a service, a technician writes its help article,
    a requester sees the service's promise, opens a ticket naming it, is offered the article, and says it solved the
    problem; the ticket is resolved as self-service, its clocks are met, and the manager sees the deflection."""
    urls, keys = system
    manager, technician, requester = ({"Authorization": f"Bearer {keys[role]}"}
                                      for role in ("manager", "technician", "requester"))  # fmt: skip
    word = f"quuxvpn{uuid.uuid4().hex[:6]}"  # a word only this test's article and ticket use
    service_id, category = f"vpn-{word}", f"vpn-{word}"
    put = httpx.put(f"{urls['sla']}/v1/catalog/services/{service_id}",
                    json=a_published_service("network", category), headers=manager)  # fmt: skip
    assert put.status_code == 200, put.text
    listed = httpx.get(f"{urls['sla']}/v1/catalog/services", headers=requester).json()["services"]
    [offered] = [service for service in listed if service["id"] == service_id]
    assert offered["promises"]["P2"] == "We answer within 1 hour and solve it within 8 hours (around the clock)."

    article_id = f"kb-{word}"
    article = {
        "title": f"The {word} client disconnects every hour",
        "body": f"Sign out of the {word} client, restart it and sign in again.",
        "service_id": service_id,
        "categories": [category],
        "keywords": ["vpn"],
        "published": True,
        "language": "en",
    }
    written = httpx.put(f"{urls['intake']}/v1/knowledge/articles/{article_id}", json=article, headers=technician)
    assert written.status_code == 201, written.text

    ticket = {"client_id": "acme", "requester_id": "acme-requester", "service_id": service_id, "category": category,
              "priority": "P2", "title": f"My {word} keeps disconnecting",
              "description": "Every hour since Monday."}  # fmt: skip

    # sla wrote the service to sla.config a moment ago: intake reads it to its end before calling a service unknown
    answer = httpx.post(f"{urls['intake']}/v1/tickets", json=ticket, headers=requester)
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert opened["service_id"] == service_id
    assert [suggestion["id"] for suggestion in opened["suggested_articles"]][:1] == [article_id]

    solved = httpx.post(f"{urls['intake']}/v1/tickets/{opened['id']}/self-solved",
                        json={"article_id": article_id}, headers=requester)  # fmt: skip
    assert solved.status_code == 200, solved.text
    assert solved.json()["status"] == "resolved"

    def clocks_met() -> dict | None:
        answer = httpx.get(f"{urls['sla']}/v1/sla/tickets/{opened['id']}", headers=requester)
        if answer.status_code != 200:
            return None
        clocks = {clock["metric"]: clock for clock in answer.json()["clocks"]}
        return clocks if clocks and all(clock["status"] == "met" for clock in clocks.values()) else None

    clocks = eventually(clocks_met, timeout_s=20, what="the ticket's clocks are met")
    assert set(clocks) == {"first_response", "resolution"}
    assert {clock["service"]["id"] for clock in clocks.values()} == {service_id}

    today = datetime.now(UTC).date().isoformat()

    def deflections() -> list | None:
        answer = httpx.get(f"{urls['reporting']}/v1/reports/deflections",
                           params={"from": today, "to": today, "service_id": service_id}, headers=manager)  # fmt: skip
        assert answer.status_code == 200, answer.text
        return answer.json()["rows"] or None

    assert eventually(deflections, timeout_s=20, what="reporting counts the deflection") == [
        {"client_id": "acme", "service_id": service_id, "article_id": article_id, "deflections": 1}
    ]


def test_a_late_reply_breaks_a_service_promise_and_the_report_by_service_shows_it(system):
    """catalogue -> ticket -> next-reply breach -> report by service: a service promises a reply to each message
    within a minute; a ticket of its category goes to its owner team, is answered, the requester writes again, nobody
    replies for a minute, and the promise is broken where the requester, the manager and the reports see it."""
    urls, keys = system
    manager, technician, requester = ({"Authorization": f"Bearer {keys[role]}"}
                                      for role in ("manager", "technician", "requester"))  # fmt: skip
    suffix = uuid.uuid4().hex[:8]
    service_id, category, team = f"remote-{suffix}", f"remote-{suffix}", f"team-{suffix}"
    put = httpx.put(f"{urls['sla']}/v1/catalog/services/{service_id}",
                    json=a_published_service(team, category, next_reply_minutes=1), headers=manager)  # fmt: skip
    assert put.status_code == 200, put.text
    ticket = {"client_id": "acme", "requester_id": "acme-requester", "category": category, "priority": "P2",
              "title": "I cannot reach the office drive from home"}  # fmt: skip
    opened = httpx.post(f"{urls['intake']}/v1/tickets", json=ticket, headers=requester)
    assert opened.status_code == 201, opened.text
    ticket_id = opened.json()["id"]
    path = f"{urls['intake']}/v1/tickets/{ticket_id}"

    def clocks() -> dict[str, dict]:
        answer = httpx.get(f"{urls['sla']}/v1/sla/tickets/{ticket_id}", headers=requester)
        return {clock["metric"]: clock for clock in answer.json()["clocks"]} if answer.status_code == 200 else {}

    # Without service_id, the service is its category's; sla times it by the service's promise.
    timed = eventually(lambda: clocks().get("first_response"), timeout_s=20, what="sla times the ticket")
    assert timed["service"] == {"id": service_id, "version": 1}

    def routed() -> dict | None:
        answer = httpx.get(f"{urls['assignment']}/v1/assignments/{ticket_id}", headers=manager)
        return answer.json() if answer.status_code == 200 else None

    assert eventually(routed, timeout_s=20, what="assignment routes the ticket")["team"] == team

    answer = {"author_id": "tech-1", "body": "Which drive letter do you use?", "public": True}
    assert httpx.post(f"{path}/comments", json=answer, headers=technician).status_code == 201
    eventually(lambda: clocks()["first_response"]["status"] == "met", timeout_s=20, what="the first answer counts")
    message = {"author_id": "acme-requester", "body": "The drive is H:.", "public": True}
    assert httpx.post(f"{path}/comments", json=message, headers=requester).status_code == 201

    def next_reply_broken() -> dict | None:
        clock = clocks().get("next_reply")
        return clock if clock and clock["breached"] else None

    late = eventually(next_reply_broken, timeout_s=120, interval_s=2, what="the promised reply is late")
    assert late["service"] == {"id": service_id, "version": 1}
    assert late["explanation"].startswith("We promised a reply to your message by ")
    reply = {"author_id": "tech-1", "body": "Your drive is mapped again.", "public": True}
    assert httpx.post(f"{path}/comments", json=reply, headers=technician).status_code == 201

    today = datetime.now(UTC).date().isoformat()

    def compliance() -> dict | None:
        answer = httpx.get(f"{urls['reporting']}/v1/reports/sla-compliance",
                           params={"from": today, "to": today, "by": "service", "service_id": service_id},
                           headers=manager)  # fmt: skip
        assert answer.status_code == 200, answer.text
        rows = {row["metric"]: row for row in answer.json()["rows"]}
        return rows if "next_reply" in rows and "first_response" in rows else None

    rows = eventually(compliance, timeout_s=20, what="reporting shows the broken promise")
    assert {row["service_id"] for row in rows.values()} == {service_id}
    assert (rows["first_response"]["compliance_pct"], rows["next_reply"]["compliance_pct"]) == (100.0, 0.0)

    overview = httpx.get(f"{urls['reporting']}/v1/reports/services", params={"from": today, "to": today},
                         headers=manager).json()["rows"]  # fmt: skip
    [ours] = [row for row in overview if row["service_id"] == service_id]
    assert (ours["tickets"], ours["compliance_pct"]) == (1, 50.0)


def every_value_of_every_topic(kafka_bootstrap: str) -> list[bytes]:
    """Every message on every topic of the system (DLQs, changelogs and privacy.keys included), read raw."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            since = {TopicPartition(spec.name, n): None for spec in TOPICS for n in range(spec.partitions)}
            return [record.value or b"" async for record in records_to_end(consumer, since)]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_a_person_erased_has_no_word_readable_anywhere_and_every_report_stays(system, kafka_bootstrap, mailbox):
    urls, keys = system
    integration, admin = ({"Authorization": f"Bearer {keys[role]}"} for role in ("integration", "admin"))
    marker = uuid.uuid4().hex
    requester, client_id = f"zoe-{marker[:8]}", f"e2e-privacy-{marker[:8]}"
    address = f"zoe.{marker}@example.org"
    person = {"name": f"Zoe Example {marker}", "email": address, "role": "requester", "client_id": client_id}
    assert httpx.put(f"{urls['notify']}/v1/notify/people/{requester}", json=person, headers=admin).is_success
    technician = f"tech-{marker[:8]}"
    profile = {"name": f"Theo Example {marker}", "team": f"e2e-privacy-{marker[:8]}", "tier": 1, "capacity": 5}
    assert httpx.put(f"{urls['assignment']}/v1/technicians/{technician}", json=profile, headers=admin).is_success
    body = {"client_id": client_id, "requester_id": requester, "category": "email", "priority": "P3",
            "title": f"Zoe cannot log in {marker}", "description": f"Zoe Example, room 12 {marker}"}  # fmt: skip
    ticket = httpx.post(f"{urls['intake']}/v1/tickets", json=body, headers=integration)
    assert ticket.status_code == 201, ticket.text
    ticket_id = ticket.json()["id"]
    comment = {"author_id": requester, "body": f"It says my account is locked {marker}", "public": True}
    assert httpx.post(f"{urls['intake']}/v1/tickets/{ticket_id}/comments", json=comment, headers=integration).is_success
    worklog = {"technician_id": "tech-7", "minutes": 45, "billable": True, "note": "Unlocked the account"}
    assert httpx.post(f"{urls['intake']}/v1/tickets/{ticket_id}/worklogs", json=worklog, headers=integration).is_success
    today = datetime.now(UTC).date().isoformat()

    def reports() -> dict[str, list[dict]]:
        found = {}
        for name in ("hours-per-client", "backlog", "sla-compliance"):
            answer = httpx.get(f"{urls['reporting']}/v1/reports/{name}", params={"from": today, "to": today},
                               headers=admin)  # fmt: skip
            found[name] = [row for row in answer.json()["rows"] if row.get("client_id") == client_id]
        return found

    before = eventually(lambda: (r := reports())["hours-per-client"] and r, timeout_s=20, what="the hours reported")
    assert before["hours-per-client"][0]["hours"] == 0.75
    (received,) = eventually(lambda: mailbox.to(address), timeout_s=20, what="the requester told in a mail")
    assert marker in received["Subject"]

    erased = httpx.post(f"{urls['intake']}/v1/privacy/subjects/{requester}/erase", headers=admin)
    # one key, or two: notify and intake may each have issued one for the person before reading the other's
    assert erased.status_code == 200 and 1 <= len(erased.json()["keys_shredded"]) <= 2, erased.text
    eventually(
        lambda: httpx.get(f"{urls['notify']}/v1/notify/people/{requester}", headers=admin).status_code == 404,
        what="notify forgets the person erased",
    )
    assert httpx.post(f"{urls['intake']}/v1/privacy/subjects/{technician}/erase", headers=admin).status_code == 200
    eventually(
        lambda: httpx.get(f"{urls['assignment']}/v1/technicians/{technician}", headers=admin).json()["name"] == ERASED,
        what="the technician's name erased",
    )
    after = httpx.get(f"{urls['intake']}/v1/tickets/{ticket_id}", headers=admin).json()
    assert (after["title"], after["description"], after["worklog_minutes"]) == (ERASED, ERASED, 45)
    comments = httpx.get(f"{urls['intake']}/v1/tickets/{ticket_id}/comments", headers=admin).json()["comments"]
    assert [c["body"] for c in comments] == [ERASED]
    assert reports() == before
    found = [value[:200] for value in every_value_of_every_topic(kafka_bootstrap) if marker.encode() in value]
    assert not found, "the person's words in plain text on a topic"


def test_a_requester_follows_the_link_of_a_mail_and_answers_in_a_browser(system, mailbox, tmp_path):
    """The mail's link opens the request's page (intake's /tickets/{id}) in Chromium: the requester signs in with
    their key, is brought back to the request, reads the technician's question and answers it there; the desk sees
    the answer, and the request is back in the queue. Then they open a new request on their list, and an article
    offered on its page solves it. A technician signs in on the same browser, lands on the desk's open work, and
    replies on the request's page."""
    urls, keys = system
    roles = ("requester", "technician", "admin")
    requester, technician, admin = ({"Authorization": f"Bearer {keys[role]}"} for role in roles)
    marker = uuid.uuid4().hex
    address = f"acme.requester.{marker}@example.org"
    person = {"name": "Ada Requester", "email": address, "role": "requester", "client_id": "acme"}
    assert httpx.put(f"{urls['notify']}/v1/notify/people/acme-requester", json=person, headers=admin).is_success
    request = {"category": "network", "priority": "P3", "title": f"VPN drops every hour {marker}", "description": "."}
    opened = httpx.post(f"{urls['intake']}/v1/tickets", json=request, headers=requester)
    assert opened.status_code == 201, opened.text
    ticket = f"{urls['intake']}/v1/tickets/{opened.json()['id']}"
    question = {"author_id": "tech-7", "body": "Which VPN client do you use?", "public": True}
    assert httpx.post(f"{ticket}/comments", json=question, headers=technician).is_success
    asked = httpx.post(f"{ticket}/status", json={"status": "waiting_on_customer"}, headers=technician)
    assert asked.is_success, asked.text

    def waiting_mail():
        return [mail for mail in mailbox.to(address) if mail["Subject"].startswith("We need your answer")]

    (mail, *_) = eventually(waiting_mail, timeout_s=30, what="the requester asked by mail")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    (link,) = re.findall(r"http\S+/tickets/\S+", text)
    assert link == f"{urls['intake']}/tickets/{opened.json()['id']}", text

    article = {"title": f"Printer {marker} offline", "body": "Choose Reconnect in the printer's menu.",
               "categories": [], "keywords": ["printer"], "published": True, "language": "en"}  # fmt: skip
    put = httpx.put(f"{urls['intake']}/v1/knowledge/articles/kb-{marker}", json=article, headers=technician)
    assert put.status_code == 201, put.text

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium()), headless=True)
        page = browser.new_page()
        assert page.goto(link).status == 401, "no key, no request"
        page.fill("#key", keys["requester"])
        page.click("#sign-in")
        page.wait_for_selector("#reply-form")
        assert page.url == link and page.inner_text("#status") == "We are waiting for your answer."
        assert "Which VPN client do you use?" in page.inner_text("#timeline")
        page.fill("#words", "Cisco AnyConnect 5.1")
        page.click("#reply-form button")
        page.wait_for_selector("text=You replied.")
        assert page.url == link
        assert page.inner_text("#status") == "Your request is waiting for the next free member of our team."
        page.screenshot(path=str(tmp_path / "requester-page.png"), full_page=True)

        # A new request, on the list of theirs; the article that may solve it is offered on its page, and does.
        page.goto(f"{urls['intake']}/tickets")
        page.select_option("#service", "")  # something else: PORTAL_CATEGORY
        page.fill("#title", f"Printer {marker} shows offline")
        page.click("#new-request-form button")
        page.wait_for_selector("#self-help")
        page.click(f"#self-help summary >> text=Printer {marker} offline")
        page.click(f"#solved-by-kb-{marker}-form button")
        page.wait_for_selector("text=You solved it with one of our help articles.")
        new_request = page.url.rsplit("/", 1)[1]

        # The desk, signed in on the same browser, lands on its open work (here the whole session's broker's: this
        # request may be far down it); the link of its mail brings it to the request, where it replies.
        page.click("#sign-out-form button")
        page.fill("#key", keys["technician"])
        page.click("#sign-in")
        page.wait_for_selector("#queue li")
        page.goto(link)
        page.wait_for_selector("#reply-form")
        assert "acme-requester replied." in page.inner_text("#timeline")
        page.fill("#words", "Please reinstall it from the software centre.")
        page.click("#reply-form button")
        page.wait_for_selector("text=Please reinstall it from the software centre.")
        page.click("nav >> text=Open requests")  # and back to the open work
        page.wait_for_selector("#queue li")
        browser.close()

    solved = httpx.get(f"{urls['intake']}/v1/tickets/{new_request}", headers=admin).json()
    assert (solved["status"], solved["channel"], solved["category"]) == ("resolved", "portal", "general")

    comments = httpx.get(f"{ticket}/comments", headers=admin).json()["comments"]
    assert [(c["body"], c["public"]) for c in comments][-2:] == [
        ("Cisco AnyConnect 5.1", True),
        ("Please reinstall it from the software centre.", True),
    ]
    assert comments[-2]["author_id"] == "acme-requester"
    assert httpx.get(ticket, headers=admin).json()["status"] == "open"
