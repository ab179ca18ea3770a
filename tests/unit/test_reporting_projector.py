"""The projector's batch handler: one insert per table per batch, retried until ClickHouse takes it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection, Mapping, Sequence

import pytest

from reporting.business_hours import ClientCalendars
from reporting.ledger import LedgerRow
from reporting.processors import Row, WorklogRow
from reporting.projector import Projector, decoders, topic_decoder
from tests.builders import a_ticket_created, a_worklog_recorded
from tests.unit.test_reporting_processors import an_escalation, an_sla_event
from ticketstream_shared.contract import Envelope, InvalidEvent, TicketCreated, encode
from ticketstream_shared.contract.assignment import TicketEscalated
from ticketstream_shared.contract.sla import SlaBreached
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Delivery


class FlakyStore:
    """Refuses the first `failures` inserts, as a ClickHouse being restarted would, then keeps what it gets."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.inserts: list[dict[str, list[Row | LedgerRow]]] = []

    async def insert(self, rows: Mapping[str, Sequence[Row | LedgerRow]]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is restarting")
        self.inserts.append({table: list(table_rows) for table, table_rows in rows.items()})

    def ledger(self) -> list[LedgerRow]:
        rows = [row for insert in self.inserts for row in insert.get("worklog_ledger", ())]
        return [row for row in rows if isinstance(row, LedgerRow)]

    async def newest_ledger_rows(self, worklogs: Collection[WorklogRow]) -> dict[uuid.UUID, LedgerRow]:
        worklog_ids = {worklog.worklog_id for worklog in worklogs}
        newest: dict[uuid.UUID, LedgerRow] = {}
        for row in sorted(self.ledger(), key=lambda row: (row.aggregate_version, row.sign)):
            if row.worklog_id in worklog_ids:
                newest[row.worklog_id] = row
        return newest


def a_batch() -> list[Delivery]:
    created = a_ticket_created("T-7")
    events: list[Envelope] = [created, a_worklog_recorded("T-7", 2, minutes=90), a_ticket_created("T-8")]
    tickets = [Delivery(event, TICKETS_EVENTS, 3, offset) for offset, event in enumerate(events, start=100)]
    return [*tickets, Delivery(an_sla_event("breached", "T-7"), SLA_EVENTS, 3, 9)]


def test_a_batch_is_one_insert_per_table() -> None:
    store = FlakyStore()

    asyncio.run(Projector(store, ClientCalendars()).project(a_batch()))

    (inserted,) = store.inserts
    assert {table: len(rows) for table, rows in inserted.items()} == {
        "ticket_events": 4,
        "ticket_changes": 3,
        "worklogs": 1,
        "sla_clock_events": 1,
        "worklog_ledger": 1,
    }
    assert [row.offset for row in inserted["ticket_events"]] == [100, 101, 102, 9]


def test_a_refused_insert_is_tried_again_not_dropped() -> None:
    store = FlakyStore(failures=2)

    asyncio.run(Projector(store, ClientCalendars(), first_retry_seconds=0).project(a_batch()))

    assert len(store.inserts) == 1 and store.failures == 0


def test_an_unknown_event_type_decodes_to_its_envelope() -> None:
    payload = json.loads(encode(a_ticket_created("T-7")))
    payload.update(event_type="ticket.merged", data={"into": "T-1"})

    event = topic_decoder(TICKETS_EVENTS)(json.dumps(payload).encode())

    assert type(event) is Envelope and event.event_type == "ticket.merged"


@pytest.mark.parametrize("topic", [TICKETS_EVENTS, SLA_EVENTS, ASSIGNMENT_EVENTS])
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"event_type": "ticket.created"}', "event_id: Field required"),
        (b"{" + b" " * 300_000 + b"}", "oversized"),
    ],
)
def test_anything_else_is_invalid_with_the_codecs_reason(topic: str, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        topic_decoder(topic)(raw)


def test_a_known_event_decodes_to_its_model_on_every_topic() -> None:
    decode = decoders()

    assert isinstance(decode[TICKETS_EVENTS](encode(a_ticket_created("T-7"))), TicketCreated)
    assert isinstance(decode[SLA_EVENTS](encode(an_sla_event("breached", "T-7"))), SlaBreached)
    assert isinstance(decode[ASSIGNMENT_EVENTS](encode(an_escalation("T-7"))), TicketEscalated)


def test_an_event_of_another_topic_is_not_taken_for_one_of_this_topic() -> None:
    event = topic_decoder(TICKETS_EVENTS)(encode(an_sla_event("breached", "T-7")))

    assert type(event) is Envelope and event.event_type == "sla.breached"
