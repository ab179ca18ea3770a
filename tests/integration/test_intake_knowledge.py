"""Knowledge articles and self-help over HTTP, on the real broker: staff keep the articles as versions on
knowledge.articles, everyone searches the published ones, a new ticket is answered with suggestions, and a
requester who solved it with one resolves their ticket as self-service."""

import asyncio
import json
import uuid
from urllib.parse import urlencode

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import NEW_TICKET
from tests.integration.test_intake import read_events_of
from tests.integration.test_intake_lifecycle import FORM, sent, sign_in
from tests.keys import ADMIN, MANAGER, REQUESTER, TECHNICIAN, bearer
from ticketstream_shared.contract.topics import KNOWLEDGE_ARTICLES
from ticketstream_shared.runtime.kafka import records_to_end

pytestmark = pytest.mark.integration

#: A word no other test writes, so that other tests' articles (the fuzz makes many) rank nowhere near ours.
WORD = f"zorblax{uuid.uuid4().hex[:6]}"


def an_article(**changes):
    return {
        "title": f"VPN {WORD} drops every hour",
        "body": f"Sign out of the {WORD} client, restart it and sign in again.",
        "service_id": "vpn",
        "categories": ["network"],
        "keywords": ["globalprotect"],
        "published": True,
        "language": "en",
        **changes,
    }


def put(intake, article_id, body, key=TECHNICIAN):
    return intake.put(f"/v1/knowledge/articles/{article_id}", json=body, headers=bearer(key))


def versions_on_the_log(bootstrap, article_id):
    async def read():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(KNOWLEDGE_ARTICLES, 0)
            return [
                json.loads(record.value)
                async for record in records_to_end(consumer, {partition: None})
                if record.key == article_id.encode()
            ]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_staff_keep_articles_as_versions_and_a_retry_records_nothing(intake, kafka_bootstrap):
    article_id = f"kb-{WORD}-versions"
    first = put(intake, article_id, an_article())
    assert first.status_code == 201, first.text
    assert (first.json()["version"], first.json()["changed_by"]) == (1, "technician")
    assert first.json()["by"] == "key technician (technician)"
    again = put(intake, article_id, an_article())
    assert (again.status_code, again.json()["version"], again.headers["Idempotent-Replayed"]) == (200, 1, "true")
    changed = put(intake, article_id, an_article(keywords=["globalprotect", "tunnel"]), key=MANAGER)
    assert (changed.status_code, changed.json()["version"]) == (200, 2)
    logged = versions_on_the_log(kafka_bootstrap, article_id)
    assert [change["data"]["keywords"] for change in logged] == [["globalprotect"], ["globalprotect", "tunnel"]]
    assert {change["event_type"] for change in logged} == {"knowledge.article_changed"}


def test_requesters_read_and_search_published_articles_only(intake):
    assert put(intake, f"kb-{WORD}-x", an_article(), key=REQUESTER).status_code == 403
    draft_id = f"kb-{WORD}-draft"
    assert put(intake, draft_id, an_article(title=f"{WORD} draft", published=False)).status_code == 201
    published_id = f"kb-{WORD}-published"
    assert put(intake, published_id, an_article()).status_code == 201

    assert intake.get(f"/v1/knowledge/articles/{draft_id}", headers=bearer(REQUESTER)).status_code == 404
    assert intake.get(f"/v1/knowledge/articles/{draft_id}", headers=bearer(ADMIN)).json()["published"] is False

    def found(key, **params):
        answer = intake.get("/v1/knowledge/search", params={"q": WORD, **params}, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        return [result["id"] for result in answer.json()["results"]]

    assert published_id in found(REQUESTER) and draft_id not in found(REQUESTER)
    assert draft_id in found(TECHNICIAN)
    assert found(REQUESTER, service_id="printing") == []
    [hit] = [r for r in intake.get("/v1/knowledge/search", params={"q": f"{WORD} hour"},
             headers=bearer(REQUESTER)).json()["results"] if r["id"] == published_id]  # fmt: skip
    assert f"**{WORD}**" in hit["snippet"]
    assert intake.get("/v1/knowledge/search", headers=bearer(REQUESTER)).status_code == 422  # no q
    assert intake.get("/v1/knowledge/search", params={"q": WORD}).status_code == 401


def test_an_article_that_cannot_be_kept_is_refused_field_by_field(intake):
    refused = put(intake, f"kb-{WORD}-bad", an_article(title="", language="english", keywords=["a", "a"]))
    assert refused.status_code == 422
    fields = {error["field"] for error in refused.json()["errors"]}
    assert fields == {"title", "language", "keywords"}, refused.text


def test_a_requester_is_offered_articles_and_solves_the_ticket_with_one(intake, kafka_bootstrap):
    article_id = f"kb-{WORD}-solves"
    assert put(intake, article_id, an_article(title=f"{WORD} keeps disconnecting")).status_code == 201
    ticket = {**NEW_TICKET, "title": f"My {WORD} disconnects", "description": "Since this morning."}
    created = intake.post("/v1/tickets", json=ticket, headers=bearer(REQUESTER))
    assert created.status_code == 201, created.text
    suggested = created.json()["suggested_articles"]
    assert 1 <= len(suggested) <= 3 and suggested[0]["id"] == article_id
    ticket_id = created.json()["id"]

    unknown = intake.post(f"/v1/tickets/{ticket_id}/self-solved", json={"article_id": "kb-none"},
                          headers=bearer(REQUESTER))  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "article_id"
    staff = intake.post(f"/v1/tickets/{ticket_id}/self-solved", json={"article_id": article_id},
                        headers=bearer(TECHNICIAN))  # fmt: skip
    assert staff.status_code == 403
    solved = intake.post(f"/v1/tickets/{ticket_id}/self-solved", json={"article_id": article_id},
                         headers=bearer(REQUESTER))  # fmt: skip
    assert solved.status_code == 200, solved.text
    assert solved.json()["status"] == "resolved"
    timeline = intake.get(f"/v1/tickets/{ticket_id}/timeline", headers=bearer(REQUESTER)).json()
    assert "You solved it with one of our help articles" in json.dumps(timeline)
    events = read_events_of(kafka_bootstrap, ticket_id, 2)
    assert events[-1][1].data.article_id == article_id and events[-1][1].data.to_status == "resolved"


def test_the_requesters_page_offers_the_articles_and_one_solves_it(intake, kafka_bootstrap):
    """Where the mail "we have received your request" leads: while the request is open, its page shows the articles
    that may solve it, to read there, each with a button saying it did: the request is then resolved as
    self-service, as through the API; an article not published is refused, saying so."""
    article_id = f"kb-{WORD}-on-the-page"
    body = f"Open the {WORD} settings & choose <Reconnect>."
    assert put(intake, article_id, an_article(title=f"{WORD} printer offline", body=body)).status_code == 201
    assert put(intake, f"{article_id}-draft", an_article(published=False)).status_code == 201
    ticket = {**NEW_TICKET, "title": f"The {WORD} printer is offline", "description": "Since this morning."}
    created = intake.post("/v1/tickets", json=ticket, headers=bearer(REQUESTER))
    assert created.status_code == 201, created.text
    page = f"/tickets/{created.json()['id']}"
    try:
        sign_in(intake, REQUESTER, page)
        shown = intake.get(page).text
        assert "These articles may help" in shown and f"<summary>{WORD} printer offline</summary>" in shown
        assert f"Open the {WORD} settings &amp; choose &lt;Reconnect&gt;." in shown
        draft = urlencode({"article_id": f"{article_id}-draft", "request_key": "draft"})
        refused = intake.post(f"{page}/self-solved", content=draft, headers=FORM)
        assert refused.status_code == 422 and f"no published article {article_id}-draft" in refused.text
        solved, _ = sent(intake, page, f"solved-by-{article_id}")
        assert solved.status_code == 303 and solved.headers["location"] == page
        shown = intake.get(page).text
        assert "You solved it with one of our help articles." in shown and "These articles may help" not in shown
        events = read_events_of(kafka_bootstrap, created.json()["id"], 2)
        assert events[-1][1].data.article_id == article_id and events[-1][1].data.to_status == "resolved"
        assert intake.get(page, headers=bearer(TECHNICIAN)).text.count("These articles may help") == 0, "theirs only"
    finally:
        intake.cookies.clear()
