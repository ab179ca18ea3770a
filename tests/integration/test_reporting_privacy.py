"""The warehouse and people's words, with real chDB and the real broker: a help desk's week whose titles,
descriptions, comments and notes were sealed as intake seals them is projected with every figure it had in plain
text; no table holds a word of it in plain text (read with SQL, not through the service); the people are erased,
and a rebuild gives every report as before, still with no word in plain text."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import clickhouse_connect
import pytest
from fastapi.testclient import TestClient

from intake.domain import whose_words
from reporting.app import build_app
from reporting.rebuild import rebuild
from reporting.settings import ReportingSettings
from tests.integration.test_data_keys import a_replica
from tests.integration.test_reporting_projection import KEYS
from tests.integration.test_reporting_rebuild import caught_up, figures, of_this_run, publish
from tests.integration.test_reporting_reports import week
from tests.polling import eventually
from ticketstream_shared.contract import Envelope, TicketCreated, TicketEvent
from ticketstream_shared.contract.personal import map_personal, personal_texts

pytestmark = pytest.mark.integration

MARKER = uuid.uuid4().hex
RUN = MARKER[:8]


async def sealed_week(bootstrap: str) -> tuple[list[Envelope], set[str]]:
    """The week of this run, each personal text marked and then sealed under its person's key; and the people."""
    events = [of_this_run(event, RUN) for event in week()]
    requesters = {e.ticket_id: e.data.requester_id for e in events if isinstance(e, TicketCreated)}
    people: set[str] = set()
    sealed: list[Envelope] = []
    async with a_replica(bootstrap) as keys:
        for event in events:
            if isinstance(event, TicketEvent) and next(personal_texts(event), None) is not None:
                person = whose_words(event, requesters[event.ticket_id])
                people.add(person)
                event = await keys.seal_fields(map_personal(event, lambda text: f"{text} {MARKER}"), person)
            sealed.append(event)
    return sealed, people


def plain_words_in_tables(settings: ReportingSettings) -> dict[str, int]:
    """Per table of the warehouse, how many of its rows hold the marker in plain text; and how many rows held a
    sealed value (under the key "sealed")."""
    client = clickhouse_connect.get_client(dsn=settings.clickhouse_dsn())
    try:
        found = {}
        for (table,) in client.query("SHOW TABLES").result_rows:
            # as bytes, aggregate states too (an argMax of a string holds the string)
            rows = client.raw_query(f"SELECT * FROM `{table}` FORMAT TabSeparated").splitlines()
            found[table] = sum(MARKER.encode() in row for row in rows)
            found["sealed"] = found.get("sealed", 0) + sum(b"sealed:v1:" in row for row in rows)
        return found
    finally:
        client.close()


def test_sealed_words_reach_no_table_in_plain_text_and_erasing_their_people_changes_no_figure(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = ReportingSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        consumer_group=f"reporting-privacy-{MARKER[:8]}",
        batch_max_wait_seconds=0.2,
        chdb_path=tmp_path / "chdb",
    )
    events, people = asyncio.run(sealed_week(kafka_bootstrap))
    assert len(people) >= 2 and all(MARKER not in event.model_dump_json() for event in events)
    asyncio.run(publish(kafka_bootstrap, events))
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(
            lambda: asyncio.run(caught_up(kafka_bootstrap, settings.consumer_group)), timeout_s=60, what="caught up"
        )
        before = figures(http, RUN)
    assert before["hours-per-client"] and before["csat"]
    held = plain_words_in_tables(settings)
    sealed = held.pop("sealed")
    assert not any(held.values()), held
    assert sealed > 0, "the events are kept as they came: sealed"

    async def erase_everyone() -> None:
        async with a_replica(kafka_bootstrap) as keys:
            for person in people:
                assert await keys.erase(person)

    asyncio.run(erase_everyone())
    asyncio.run(rebuild(settings))
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="reporting ready")
        assert figures(http, RUN) == before
    held = plain_words_in_tables(settings)
    held.pop("sealed")
    assert not any(held.values()), held
