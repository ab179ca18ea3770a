"""Every report against real ClickHouse (chDB), fed by the projector as the service feeds it: events in
shuffled order, each delivered twice, corrections and voids before or after the worklogs they change.

The figures expected below are worked out by hand from the help desk's week described in `week()`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from reporting.business_hours import ClientCalendars
from reporting.projector import Projector
from reporting.queries import NO_SERVICES, Services
from reporting.reports import (
    BacklogQuery,
    CsatQuery,
    DeflectionsQuery,
    HoursPerClientQuery,
    ReportQuery,
    ResponseTimesQuery,
    ServicesOverviewQuery,
    SlaComplianceQuery,
    WorkloadQuery,
)
from reporting.settings import ReportingSettings
from reporting.warehouse import Warehouse
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from tests.reporting_events import (
    _ticket_envelope,
    a_comment,
    a_csat,
    a_status_change,
    a_worklog_corrected,
    a_worklog_voided,
    an_assignment,
    an_escalation,
    an_sla_event,
    read,
)
from ticketstream_shared.contract import Envelope, TicketUpdated

pytestmark = pytest.mark.integration

MONDAY = T0  # 2026-03-02 09:00 UTC
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


def at(days: int = 0, hours: float = 0) -> Any:
    return MONDAY + timedelta(days=days, hours=hours)


def week() -> list[Envelope]:
    """acme: a printer ticket (P2, hardware) answered, worked on, resolved and rated; a VPN ticket (P1, moved from
    software to network) nobody answered in time, still open. globex: a mail ticket (P2) resolved, reopened, closed.
    """
    printer = a_ticket_created("printer", "acme")
    vpn = a_ticket_created(
        "vpn", "acme", priority="P1", category="software", occurred_at=at(1, 1), service_id="remote-access"
    )
    mail = a_ticket_created("mail", "globex", category="network", occurred_at=at(0, 3))
    printer_work = a_worklog_recorded("printer", 4, minutes=90, technician_id="tech-1")
    late_work = a_worklog_recorded("printer", 5, minutes=60, billable=False, technician_id="tech-2",
                                   performed_at=at(0, 7.5))  # fmt: skip
    wrong_work = a_worklog_recorded("printer", 6, minutes=45, technician_id="tech-1")
    vpn_recategorised = TicketUpdated.model_validate(
        {
            **_ticket_envelope("vpn", "acme", 2, at(1, 2)),
            "data": {"changes": {"category": "network"}, "previous": {"category": "software"}},
        }
    )
    return [
        printer,
        a_comment("printer", 2, at=at(0, 0.25), role="requester"),  # not a response: the requester wrote it
        a_comment("printer", 3, at=at(0, 0.5)),
        printer_work,
        late_work,
        wrong_work,
        a_worklog_corrected(late_work, 7, minutes=120, performed_at=at(0, 7)),  # 16:00-18:00: 1 h inside
        a_worklog_voided(wrong_work, 8),
        a_status_change("printer", 9, "new", "in_progress", at=at(0, 0.5)),
        a_status_change("printer", 10, "in_progress", "resolved", at=at(0, 2), article_id="kb-toner"),  # self-solved
        a_csat("printer", 11, 3, at=at(0, 3)),
        a_csat("printer", 12, 5, at=at(0, 4)),  # rated again: the newest rating counts
        vpn,
        vpn_recategorised,
        a_worklog_recorded("vpn", 3, minutes=30, technician_id="tech-1", performed_at=at(5, 1)),  # a Saturday
        mail,
        a_comment("mail", 2, client_id="globex", at=at(0, 3 + 1 / 3)),
        a_worklog_recorded("mail", 3, minutes=15, client_id="globex", technician_id="tech-3", performed_at=at(0, 3)),
        a_status_change("mail", 4, "new", "in_progress", client_id="globex", at=at(0, 3.25)),
        a_status_change("mail", 5, "in_progress", "resolved", client_id="globex", at=at(0, 5)),
        a_status_change("mail", 6, "resolved", "in_progress", client_id="globex", at=at(2)),
        a_status_change("mail", 7, "in_progress", "closed", client_id="globex", at=at(3)),
        a_csat("mail", 8, 2, client_id="globex", at=at(3, 1)),
        an_sla_event("started", "printer"),
        an_sla_event("met", "printer", at=at(0, 0.5)),
        an_sla_event("met", "printer", metric="resolution", at=at(0, 2)),
        an_sla_event("breached", "vpn", at=at(1, 5)),
        an_sla_event("breached", "mail", client_id="globex", at=at(0, 7)),
        an_sla_event("met", "mail", client_id="globex", at=at(0, 3.5), policy_version=2),  # recomputed: met
        # Two rounds of next reply on the printer ticket, the first late: the ticket's promise was not kept.
        an_sla_event("breached", "printer", metric="next_reply", at=at(0, 1)),
        an_sla_event("met", "printer", metric="next_reply", at=at(0, 1.5)),
        an_sla_event("met", "printer", metric="next_reply", at=at(0, 1.75)),
        an_sla_event("met", "mail", metric="next_reply", client_id="globex", at=at(0, 4)),
        an_assignment("printer", "tech-1"),
        an_assignment("printer", "tech-2", at=at(0, 1)),
        an_assignment("vpn", "tech-1", at=at(1, 1)),
        an_escalation("vpn", at=at(1, 4)),
        an_assignment("mail", "tech-3", client_id="globex", at=at(0, 3)),
    ]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    settings = ReportingSettings(api_keys_file=Path("unused.json"), chdb_path=tmp_path_factory.mktemp("chdb"))
    store = Warehouse(settings.clickhouse_dsn(), settings.clickhouse_migrations_dir)
    deliveries = [read(event, offset=offset) for offset, event in enumerate(week())]
    shuffled = random.Random(6).sample(deliveries, len(deliveries))

    async def project() -> None:
        await store.open()
        projector = Projector(store, ClientCalendars())
        for first in range(0, len(shuffled), 10):  # batches of ten, in shuffled order
            await projector.project(shuffled[first : first + 10])
        await projector.project(deliveries)  # and everything again, as a replay would

    asyncio.run(project())
    yield store
    asyncio.run(store.close())


def rows(warehouse: Warehouse, query: ReportQuery, services: Services = NO_SERVICES) -> list[dict[str, Any]]:
    return asyncio.run(warehouse.report(query, services)).records()


#: The catalogue the service tests report with: the printer ticket's category is the workplace service's, the mail
#: ticket's network's; the VPN ticket names its service; printing has no ticket.
CATALOGUE = Services(
    owners={"hardware": "workplace", "network": "network"},
    names={"workplace": "Workplace", "network": "Network", "remote-access": "Remote access", "printing": "Printing"},
)


def test_hours_per_client_count_corrections_and_not_voids(warehouse: Warehouse) -> None:
    query = HoursPerClientQuery.model_validate({**MARCH, "business_hours": True})

    assert rows(warehouse, query) == [
        {"client_id": "acme", "hours": 4.0, "billable_hours": 2.0, "business_hours": 2.5,
         "outside_business_hours": 1.5, "tickets": 2, "worklogs": 3},
        {"client_id": "globex", "hours": 0.25, "billable_hours": 0.25, "business_hours": 0.25,
         "outside_business_hours": 0.0, "tickets": 1, "worklogs": 1},
    ]  # fmt: skip


def test_hours_by_technician_by_category_and_filtered(warehouse: Warehouse) -> None:
    def hours(**params: Any) -> list[tuple[Any, ...]]:
        found = rows(warehouse, HoursPerClientQuery.model_validate({**MARCH, "client_id": "acme", **params}))
        return [tuple(row.values())[:-3] for row in found]  # without billable hours, tickets, worklogs

    assert hours(by="technician") == [("acme", "tech-1", 2.0), ("acme", "tech-2", 2.0)]
    assert hours(by="category") == [("acme", "hardware", 3.5), ("acme", "network", 0.5)]
    assert hours(category="network", granularity="day") == [("acme", date(2026, 3, 7), 0.5)]
    assert hours(billable=False) == [("acme", 2.0)]
    assert hours(technician_id="tech-1", granularity="week") == [("acme", date(2026, 3, 2), 2.0)]


def test_sla_compliance_per_client_priority_and_metric(warehouse: Warehouse) -> None:
    assert rows(warehouse, SlaComplianceQuery.model_validate(MARCH)) == [
        {"client_id": "acme", "priority": "P1", "metric": "first_response", "met": 0, "breached": 1,
         "compliance_pct": 0.0},
        {"client_id": "acme", "priority": "P2", "metric": "first_response", "met": 1, "breached": 0,
         "compliance_pct": 100.0},
        {"client_id": "acme", "priority": "P2", "metric": "next_reply", "met": 0, "breached": 1,
         "compliance_pct": 0.0},
        {"client_id": "acme", "priority": "P2", "metric": "resolution", "met": 1, "breached": 0,
         "compliance_pct": 100.0},
        {"client_id": "globex", "priority": "P2", "metric": "first_response", "met": 1, "breached": 0,
         "compliance_pct": 100.0},
        {"client_id": "globex", "priority": "P2", "metric": "next_reply", "met": 1, "breached": 0,
         "compliance_pct": 100.0},
    ]  # fmt: skip
    only = SlaComplianceQuery.model_validate({**MARCH, "priority": "P1", "metric": "first_response"})
    assert [row["breached"] for row in rows(warehouse, only)] == [1]
    replies = SlaComplianceQuery.model_validate({**MARCH, "metric": "next_reply"})
    assert [(row["client_id"], row["compliance_pct"]) for row in rows(warehouse, replies)] == [
        ("acme", 0.0),
        ("globex", 100.0),
    ]


def test_response_times_percentiles(warehouse: Warehouse) -> None:
    found = {(row["client_id"], row["priority"]): row for row in rows(warehouse, ResponseTimesQuery(**MARCH))}

    assert set(found) == {("acme", "P1"), ("acme", "P2"), ("globex", "P2")}
    printer, mail, vpn = found["acme", "P2"], found["globex", "P2"], found["acme", "P1"]
    assert (printer["first_response_p50_minutes"], printer["resolution_p99_minutes"]) == (30.0, 120.0)
    assert (mail["first_response_p90_minutes"], mail["resolution_p50_minutes"]) == (20.0, 120.0)
    assert (vpn["tickets"], vpn["responded"], vpn["resolved"], vpn["first_response_p50_minutes"]) == (1, 0, 0, None)


def test_backlog_at_the_end_of_each_day(warehouse: Warehouse) -> None:
    query = BacklogQuery.model_validate({"from": "2026-03-02", "to": "2026-03-06"})

    backlog = [(row["client_id"], row["day"].day, row["backlog"]) for row in rows(warehouse, query)]

    assert backlog == [
        *(("acme", day, 0 if day == 2 else 1) for day in range(2, 7)),
        *(("globex", day, 1 if day == 4 else 0) for day in range(2, 7)),
    ]


@pytest.mark.parametrize(
    ("period", "told"),
    [
        ("week", ["2026-02-22", "2026-03-01", "2026-03-08", "2026-03-10"]),
        ("month", ["2026-02-28", "2026-03-31", "2026-04-10"]),
    ],
)
def test_the_backlog_by_week_or_month_is_the_days_backlog_at_each_ones_end(
    warehouse: Warehouse, period: str, told: list[str]
) -> None:
    """The last day of each period, the last one cut at `to`: the backlog there is the day's."""
    span = {"from": "2026-02-20", "to": told[-1]}
    daily = {(row["client_id"], row["day"]): row["backlog"] for row in rows(warehouse, BacklogQuery(**span))}

    found = rows(warehouse, BacklogQuery.model_validate({**span, "granularity": period}))

    assert [(row["client_id"], row["day"].isoformat()) for row in found] == [
        (client, day) for client in ("acme", "globex") for day in told
    ]
    assert [row["backlog"] for row in found] == [daily[row["client_id"], row["day"]] for row in found]
    assert any(row["backlog"] for row in found)


def test_technician_workload(warehouse: Warehouse) -> None:
    assert rows(warehouse, WorkloadQuery(**MARCH)) == [
        {"technician_id": "tech-1", "hours": 2.0, "billable_hours": 2.0, "worklogs": 2, "tickets_worked": 2,
         "assigned": 2, "open_tickets": 1},
        {"technician_id": "tech-2", "hours": 2.0, "billable_hours": 0.0, "worklogs": 1, "tickets_worked": 1,
         "assigned": 1, "open_tickets": 0},
        {"technician_id": "tech-3", "hours": 0.25, "billable_hours": 0.25, "worklogs": 1, "tickets_worked": 1,
         "assigned": 1, "open_tickets": 0},
    ]  # fmt: skip


def test_csat_counts_a_tickets_newest_rating(warehouse: Warehouse) -> None:
    assert rows(warehouse, CsatQuery(**MARCH)) == [
        {"client_id": "acme", "ratings": 1, "average_rating": 5.0, "satisfied_pct": 100.0,
         "rated_1": 0, "rated_2": 0, "rated_3": 0, "rated_4": 0, "rated_5": 1},
        {"client_id": "globex", "ratings": 1, "average_rating": 2.0, "satisfied_pct": 0.0,
         "rated_1": 0, "rated_2": 1, "rated_3": 0, "rated_4": 0, "rated_5": 0},
    ]  # fmt: skip


def test_a_client_scoped_query_sees_only_that_client(warehouse: Warehouse) -> None:
    for model in (HoursPerClientQuery, SlaComplianceQuery, ResponseTimesQuery, BacklogQuery, CsatQuery):
        found = rows(warehouse, model.model_validate({**MARCH, "client_id": "globex"}))
        assert found and {row["client_id"] for row in found} == {"globex"}
    assert [row["technician_id"] for row in rows(warehouse, WorkloadQuery(**MARCH, client_id="globex"))] == ["tech-3"]


def test_hours_and_compliance_by_service(warehouse: Warehouse) -> None:
    def hours(**params: Any) -> list[tuple[Any, ...]]:
        query = HoursPerClientQuery.model_validate({**MARCH, **params})
        return [(row["client_id"], row.get("service_id"), row["hours"]) for row in rows(warehouse, query, CATALOGUE)]

    assert hours(by="service") == [
        ("acme", "remote-access", 0.5),
        ("acme", "workplace", 3.5),
        ("globex", "network", 0.25),
    ]
    assert hours(service_id="workplace") == [("acme", None, 3.5)]
    # Without a catalogue, only the ticket naming its service has one.
    without = rows(warehouse, HoursPerClientQuery.model_validate({**MARCH, "by": "service"}))
    assert [(row["client_id"], row["service_id"]) for row in without] == [
        ("acme", ""), ("acme", "remote-access"), ("globex", "")
    ]  # fmt: skip

    compliance = SlaComplianceQuery.model_validate({**MARCH, "by": "service"})
    assert [
        (row["client_id"], row["service_id"], row["metric"], row["compliance_pct"])
        for row in rows(warehouse, compliance, CATALOGUE)
    ] == [
        ("acme", "remote-access", "first_response", 0.0),
        ("acme", "workplace", "first_response", 100.0),
        ("acme", "workplace", "next_reply", 0.0),
        ("acme", "workplace", "resolution", 100.0),
        ("globex", "network", "first_response", 100.0),
        ("globex", "network", "next_reply", 100.0),
    ]
    one = SlaComplianceQuery.model_validate({**MARCH, "service_id": "network"})
    assert [row["client_id"] for row in rows(warehouse, one, CATALOGUE)] == ["globex", "globex"]


def test_response_times_and_satisfaction_by_service(warehouse: Warehouse) -> None:
    times = ResponseTimesQuery.model_validate({**MARCH, "by": "service"})
    assert [
        (row["client_id"], row["service_id"], row["priority"], row["tickets"])
        for row in rows(warehouse, times, CATALOGUE)
    ] == [("acme", "remote-access", "P1", 1), ("acme", "workplace", "P2", 1), ("globex", "network", "P2", 1)]
    only = ResponseTimesQuery.model_validate({**MARCH, "service_id": "workplace"})
    assert [(row["client_id"], row["first_response_p50_minutes"]) for row in rows(warehouse, only, CATALOGUE)] == [
        ("acme", 30.0)
    ]
    csat = CsatQuery.model_validate({**MARCH, "by": "service"})
    assert [
        (row["client_id"], row["service_id"], row["ratings"], row["average_rating"])
        for row in rows(warehouse, csat, CATALOGUE)
    ] == [("acme", "workplace", 1, 5.0), ("globex", "network", 1, 2.0)]
    assert rows(warehouse, CsatQuery.model_validate({**MARCH, "service_id": "printing"}), CATALOGUE) == []


def test_the_backlog_by_service(warehouse: Warehouse) -> None:
    query = BacklogQuery.model_validate({"from": "2026-03-02", "to": "2026-03-06", "by": "service"})
    backlog = [(row["service_id"], row["day"].day, row["backlog"]) for row in rows(warehouse, query, CATALOGUE)]
    # As test_backlog_at_the_end_of_each_day, each client's tickets under their services.
    assert backlog == [
        *(("remote-access", day, 0 if day == 2 else 1) for day in range(2, 7)),
        *(("workplace", day, 0) for day in range(2, 7)),
        *(("network", day, 1 if day == 4 else 0) for day in range(2, 7)),
    ]
    network = BacklogQuery.model_validate({"from": "2026-03-02", "to": "2026-03-06", "service_id": "network"})
    assert [(row["client_id"], row["backlog"]) for row in rows(warehouse, network, CATALOGUE)] == [
        ("globex", 1 if day == 4 else 0) for day in range(2, 7)
    ]


def test_the_services_overview(warehouse: Warehouse) -> None:
    overview = rows(warehouse, ServicesOverviewQuery.model_validate(MARCH), CATALOGUE)
    assert overview == [
        {"service_id": "network", "name": "Network", "tickets": 1, "compliance_pct": 100.0,
         "first_response_p50_minutes": 20.0, "hours": 0.25},
        {"service_id": "printing", "name": "Printing", "tickets": 0, "compliance_pct": None,
         "first_response_p50_minutes": None, "hours": 0.0},
        {"service_id": "remote-access", "name": "Remote access", "tickets": 1, "compliance_pct": 0.0,
         "first_response_p50_minutes": None, "hours": 0.5},
        {"service_id": "workplace", "name": "Workplace", "tickets": 1, "compliance_pct": 66.7,
         "first_response_p50_minutes": 30.0, "hours": 3.5},
    ]  # fmt: skip
    acme = rows(warehouse, ServicesOverviewQuery.model_validate({**MARCH, "client_id": "acme"}), CATALOGUE)
    assert [(row["service_id"], row["tickets"]) for row in acme] == [
        ("network", 0), ("printing", 0), ("remote-access", 1), ("workplace", 1)
    ]  # fmt: skip


def test_deflections_per_service_and_article(warehouse: Warehouse) -> None:
    assert rows(warehouse, DeflectionsQuery.model_validate(MARCH), CATALOGUE) == [
        {"client_id": "acme", "service_id": "workplace", "article_id": "kb-toner", "deflections": 1}
    ]
    assert rows(warehouse, DeflectionsQuery.model_validate({**MARCH, "service_id": "network"}), CATALOGUE) == []
    assert rows(warehouse, DeflectionsQuery.model_validate({"from": "2026-03-03", "to": "2026-03-31"})) == []
