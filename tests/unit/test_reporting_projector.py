"""The projector's batch handler: the messages in one insert, then the ledger rows. Its failures are told apart:
ClickHouse down is waited for, an event that cannot be projected is refused with its reason (also one whose value
ClickHouse refuses, found by bisecting the batch), and a defect ends the projection."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from reporting.business_hours import ClientCalendars
from reporting.inbox import Arrival, decoders, topic_decoder
from reporting.ledger import LedgerRow
from reporting.projector import Projector
from tests.builders import a_ticket_created, a_worklog_recorded
from tests.polling import until
from tests.reporting_events import a_comment, a_csat, a_worklog_corrected, an_escalation, an_sla_event, read
from ticketstream_shared.contract import Envelope, InvalidEvent, TicketCreated, encode
from ticketstream_shared.contract.assignment import TicketEscalated
from ticketstream_shared.contract.sla import SlaBreached
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Delivery

#: What clickhouse-connect raises while a server restarts (the HTTP transport fails, or the server answers 503), and
#: what chDB and a server raise while short of memory: ClickHouse is down or overloaded, not wrong.
CLICKHOUSE_RESTARTING = OperationalError("Error HTTPConnectionPool: Connection refused executing HTTP request")
CLICKHOUSE_OUT_OF_MEMORY = DatabaseError("Code: 241. DB::Exception: Memory limit exceeded", code=241)
#: What ClickHouse says of a value its column cannot hold (the views' accurateCast).
TIER_TOO_HIGH = "Code: 70. DB::Exception: Value in column Int64 cannot be safely converted into type UInt8"


class FlakyStore:
    """Refuses the first `failures` inserts with `error`, as a ClickHouse being restarted would, and any insert of
    messages holding an offset of `refused_offsets`, as ClickHouse refuses a value; keeps the rest."""

    def __init__(
        self, failures: int = 0, error: Exception = CLICKHOUSE_RESTARTING, refused_offsets: Collection[int] = ()
    ) -> None:
        self.failures = failures
        self.error = error
        self.refused_offsets = set(refused_offsets)
        self.attempts = 0
        self.messages: list[list[Delivery]] = []
        self.inserts: list[list[LedgerRow]] = []

    def _attempt(self) -> None:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise self.error

    async def insert_messages(self, deliveries: Sequence[Delivery]) -> None:
        self._attempt()
        if any(delivery.offset in self.refused_offsets for delivery in deliveries):
            raise DatabaseError(TIER_TOO_HIGH, code=70)
        self.messages.append(list(deliveries))

    async def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> None:
        self._attempt()
        self.inserts.append(list(rows))

    def offsets_stored(self) -> list[int]:
        return [delivery.offset for insert in self.messages for delivery in insert]

    def ledger(self) -> list[LedgerRow]:
        return [row for insert in self.inserts for row in insert]

    async def newest_ledger_rows(self, worklog_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, LedgerRow]:
        newest: dict[uuid.UUID, LedgerRow] = {}
        for row in sorted(self.ledger(), key=lambda row: (row.aggregate_version, row.sign)):
            if row.worklog_id in worklog_ids:
                newest[row.worklog_id] = row
        return newest


def a_batch() -> list[Delivery]:
    created = a_ticket_created("T-7")
    events: list[Envelope] = [created, a_worklog_recorded("T-7", 2, minutes=90), a_ticket_created("T-8")]
    tickets = [read(event, 3, offset) for offset, event in enumerate(events, start=100)]
    return [*tickets, read(an_sla_event("breached", "T-7"), 3, 9)]


def test_a_batch_is_one_insert_of_its_messages_then_one_of_its_ledger_rows() -> None:
    store = FlakyStore()

    asyncio.run(Projector(store, ClientCalendars()).project(a_batch()))

    assert store.offsets_stored() == [100, 101, 102, 9]
    (inserted,) = store.inserts
    assert [(row.offset, row.minutes, row.sign) for row in inserted] == [(101, 90, 1)]


class HeldStore(FlakyStore):
    """Holds the insert of the first batch's messages until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.calls = 0

    async def insert_messages(self, deliveries: Sequence[Delivery]) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        await super().insert_messages(deliveries)


def test_a_batch_handed_over_before_the_one_before_is_done_applies_its_ledger_rows_on_top_of_that_ones():
    """The consumer reads ahead two batches (read_ahead 2): the second's messages may be in first, but its worklogs
    are looked up in the ledger only once the first batch's rows are written, or a worklog corrected in the second
    would count twice (its recording from the first, and its correction as if it were new)."""
    recorded = a_worklog_recorded("T-7", 2, minutes=90)
    first = [read(a_ticket_created("T-7"), 3, 100), read(recorded, 3, 101)]
    second = [read(a_worklog_corrected(recorded, 3, minutes=30), 3, 102)]
    store = HeldStore()
    projector = Projector(store, ClientCalendars())

    async def both() -> None:
        projecting_first = asyncio.create_task(projector.project(first))
        projecting_second = asyncio.create_task(projector.project(second))
        await asyncio.wait_for(until(lambda: store.offsets_stored() == [102]), ENDS_WITHIN_S)
        store.release.set()
        await asyncio.wait_for(asyncio.gather(projecting_first, projecting_second), ENDS_WITHIN_S)

    asyncio.run(both())

    assert [(row.offset, row.sign, row.minutes) for row in store.ledger()] == [
        (101, 1, 90),
        (102, -1, -90),
        (102, 1, 30),
    ]


#: Long enough for a projection that ends by itself; a projection still retrying by then never would.
ENDS_WITHIN_S = 5.0


def projected(projector: Projector, batch: list[Delivery]) -> list[tuple[Delivery, str]]:
    """What projecting `batch` refuses, once it has returned; raises what it raises, or TimeoutError if it keeps
    retrying."""

    async def project() -> list[tuple[Delivery, str]]:
        return await asyncio.wait_for(projector.project(batch), ENDS_WITHIN_S) or []

    return asyncio.run(project())


@pytest.mark.parametrize("error", [CLICKHOUSE_RESTARTING, CLICKHOUSE_OUT_OF_MEMORY], ids=type)
def test_clickhouse_down_is_waited_for_and_the_batch_then_lands(error: Exception) -> None:
    store = FlakyStore(failures=3, error=error)

    refused = projected(Projector(store, ClientCalendars(), first_retry_seconds=0), a_batch())

    assert refused == [] and store.attempts == 5
    assert store.offsets_stored() == [100, 101, 102, 9] and len(store.inserts) == 1


class BrokenCalendars(ClientCalendars):
    """A defect in what a processor calls: not a dependency being down, and not the event's fault."""

    def minutes_inside(self, client_id: str, start: datetime, minutes: int) -> int:
        raise AssertionError("business minutes computed from a calendar that does not exist")


def test_a_defect_in_a_processor_ends_the_projection_instead_of_being_retried() -> None:
    store = FlakyStore()

    with pytest.raises(AssertionError, match="calendar that does not exist"):
        projected(Projector(store, BrokenCalendars(), first_retry_seconds=0), a_batch())

    assert store.messages == [] and store.inserts == []


@pytest.mark.parametrize(
    "error",
    [
        DatabaseError("Code: 60. DB::Exception: Table default.worklogs does not exist. (UNKNOWN_TABLE)", code=60),
        DataError("Unable to create native array for column `minutes`: error"),
        ProgrammingError("The client has been closed"),
        TypeError("'NoneType' object is not subscriptable"),
    ],
    ids=type,
)
def test_an_insert_clickhouse_refuses_for_good_ends_the_projection(error: Exception) -> None:
    """Tables that do not match the code, rows that do not fit them: trying again would refuse the same."""
    store = FlakyStore(failures=1, error=error)

    with pytest.raises(type(error)):
        projected(Projector(store, ClientCalendars(), first_retry_seconds=0), a_batch())

    assert store.attempts == 1


class RefusingCalendars(ClientCalendars):
    """Rejects the worklogs of one client, as a processor rejects an event it cannot project."""

    def minutes_inside(self, client_id: str, start: datetime, minutes: int) -> int:
        if client_id == "initech":
            raise InvalidEvent("performed_at: no calendar of initech covers it")
        return super().minutes_inside(client_id, start, minutes)


def test_an_event_a_processor_rejects_is_refused_with_its_reason_and_the_rest_lands() -> None:
    store = FlakyStore()
    rejected = read(a_worklog_recorded("T-9", 2, client_id="initech"), 4, 55)
    batch = a_batch()

    refused = projected(Projector(store, RefusingCalendars()), [*batch[:2], rejected, *batch[2:]])

    assert refused == [(rejected, "performed_at: no calendar of initech covers it")]
    assert store.offsets_stored() == [100, 101, 102, 9]
    (inserted,) = store.inserts
    assert [row.offset for row in inserted] == [101]


def test_an_event_whose_version_the_tables_cannot_hold_is_refused_and_the_rest_lands() -> None:
    """Versions are UInt32 columns that the tables collapse by: a bigger one would fail the whole batch's insert."""
    store = FlakyStore()
    too_new = a_worklog_recorded("T-7", 2**32, minutes=30)
    rejected = read(too_new, 3, 104)

    refused = projected(Projector(store, ClientCalendars()), [*a_batch(), rejected])

    assert refused == [(rejected, "aggregate_version: 4294967296 is more than the tables hold (4294967295)")]
    assert store.offsets_stored() == [100, 101, 102, 9]
    (inserted,) = store.inserts
    assert [row.offset for row in inserted] == [101]


@pytest.mark.parametrize("refused_offset", [100, 101, 102, 9])
def test_a_message_clickhouse_refuses_is_found_by_bisecting_and_the_rest_lands(refused_offset: int) -> None:
    store = FlakyStore(refused_offsets={refused_offset})
    batch = a_batch()

    refused = projected(Projector(store, ClientCalendars()), batch)

    (rejected,) = [delivery for delivery in batch if delivery.offset == refused_offset]
    assert refused == [(rejected, TIER_TOO_HIGH)]
    assert sorted(store.offsets_stored()) == sorted({100, 101, 102, 9} - {refused_offset})
    ledger = [row.offset for insert in store.inserts for row in insert]
    assert ledger == ([] if refused_offset == 101 else [101])  # a refused worklog is not counted either


def test_bisecting_finds_every_message_clickhouse_refuses_in_few_inserts() -> None:
    batch = [read(a_ticket_created(f"T-{number}"), 0, number) for number in range(64)]
    store = FlakyStore(refused_offsets={5, 40})

    refused = projected(Projector(store, ClientCalendars()), batch)

    assert [delivery.offset for delivery, _ in refused] == [5, 40]
    assert sorted(store.offsets_stored()) == [offset for offset in range(64) if offset not in {5, 40}]
    assert store.attempts <= 2 * 2 * 6 + 1  # two paths down a tree of depth log2(64), two inserts a level


def test_an_unknown_event_type_decodes_to_its_envelope_encoded_for_clickhouse() -> None:
    payload = json.loads(encode(a_ticket_created("T-7")))
    payload.update(event_type="ticket.merged", data={"into": "T-1"})

    arrival = topic_decoder(TICKETS_EVENTS)(json.dumps(payload).encode())

    assert type(arrival.event) is Envelope and arrival.event.event_type == "ticket.merged"
    assert arrival.current == encode(arrival.event)


def test_an_event_as_the_contract_writes_it_goes_to_clickhouse_as_read() -> None:
    message = encode(a_ticket_created("T-7"))

    arrival = topic_decoder(TICKETS_EVENTS)(message)

    assert isinstance(arrival.event, TicketCreated) and arrival.current == b""


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ((b'"schema_version":4', b'"schema_version":1'), "an older schema_version, upcast"),
        ((b'"rating":4', b'"rating":"4"'), "a number the contract coerces from a string"),
    ],
)
def test_any_other_event_goes_to_clickhouse_re_encoded_beside_the_message(
    written: tuple[bytes, bytes], why: str
) -> None:
    event = a_comment("T-7", 4) if b"schema_version" in written[0] else a_csat("T-7", 5, 4)
    message = encode(event).replace(*written)
    if b"schema_version" in written[0]:
        message = message.replace(b'"visibility":"public"', b'"public":true')
    assert message != encode(event), why

    arrival = topic_decoder(TICKETS_EVENTS)(message)

    assert arrival.event == event and arrival.current == encode(event)


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

    assert isinstance(decode[TICKETS_EVENTS](encode(a_ticket_created("T-7"))).event, TicketCreated)
    assert isinstance(decode[SLA_EVENTS](encode(an_sla_event("breached", "T-7"))).event, SlaBreached)
    assert isinstance(decode[ASSIGNMENT_EVENTS](encode(an_escalation("T-7"))).event, TicketEscalated)


def test_an_event_of_another_topic_is_not_taken_for_one_of_this_topic() -> None:
    arrival: Arrival = topic_decoder(TICKETS_EVENTS)(encode(an_sla_event("breached", "T-7")))

    assert type(arrival.event) is Envelope and arrival.event.event_type == "sla.breached"
