"""The reporting tables as ClickHouse's views fill them, on a real chDB: each batch of messages goes into `inbox` as
the consumer hands it over, and the views of deploy/clickhouse/011_projection_in_clickhouse.sql write every table but
the worklog ledger. They are held here to what the Python processors wrote for the same events before the views
replaced them: which tables an event concerns, the value of every column, the message's partition and offset, older
schema versions upcast, redelivery that adds nothing, and the insert refused for a value a column cannot hold.

One chDB directory serves the whole module (chDB opens one per process at a time). Every test makes tickets of its
own and reads its messages at offsets no other test uses: a batch's deduplication token is made of its offsets, so
two batches at the same offsets would be taken for one.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.projector import refuses_a_message
from reporting.warehouse import Warehouse
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from tests.reporting_events import (
    EVENTS,
    SLA_EVENT_TYPES,
    a_comment,
    a_csat,
    a_priority_change,
    a_status_change,
    a_worklog_corrected,
    a_worklog_voided,
    an_assignment,
    an_escalation,
    an_sla_event,
    an_unassignable,
    an_unknown_event,
    every_kind_of_event,
    read,
    topic_of,
)
from ticketstream_shared.contract import Envelope, encode
from ticketstream_shared.runtime.consumer import Delivery

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"

E = TypeVar("E", bound=Envelope)

#: Offsets of the batches of this module's tests, none read twice unless a test redelivers on purpose.
_OFFSETS = itertools.count(1)
#: The hypothesis examples read at offsets above these, one range per example.
_EXAMPLE_OFFSETS = (example * 10**9 for example in itertools.count(1))

#: Every table the views fill, and what they hold of one ticket: the ticket itself in `tickets`, events elsewhere.
TABLES = (
    "ticket_events",
    "tickets",
    "worklogs",
    "ticket_status_changes",
    "ticket_comments",
    "csat_ratings",
    "sla_clock_events",
    "assignment_events",
)
#: The tables with a row per event, which keep the message's place.
EVENT_TABLES = tuple(table for table in TABLES if table != "tickets")

#: A ticket's current fields, as the reports read them from the argMax states (reporting/queries.py).
TICKET_STATE = """
    SELECT client_id, ticket_id, max(aggregate_version) AS aggregate_version,
           argMaxMerge(requester_id) AS requester_id, argMaxMerge(title) AS title,
           argMaxMerge(category) AS category, argMaxMerge(priority) AS priority, argMaxMerge(channel) AS channel,
           argMaxMerge(status) AS status, min(created_at) AS created_at, max(updated_at) AS updated_at
    FROM tickets
    WHERE ticket_id = {ticket_id:String}
    GROUP BY client_id, ticket_id
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The reporting tables, migrated, in a chDB directory of this module's own; closed at the end of the module."""
    warehouse = Warehouse(f"chdb://{tmp_path_factory.mktemp('chdb')}", MIGRATIONS)
    asyncio.run(warehouse.open())
    try:
        yield warehouse
    finally:
        asyncio.run(warehouse.close())


def insert(warehouse: Warehouse, deliveries: Sequence[Delivery]) -> None:
    asyncio.run(warehouse.insert_messages(deliveries))


def select(warehouse: Warehouse, sql: str, **parameters: Any) -> list[dict[str, Any]]:
    return asyncio.run(warehouse.select(sql, parameters)).records()


def delivered(*events: Envelope, partition: int = 0) -> list[Delivery]:
    """`events` as read one after the other from `partition`, at offsets no other batch of this module uses."""
    return [read(event, partition, next(_OFFSETS)) for event in events]


def naive(moment: datetime) -> datetime:
    """`moment` as clickhouse-connect reads a DateTime64 of UTC: in UTC, without its time zone."""
    return moment.replace(tzinfo=None)


def on_ticket(event: E, ticket_id: str, at: datetime | None = None) -> E:
    """`event` about another ticket (and at another moment), for builders that fix them."""
    return event.model_copy(update={"ticket_id": ticket_id, "occurred_at": at or event.occurred_at})


def with_data(event: E, **data: Any) -> E:
    """`event` with some of its data replaced."""
    return event.model_copy(update={"data": event.data.model_copy(update=data)})  # type: ignore[attr-defined]


def rows_of_ticket(warehouse: Warehouse, ticket_id: str, *, final: bool = False) -> dict[str, int]:
    """How many rows each table holds of `ticket_id` (FINAL: once merged by key)."""
    counts = " UNION ALL ".join(
        f"SELECT '{table}' AS table, count() AS rows FROM {table} {'FINAL' if final else ''} "
        "WHERE ticket_id = {ticket_id:String}"
        for table in TABLES
    )
    return {row["table"]: row["rows"] for row in select(warehouse, counts, ticket_id=ticket_id)}


def tables_holding(warehouse: Warehouse, event: Envelope) -> dict[str, int]:
    """The tables that took `event` (its rows by event_id; for `tickets`, the rows of its ticket), with their rows."""
    counts = " UNION ALL ".join(
        f"SELECT '{table}' AS table, count() AS rows FROM {table} WHERE "
        + ("ticket_id = {ticket_id:String}" if table == "tickets" else "event_id = {event_id:UUID}")
        for table in TABLES
    )
    rows = select(warehouse, counts, ticket_id=event.ticket_id, event_id=event.event_id)
    return {row["table"]: row["rows"] for row in rows if row["rows"]}


# --- ticket_events ---------------------------------------------------------------------------------------------------


def test_every_event_of_every_topic_is_kept_as_read(warehouse: Warehouse) -> None:
    deliveries = delivered(*EVENTS, partition=1)

    insert(warehouse, deliveries)

    kept = select(
        warehouse,
        "SELECT * FROM ticket_events WHERE event_id IN {event_ids:Array(UUID)}",
        event_ids=[event.event_id for event in EVENTS],
    )
    assert {row.pop("event_id"): row for row in kept} == {
        event.event_id: {
            "event_type": event.event_type,
            "schema_version": event.schema_version,
            "occurred_at": naive(event.occurred_at),
            "ticket_id": event.ticket_id,
            "client_id": event.client_id,
            "aggregate_version": event.aggregate_version,
            "producer": event.producer,
            "correlation_id": event.correlation_id,
            "payload": encode(event).decode(),
            "topic": topic_of(event),
            "partition": 1,
            "offset": delivery.offset,
        }
        for event, delivery in zip(EVENTS, deliveries, strict=True)
    }


def test_the_payload_is_the_message_as_read_with_fields_the_contract_does_not_know_yet(warehouse: Warehouse) -> None:
    created = a_ticket_created("T-2001", title="Scanner jams on every page")
    message = encode(created).replace(b"{", b'{"added_in_a_later_version": 1, ', 1)

    insert(warehouse, [read(created, 4, next(_OFFSETS), message=message)])

    assert select(
        warehouse, "SELECT payload FROM ticket_events WHERE event_id = {event_id:UUID}", event_id=created.event_id
    ) == [{"payload": message.decode()}]
    assert select(warehouse, TICKET_STATE, ticket_id="T-2001")[0]["title"] == "Scanner jams on every page"


# --- tickets ---------------------------------------------------------------------------------------------------------


def test_a_created_ticket_sets_every_field(warehouse: Warehouse) -> None:
    created = a_ticket_created("T-3001", "globex", requester_id="bob", channel="email", occurred_at=T0)

    insert(warehouse, delivered(created))

    assert select(warehouse, TICKET_STATE, ticket_id="T-3001") == [
        {
            "client_id": "globex",
            "ticket_id": "T-3001",
            "aggregate_version": 1,
            "requester_id": "bob",
            "title": "Printer on fire",
            "category": "hardware",
            "priority": "P2",
            "channel": "email",
            "status": "new",
            "created_at": naive(T0),
            "updated_at": naive(T0),
        }
    ]


def test_a_ticket_created_without_a_channel_came_through_the_api(warehouse: Warehouse) -> None:
    created = a_ticket_created("T-3002", channel="phone")
    message = encode(created).replace(b'"channel":"phone",', b"")
    assert b'"channel"' not in message

    insert(warehouse, [read(created, 0, next(_OFFSETS), message=message)])

    assert select(warehouse, TICKET_STATE, ticket_id="T-3002")[0]["channel"] == "api"


def test_later_events_set_only_what_they_change(warehouse: Warehouse) -> None:
    ticket = "T-3003"
    created = {
        "client_id": "acme",
        "ticket_id": ticket,
        "aggregate_version": 1,
        "requester_id": "alice",
        "title": "Printer on fire",
        "category": "hardware",
        "priority": "P2",
        "channel": "api",
        "status": "new",
        "created_at": naive(T0),
        "updated_at": naive(T0),
    }
    insert(warehouse, delivered(a_ticket_created(ticket)))
    assert select(warehouse, TICKET_STATE, ticket_id=ticket) == [created]

    insert(warehouse, delivered(on_ticket(a_priority_change(2), ticket, T0 + timedelta(hours=1))))
    reprioritised = {**created, "aggregate_version": 2, "priority": "P1", "updated_at": naive(T0 + timedelta(hours=1))}
    assert select(warehouse, TICKET_STATE, ticket_id=ticket) == [reprioritised]

    insert(warehouse, delivered(a_status_change(ticket, 3, "new", "resolved", at=T0 + timedelta(hours=2))))
    resolved = {
        **reprioritised,
        "aggregate_version": 3,
        "status": "resolved",
        "updated_at": naive(T0 + timedelta(hours=2)),
    }
    assert select(warehouse, TICKET_STATE, ticket_id=ticket) == [resolved]

    insert(warehouse, delivered(a_comment(ticket, 4, at=T0 + timedelta(hours=3))))
    commented = {**resolved, "aggregate_version": 4, "updated_at": naive(T0 + timedelta(hours=3))}
    assert select(warehouse, TICKET_STATE, ticket_id=ticket) == [commented]


# --- worklogs --------------------------------------------------------------------------------------------------------

WORKLOG = "SELECT * FROM worklogs FINAL WHERE worklog_id = {worklog_id:UUID}"


def test_a_worklog_becomes_one_row_keyed_by_its_worklog_id(warehouse: Warehouse) -> None:
    worklog = a_worklog_recorded("T-4001", 5, minutes=90, billable=False, technician_id="tech-3")
    offset = next(_OFFSETS)

    insert(warehouse, [read(worklog, 2, offset)])

    assert select(warehouse, WORKLOG, worklog_id=worklog.data.worklog_id) == [
        {
            "worklog_id": worklog.data.worklog_id,
            "ticket_id": "T-4001",
            "client_id": "acme",
            "technician_id": "tech-3",
            "minutes": 90,
            "billable": False,
            "performed_at": naive(T0),
            "voided": False,
            "event_id": worklog.event_id,
            "aggregate_version": 5,
            "partition": 2,
            "offset": offset,
        }
    ]


def test_a_correction_and_a_void_rewrite_the_same_worklog_at_a_newer_version(warehouse: Warehouse) -> None:
    recorded = a_worklog_recorded("T-4002", 5, minutes=90)
    later = T0 + timedelta(hours=7)
    corrected = a_worklog_corrected(recorded, 6, minutes=120, performed_at=later, billable=False)
    voided = on_ticket(a_worklog_voided(recorded, 7), "T-4002", T0 + timedelta(days=1))

    def the_worklog() -> dict[str, Any]:
        (row,) = select(warehouse, WORKLOG, worklog_id=recorded.data.worklog_id)
        return row

    insert(warehouse, delivered(recorded))
    assert the_worklog()["minutes"] == 90

    insert(warehouse, delivered(corrected))
    assert {
        key: the_worklog()[key] for key in ("minutes", "billable", "performed_at", "voided", "aggregate_version")
    } == {
        "minutes": 120,
        "billable": False,
        "performed_at": naive(later),
        "voided": False,
        "aggregate_version": 6,
    }

    (void,) = delivered(voided)
    insert(warehouse, [void])
    assert the_worklog() == {
        "worklog_id": recorded.data.worklog_id,
        "ticket_id": "T-4002",
        "client_id": "acme",
        "technician_id": "",
        "minutes": 0,
        "billable": False,
        "performed_at": naive(voided.occurred_at),
        "voided": True,
        "event_id": voided.event_id,
        "aggregate_version": 7,
        "partition": 0,
        "offset": void.offset,
    }


def test_the_newest_version_of_a_worklog_wins_whatever_order_its_events_arrive_in(warehouse: Warehouse) -> None:
    recorded = a_worklog_recorded("T-4003", 5, minutes=45)
    corrected = a_worklog_corrected(recorded, 6, minutes=30)
    voided = a_worklog_voided(recorded, 7)

    for event in (voided, recorded, corrected):
        insert(warehouse, delivered(event))

    (row,) = select(warehouse, WORKLOG, worklog_id=recorded.data.worklog_id)
    assert (row["event_id"], row["voided"], row["minutes"]) == (voided.event_id, True, 0)


# --- which table takes what, and what it keeps ----------------------------------------------------------------------


def test_each_table_takes_only_the_events_it_concerns(warehouse: Warehouse) -> None:
    created = a_ticket_created("T-5001")
    worklog = a_worklog_recorded("T-5002", 5, minutes=90)
    moved = a_status_change("T-5003", 3, "new", "open")
    rated = a_csat("T-5004", 8, 4)
    breached = an_sla_event("breached", "T-5005")
    escalated = an_escalation("T-5006")
    merged = on_ticket(an_unknown_event(), "T-5007")

    insert(warehouse, delivered(created, worklog, moved, rated, breached, escalated, merged))

    assert tables_holding(warehouse, created) == {"ticket_events": 1, "tickets": 1}
    assert tables_holding(warehouse, worklog) == {"ticket_events": 1, "tickets": 1, "worklogs": 1}
    assert tables_holding(warehouse, moved) == {"ticket_events": 1, "tickets": 1, "ticket_status_changes": 1}
    assert tables_holding(warehouse, rated) == {"ticket_events": 1, "tickets": 1, "csat_ratings": 1}
    assert tables_holding(warehouse, breached) == {"ticket_events": 1, "sla_clock_events": 1}
    assert tables_holding(warehouse, escalated) == {"ticket_events": 1, "assignment_events": 1}
    assert tables_holding(warehouse, merged) == {"ticket_events": 1}


def test_sla_and_assignment_rows_carry_what_explains_them(warehouse: Warehouse) -> None:
    ticket = "T-6001"
    an_hour_in = T0 + timedelta(hours=1)
    warning = an_sla_event("warning", ticket, metric="resolution", at=an_hour_in, policy_version=3)
    paused = with_data(an_sla_event("paused", ticket, at=an_hour_in), reason="waiting_on_customer")
    breached = an_sla_event("breached", ticket, at=T0 + timedelta(hours=5))
    escalated = an_escalation(ticket)
    assigned = with_data(an_assignment(ticket, "tech-7"), previous_technician_id="tech-2")
    unassignable = an_unassignable(ticket)
    deliveries = delivered(warning, paused, breached, escalated, assigned, unassignable, partition=3)
    offsets = {delivery.event.event.event_id: delivery.offset for delivery in deliveries}

    insert(warehouse, deliveries)

    clocks = {
        row.pop("event_id"): row
        for row in select(warehouse, "SELECT * FROM sla_clock_events WHERE ticket_id = {ticket:String}", ticket=ticket)
    }
    clock = {
        "ticket_id": ticket,
        "client_id": "acme",
        "metric": "first_response",
        "policy_id": "standard",
        "policy_version": 1,
        "calendar_id": "office",
        "calendar_version": 1,
        "target_business_seconds": 4 * 3600,
        "deadline": naive(T0 + timedelta(hours=4)),
        "threshold": None,
        "reason": "",
        "partition": 3,
    }
    assert clocks == {
        warning.event_id: clock
        | {
            "metric": "resolution",
            "policy_version": 3,
            "event_type": "sla.warning",
            "occurred_at": naive(an_hour_in),
            "elapsed_business_seconds": 3600,
            "remaining_business_seconds": 3 * 3600,
            "threshold": 0.75,
            "offset": offsets[warning.event_id],
        },
        paused.event_id: clock
        | {
            "event_type": "sla.paused",
            "occurred_at": naive(an_hour_in),
            "elapsed_business_seconds": 3600,
            "remaining_business_seconds": 3 * 3600,
            "reason": "waiting_on_customer",
            "offset": offsets[paused.event_id],
        },
        breached.event_id: clock
        | {
            "event_type": "sla.breached",
            "occurred_at": naive(T0 + timedelta(hours=5)),
            "elapsed_business_seconds": 5 * 3600,
            "remaining_business_seconds": -3600,
            "offset": offsets[breached.event_id],
        },
    }

    decisions = {
        row.pop("event_id"): row
        for row in select(warehouse, "SELECT * FROM assignment_events WHERE ticket_id = {ticket:String}", ticket=ticket)
    }
    decision = {"ticket_id": ticket, "client_id": "acme", "occurred_at": naive(T0), "partition": 3}
    assert decisions == {
        escalated.event_id: decision
        | {
            "event_type": "assignment.escalated",
            "technician_id": None,
            "previous_technician_id": None,
            "team": "tier-2",
            "tier": 2,
            "from_tier": 1,
            "strategy": None,
            "reason": "first response at risk",
            "offset": offsets[escalated.event_id],
        },
        assigned.event_id: decision
        | {
            "event_type": "assignment.assigned",
            "technician_id": "tech-7",
            "previous_technician_id": "tech-2",
            "team": "front-line",
            "tier": 1,
            "from_tier": None,
            "strategy": "least_loaded",
            "reason": "least loaded among 3 on-shift tier-1 technicians",
            "offset": offsets[assigned.event_id],
        },
        unassignable.event_id: decision
        | {
            "event_type": "assignment.unassignable",
            "technician_id": None,
            "previous_technician_id": None,
            "team": "front-line",
            "tier": None,
            "from_tier": None,
            "strategy": None,
            "reason": "nobody with skill network is on shift",
            "offset": offsets[unassignable.event_id],
        },
    }


def test_status_changes_comments_and_ratings_keep_what_the_reports_read(warehouse: Warehouse) -> None:
    ticket = "T-6002"
    waiting = with_data(
        a_status_change(ticket, 3, "in_progress", "waiting_on_customer", "globex", T0 + timedelta(hours=1)),
        reason="asked for the printer's serial number",
    )
    internal = a_comment(
        ticket, 4, "globex", T0 + timedelta(hours=2), role="manager", author_id="mia", visibility="internal"
    )
    rated = with_data(a_csat(ticket, 5, 2, "globex", T0 + timedelta(days=1)), comment="slow to answer")
    deliveries = delivered(waiting, internal, rated, partition=7)
    first = deliveries[0].offset

    insert(warehouse, deliveries)

    by_ticket = "SELECT * FROM {table:Identifier} WHERE ticket_id = {ticket:String}"
    envelope = {"ticket_id": ticket, "client_id": "globex", "partition": 7}
    assert select(warehouse, by_ticket, table="ticket_status_changes", ticket=ticket) == [
        envelope
        | {
            "aggregate_version": 3,
            "occurred_at": naive(T0 + timedelta(hours=1)),
            "from_status": "in_progress",
            "to_status": "waiting_on_customer",
            "reason": "asked for the printer's serial number",
            "article_id": None,  # not solved by the requester with an article
            "event_id": waiting.event_id,
            "offset": first,
        }
    ]
    assert select(warehouse, by_ticket, table="ticket_comments", ticket=ticket) == [
        envelope
        | {
            "aggregate_version": 4,
            "occurred_at": naive(T0 + timedelta(hours=2)),
            "comment_id": internal.data.comment_id,
            "author_id": "mia",
            "author_role": "manager",
            "public": False,
            "event_id": internal.event_id,
            "offset": first + 1,
        }
    ]
    assert select(warehouse, by_ticket, table="csat_ratings", ticket=ticket) == [
        envelope
        | {
            "rating": 2,
            "comment": "slow to answer",
            "occurred_at": naive(T0 + timedelta(days=1)),
            "aggregate_version": 5,
            "event_id": rated.event_id,
            "offset": first + 2,
        }
    ]


def test_rows_keep_the_partition_and_offset_of_their_message(warehouse: Warehouse) -> None:
    ticket = "T-7001"
    deliveries = [read(event, partition, next(_OFFSETS)) for partition, event in enumerate(every_kind_of_event(ticket))]
    places = {delivery.event.event.event_id: (delivery.partition, delivery.offset) for delivery in deliveries}

    insert(warehouse, deliveries)

    for table in EVENT_TABLES:
        kept = select(
            warehouse,
            "SELECT event_id, partition, offset FROM {table:Identifier} WHERE ticket_id = {ticket:String}",
            table=table,
            ticket=ticket,
        )
        assert kept, f"{table} took none of the events"
        assert {row["event_id"]: (row["partition"], row["offset"]) for row in kept}.items() <= places.items(), table
    assert rows_of_ticket(warehouse, ticket)["ticket_events"] == len(places)


# --- redelivery ------------------------------------------------------------------------------------------------------

#: What each table holds of a ticket given one event of every kind (every_kind_of_event): the versions of its
#: worklog and the rows of one key collapse within the insert.
ONE_OF_EVERY_KIND = {
    "ticket_events": 18,
    "tickets": 1,
    "worklogs": 1,
    "ticket_status_changes": 1,
    "ticket_comments": 1,
    "csat_ratings": 1,
    "sla_clock_events": 6,
    "assignment_events": 3,
}


def test_the_same_batch_inserted_twice_adds_no_row_even_without_final(warehouse: Warehouse) -> None:
    batch = delivered(*every_kind_of_event("T-8001"), partition=5)

    insert(warehouse, batch)
    assert rows_of_ticket(warehouse, "T-8001") == ONE_OF_EVERY_KIND

    insert(warehouse, batch)
    assert rows_of_ticket(warehouse, "T-8001") == ONE_OF_EVERY_KIND


def test_a_redelivery_in_batches_of_other_boundaries_collapses_by_key(warehouse: Warehouse) -> None:
    ticket = "T-8002"
    batch = delivered(*every_kind_of_event(ticket), partition=6)
    insert(warehouse, batch)
    state = select(warehouse, TICKET_STATE, ticket_id=ticket)

    for half in (batch[9:], batch[:9]):
        insert(warehouse, half[::-1])

    assert rows_of_ticket(warehouse, ticket, final=True) == ONE_OF_EVERY_KIND
    assert select(warehouse, TICKET_STATE, ticket_id=ticket) == state
    assert state[0]["aggregate_version"] == 8


# --- older schemas, and values a column cannot hold ------------------------------------------------------------------


@pytest.mark.parametrize("public", [True, False])
def test_a_comment_of_schema_version_1_is_upcast(warehouse: Warehouse, public: bool) -> None:
    comment = a_comment(f"T-9001-{public}", 4)
    message = (
        encode(comment)
        .replace(b'"visibility":"public"', f'"public":{str(public).lower()}'.encode())
        .replace(b'"schema_version":4', b'"schema_version":1')
        .replace(b',"actor":null', b"")
    )
    assert b'"visibility"' not in message and b'"actor"' not in message and b'"schema_version":1' in message

    insert(warehouse, [read(comment, 0, next(_OFFSETS), message=message)])

    assert select(
        warehouse,
        "SELECT comment_id, public FROM ticket_comments WHERE event_id = {event_id:UUID}",
        event_id=comment.event_id,
    ) == [{"comment_id": comment.data.comment_id, "public": public}]
    assert select(
        warehouse,
        "SELECT schema_version, payload FROM ticket_events WHERE event_id = {event_id:UUID}",
        event_id=comment.event_id,
    ) == [{"schema_version": 4, "payload": message.decode()}]


@pytest.mark.parametrize(
    ("beyond", "reason"),
    [
        (lambda ticket: with_data(an_assignment(ticket, "tech-5"), tier=300), "tier: above 255"),
        (lambda ticket: with_data(an_escalation(ticket), to_tier=256), "tier: above 255"),
        (lambda ticket: an_sla_event("breached", ticket, policy_version=2**32), "a version or a number of business"),
    ],
    ids=["an assignment's tier", "an escalation's tier", "an sla clock's policy version"],
)
def test_a_value_the_contract_accepts_but_a_column_cannot_hold_refuses_the_insert(
    warehouse: Warehouse, beyond: Callable[[str], Envelope], reason: str
) -> None:
    """Refused before any table is written, whichever order ClickHouse pushes the batch to the views in: the
    bisection then inserts the rest again, and nothing of it may be in a table twice."""
    ticket = f"T-91{uuid.uuid4().hex[:8]}"
    batch = delivered(a_ticket_created(ticket), beyond(ticket))

    with pytest.raises(DatabaseError, match=reason) as refused:
        insert(warehouse, batch)

    assert refuses_a_message(refused.value)
    assert rows_of_ticket(warehouse, ticket) == dict.fromkeys(TABLES, 0)
    insert(warehouse, batch[:1])  # what bisecting the batch leaves of it
    assert rows_of_ticket(warehouse, ticket) == dict.fromkeys(TABLES, 0) | {"ticket_events": 1, "tickets": 1}


@pytest.mark.parametrize(
    "written",
    [
        "2026-03-02T09:00:00.250Z",
        "2026-03-02T09:00:00.250z",
        "2026-03-02t09:00:00.250Z",
        "2026-03-02 09:00:00.250Z",
        "2026-03-02_09:00:00.250Z",
        "2026-03-02T09:00:00,250Z",
        "2026-03-02T11:00:00.250+02:00",
        "2026-03-02T11:00:00.250+0200",
        "2026-03-02T04:30:00.2509999-04:30",
    ],
)
def test_a_moment_in_any_form_of_rfc_3339_is_read_as_the_contract_reads_it(warehouse: Warehouse, written: str) -> None:
    created = a_ticket_created(f"T-92{abs(hash(written)) % 10**6}")
    message = encode(created).replace(b'"2026-03-02T09:00:00Z"', f'"{written}"'.encode())
    delivery = read(created, 0, next(_OFFSETS), message=message)
    read_by_the_contract = delivery.event.event.occurred_at
    assert T0 + timedelta(milliseconds=250) <= read_by_the_contract < T0 + timedelta(milliseconds=251)

    insert(warehouse, [delivery])

    (row,) = select(warehouse, "SELECT occurred_at FROM ticket_events WHERE event_id = {id:UUID}", id=created.event_id)
    assert row["occurred_at"] == naive(T0 + timedelta(milliseconds=250))


@pytest.mark.parametrize(
    ("replaced", "by", "reason"),
    [
        (b'"occurred_at":"2026-03-02T09:00:00Z"', b'"occurred_at":"1772442000"', "occurred_at: not a moment"),
        (b'"title":', b'"title":"Printer fine","title":', "a key appears twice in the message"),
        (b'"client_id":', b'"client_id":"globex","client_id":', "a key appears twice in the message"),
    ],
    ids=["a Unix time in a string", "a data key twice", "an envelope key twice"],
)
def test_a_message_the_views_would_read_otherwise_than_the_contract_is_refused(
    warehouse: Warehouse, replaced: bytes, by: bytes, reason: str
) -> None:
    """The contract takes these (a Unix time for a moment, a repeated key's last value); rather than read them
    otherwise, ClickHouse refuses them, and the projector dead-letters them with its reason."""
    created = a_ticket_created(f"T-93{abs(hash(reason + str(by))) % 10**6}")
    message = encode(created).replace(replaced, by, 1)
    assert message != encode(created)
    delivery = read(created, 0, next(_OFFSETS), message=message)
    assert delivery.event.event == created  # the contract's reading

    with pytest.raises(DatabaseError, match=reason) as refused:
        insert(warehouse, [delivery])

    assert refuses_a_message(refused.value)
    assert rows_of_ticket(warehouse, created.ticket_id) == dict.fromkeys(TABLES, 0)


# --- a property: any mix of events, read anywhere, is kept once ------------------------------------------------------

KINDS: dict[str, Callable[[str], Envelope]] = {
    "created": a_ticket_created,
    "reprioritised": lambda ticket: on_ticket(a_priority_change(2), ticket),
    "resolved": lambda ticket: a_status_change(ticket, 3, "in_progress", "resolved"),
    "commented": lambda ticket: a_comment(ticket, 4),
    "worked": lambda ticket: a_worklog_recorded(ticket, 5),
    "corrected": lambda ticket: a_worklog_corrected(a_worklog_recorded(ticket, 5), 6, minutes=15),
    "voided": lambda ticket: a_worklog_voided(a_worklog_recorded(ticket, 5), 7),
    "rated": lambda ticket: a_csat(ticket, 8, 3),
    "merged": lambda ticket: on_ticket(an_unknown_event(), ticket),
    **{f"sla {kind}": lambda ticket, kind=kind: an_sla_event(kind, ticket) for kind in SLA_EVENT_TYPES},
    "assigned": lambda ticket: an_assignment(ticket, "tech-4"),
    "escalated": an_escalation,
    "unassignable": an_unassignable,
}

#: (kind of event, partition, offset) of each message of a batch; no two at one place.
batches = st.lists(
    st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 11), st.integers(0, 10**6)),
    min_size=1,
    max_size=20,
    unique_by=lambda message: message[1:],
)


def copies_kept(warehouse: Warehouse, ticket_id: str, *, final: bool) -> list[tuple[uuid.UUID, int, int, int]]:
    """(event_id, rows, partition, offset) of each event of `ticket_id` in ticket_events (FINAL: once merged)."""
    return sorted(
        asyncio.run(
            warehouse.select(
                f"SELECT event_id, count(), any(partition), any(offset) FROM ticket_events {'FINAL' if final else ''} "
                "WHERE ticket_id = {ticket_id:String} GROUP BY event_id",
                {"ticket_id": ticket_id},
            )
        ).rows
    )


@settings(max_examples=25, deadline=None)
@given(batch=batches, split=st.integers(0, 20))
def test_any_mix_of_events_read_anywhere_is_kept_once(
    warehouse: Warehouse, batch: list[tuple[str, int, int]], split: int
) -> None:
    ticket = f"T-{uuid.uuid4().hex[:12]}"
    first_offset = next(_EXAMPLE_OFFSETS)
    deliveries = [read(KINDS[kind](ticket), partition, first_offset + offset) for kind, partition, offset in batch]
    once = sorted((delivery.event.event.event_id, 1, delivery.partition, delivery.offset) for delivery in deliveries)

    insert(warehouse, deliveries)
    insert(warehouse, deliveries)
    assert copies_kept(warehouse, ticket, final=False) == once

    for part in (deliveries[split:], deliveries[:split]):
        if part:
            insert(warehouse, part[::-1])
    assert copies_kept(warehouse, ticket, final=True) == once
