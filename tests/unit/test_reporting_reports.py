"""Hours per client: parameters checked before ClickHouse sees them, roles and client scoping, JSON and CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from reporting.api import REPORTS, install
from reporting.queries import NO_SERVICES, Services, hours_per_client_sql, statement_for
from reporting.reports import (
    BacklogQuery,
    Granularity,
    HoursPerClientQuery,
    Report,
    ReportQuery,
    ReportsUnavailable,
)
from tests.builders import T0
from tests.keys import ACME_MANAGER, ADMIN, INTEGRATION, MANAGER, REQUESTER, TECHNICIAN, TEST_KEYS, bearer
from tests.unit.test_sla_clocks import config
from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract.sla import ServiceChanged
from ticketstream_shared.runtime.http import create_service_app

URL = "/v1/reports/hours-per-client"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


class FakeWarehouse:
    """Answers with a fixed report and remembers the queries it was asked."""

    def __init__(self) -> None:
        self.asked: list[ReportQuery] = []
        self.down = False

    async def report(self, query: ReportQuery, services: Services = NO_SERVICES) -> Report:
        self.asked.append(query)
        if self.down:
            raise ReportsUnavailable("ClickHouse does not answer: connection refused")
        return Report(
            ("client_id", "period", "hours", "billable_hours", "tickets", "worklogs"),
            [("acme", date(2026, 3, 2), 1.5, 1.0, 1, 2), ("globex", date(2026, 3, 2), 0.25, 0.0, 1, 1)],
        )


@pytest.fixture
def warehouse() -> FakeWarehouse:
    return FakeWarehouse()


@pytest.fixture
def http(warehouse: FakeWarehouse) -> TestClient:
    app = create_service_app(service="reporting", keys=TEST_KEYS, readiness=lambda: {})
    install(app, warehouse, lambda: NO_SERVICES)
    return TestClient(app)


def test_a_query_covers_whole_utc_days() -> None:
    query = HoursPerClientQuery.model_validate({"from": "2026-03-01", "to": "2026-03-01"})

    assert query.utc_interval() == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"from": "2026-03-31", "to": "2026-03-01"}, "to", "must not be before from (2026-03-31)"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "day value is outside expected range"),
        ({"from": "1/3/2026", "to": "2026-03-01"}, "from", "must be a date as YYYY-MM-DD"),
        ({"from": "1700000000", "to": "2026-03-01"}, "from", "must be a date as YYYY-MM-DD"),
        ({"from": "0001-01-01", "to": "2026-03-01"}, "from", "must be between 1970-01-01 and 2199-12-31"),
        ({"from": "2026-03-01", "to": "2026-03-31", "granularity": "hour"}, "granularity", "'day', 'week' or"),
        ({"from": "2026-03-01", "to": "2026-03-31", "client_id": "a b"}, "client_id", "should match pattern"),
        ({"to": "2026-03-01"}, "from", "Field required"),
    ],
)
def test_invalid_parameters_are_named(params: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        HoursPerClientQuery.model_validate(params)

    (error,) = raised.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


def test_a_backlog_lists_at_most_366_days() -> None:
    assert BacklogQuery.model_validate({"from": "2028-01-01", "to": "2028-12-31"}).to == date(2028, 12, 31)
    with pytest.raises(ValidationError) as raised:
        BacklogQuery.model_validate({"from": "2028-01-01", "to": "2029-01-01"})
    (error,) = raised.value.errors()
    assert error["loc"] == ("to",)
    assert "at most 366 days, to 2028-12-31" in error["msg"]


@pytest.mark.parametrize(
    ("period", "last_allowed"),
    [("week", date(2035, 1, 7)), ("month", date(2058, 6, 30))],  # 366 weeks from Monday 2028-01-03's; months
)
def test_a_backlog_by_week_or_month_lists_at_most_366_of_them(period: str, last_allowed: date) -> None:
    start = "2028-01-03" if period == "week" else "2028-01-01"
    query = BacklogQuery.model_validate({"from": start, "to": last_allowed.isoformat(), "granularity": period})
    assert len(query.days_told()) == 366 and query.days_told()[-1] == last_allowed
    with pytest.raises(ValidationError) as raised:
        BacklogQuery.model_validate({"from": start, "to": str(last_allowed + timedelta(days=1)), "granularity": period})
    (error,) = raised.value.errors()
    assert error["loc"] == ("to",)
    assert f"a backlog lists every {period}: at most 366 {period}s, to {last_allowed}" in error["msg"]


@pytest.mark.parametrize(
    ("period", "span", "told"),
    [
        (None, ("2026-02-27", "2026-03-02"), ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]),
        ("week", ("2026-03-01", "2026-03-01"), ["2026-03-01"]),  # a Sunday: its week ends that day
        ("week", ("2026-03-02", "2026-03-16"), ["2026-03-08", "2026-03-15", "2026-03-16"]),
        ("month", ("2024-01-31", "2024-03-01"), ["2024-01-31", "2024-02-29", "2024-03-01"]),
        ("month", ("2026-11-15", "2027-01-31"), ["2026-11-30", "2026-12-31", "2027-01-31"]),
    ],
)
def test_a_backlog_is_told_at_the_end_of_each_period_and_at_to(
    period: str | None, span: tuple[str, str], told: list[str]
) -> None:
    query = BacklogQuery.model_validate({"from": span[0], "to": span[1], "granularity": period})
    assert [day.isoformat() for day in query.days_told()] == told


def test_a_backlog_of_decades_is_a_422_naming_to(http: TestClient) -> None:
    """Found by the fuzz: every day of 2000-2028 for every client did not come within 10 s."""
    response = http.get(
        "/v1/reports/backlog", params={"from": "2000-01-01", "to": "2028-01-01"}, headers=bearer(MANAGER)
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["to"]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-31", "to": "2026-03-01"},
        {"from": "yesterday", "to": "2026-03-01"},
        {**MARCH, "granularity": "fortnight"},
        {**MARCH, "format": "xlsx"},
        {},
    ],
)
def test_bad_input_is_a_422_with_field_messages_never_a_500(http: TestClient, params: dict[str, str]) -> None:
    response = http.get(URL, params=params, headers=bearer(MANAGER))

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors and all(error["field"] and error["message"] for error in errors)


def test_rows_carry_hours_as_decimals(http: TestClient, warehouse: FakeWarehouse) -> None:
    response = http.get(URL, params={**MARCH, "granularity": "day"}, headers=bearer(ADMIN))

    assert response.status_code == 200
    assert response.json()["rows"][0] == {
        "client_id": "acme",
        "period": "2026-03-02",
        "hours": 1.5,
        "billable_hours": 1.0,
        "tickets": 1,
        "worklogs": 2,
    }
    assert warehouse.asked == [HoursPerClientQuery.model_validate({**MARCH, "granularity": Granularity.DAY})]


def test_csv_has_a_header_row(http: TestClient) -> None:
    response = http.get(URL, params={**MARCH, "format": "csv"}, headers=bearer(INTEGRATION))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines() == [
        "client_id,period,hours,billable_hours,tickets,worklogs",
        "acme,2026-03-02,1.5,1.0,1,2",
        "globex,2026-03-02,0.25,0.0,1,1",
    ]


@pytest.mark.parametrize("key", [TECHNICIAN, REQUESTER])
def test_technicians_and_requesters_may_not_read_it(http: TestClient, key: str) -> None:
    assert http.get(URL, params=MARCH, headers=bearer(key)).status_code == 403
    assert http.get(URL, params={"from": "bad"}, headers=bearer(key)).status_code == 403


def test_a_key_is_needed(http: TestClient) -> None:
    assert http.get(URL, params=MARCH).status_code == 401


def test_a_key_scoped_to_a_client_sees_only_that_client(http: TestClient, warehouse: FakeWarehouse) -> None:
    assert http.get(URL, params=MARCH, headers=bearer(ACME_MANAGER)).status_code == 200
    assert http.get(URL, params={**MARCH, "client_id": "acme"}, headers=bearer(ACME_MANAGER)).status_code == 200
    assert http.get(URL, params={**MARCH, "client_id": "globex"}, headers=bearer(ACME_MANAGER)).status_code == 403

    assert [query.client_id for query in warehouse.asked] == ["acme", "acme"]


def test_the_sql_groups_by_period_and_binds_every_value() -> None:
    query = HoursPerClientQuery.model_validate({**MARCH, "granularity": "week", "client_id": "acme"})

    sql, parameters = hours_per_client_sql(query)

    assert "acme" not in sql and "FINAL" not in sql
    assert "toMonday(day) AS period" in sql
    assert "GROUP BY client_id, period, ticket_id" in sql and "GROUP BY client_id, period\n" in sql
    assert parameters == {"first_day": date(2026, 3, 1), "last_day": date(2026, 3, 31), "client_id": "acme"}


def test_a_database_outage_is_a_503_not_a_500(http: TestClient, warehouse: FakeWarehouse) -> None:
    warehouse.down = True

    response = http.get(URL, params=MARCH, headers=bearer(MANAGER))

    assert response.status_code == 503
    assert "ClickHouse does not answer" in response.json()["detail"]


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_has_the_same_checks_and_scoping(http: TestClient, warehouse: FakeWarehouse, name: str) -> None:
    url = f"/v1/reports/{name}"

    assert http.get(url, params=MARCH, headers=bearer(TECHNICIAN)).status_code == 403
    assert http.get(url, params={"from": "2026-03-31", "to": "2026-03-01"}, headers=bearer(MANAGER)).status_code == 422
    assert http.get(url, params={**MARCH, "client_id": "globex"}, headers=bearer(ACME_MANAGER)).status_code == 403
    response = http.get(url, params={**MARCH, "format": "csv"}, headers=bearer(ACME_MANAGER))

    assert response.status_code == 200 and response.text.startswith("client_id,period,hours")
    assert [(type(query), query.client_id) for query in warehouse.asked] == [(REPORTS[name], "acme")]


@pytest.mark.parametrize("model", REPORTS.values(), ids=lambda model: model.__name__)
def test_every_report_binds_the_client_instead_of_writing_it_into_the_sql(model: type[ReportQuery]) -> None:
    sql, parameters = statement_for(model.model_validate({**MARCH, "client_id": "acme-corp"}))

    assert "acme-corp" not in sql
    assert parameters["client_id"] == "acme-corp"
    assert "{client_id:String}" in sql


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"by": "requester"}, "by"),
        ({"billable": "maybe"}, "billable"),
        ({"category": "no spaces allowed"}, "category"),
    ],
)
def test_hours_filters_are_checked(http: TestClient, params: dict[str, str], field: str) -> None:
    response = http.get(URL, params={**MARCH, **params}, headers=bearer(MANAGER))

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_reports_see_the_catalogue_as_it_stands() -> None:
    def service(service_id: str, categories: list[str], published: bool = True, at: datetime = T0) -> ServiceChanged:
        data = {"name": service_id.upper(), "owner_team": "it", "categories": categories, "published": published,
                "targets": {"P2": {"first_response_minutes": 60, "resolution_minutes": 480}}}  # fmt: skip
        return config(ServiceChanged, at, service_id=service_id, data=data)

    catalogue = ServiceCatalogue()
    for change in (service("vpn", ["network", "vpn"]), service("mail", ["mail"], published=False)):
        catalogue.apply(change)
    catalogue.apply(service("vpn", ["vpn"], at=T0 + timedelta(days=1)))

    assert Services.of(catalogue, T0) == Services(
        owners={"network": "vpn", "vpn": "vpn", "mail": "mail"}, names={"vpn": "VPN", "mail": "MAIL"}
    )  # drafts too: managers report on them
    assert Services.of(catalogue, T0 + timedelta(days=2)).owners == {"vpn": "vpn", "mail": "mail"}
