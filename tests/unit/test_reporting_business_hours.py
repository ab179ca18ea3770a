"""Worked hours inside and outside each client's own business hours: the calendars and agreements of sla.config,
the version in force at each worklog's performed_at. The builders here make sla.config changes as sla writes them;
the reporting integration tests use them too."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from reporting.business_hours import OFFICE_HOURS, ClientCalendars
from reporting.worklogs import worklog_rows
from tests.builders import a_worklog_recorded
from tests.reporting_events import read
from ticketstream_shared.business_time import version_in_force
from ticketstream_shared.contract.sla import (
    CalendarChanged,
    CalendarData,
    ClientAgreementChanged,
    ClientAgreementData,
    PolicyChanged,
    PolicyData,
    SlaConfigEvent,
)

BEGINNING = datetime(2026, 1, 1, tzinfo=UTC)


def _change(effective_at: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": min(effective_at, BEGINNING),
        "effective_at": effective_at,
        "producer": "sla",
        "correlation_id": "test",
        "changed_by": "admin",
    }


def a_calendar(calendar_id: str, effective_at: datetime = BEGINNING, **data: Any) -> CalendarChanged:
    return CalendarChanged(**_change(effective_at), calendar_id=calendar_id, data=CalendarData(**data))


def an_agreement(client_id: str, calendar_id: str, effective_at: datetime = BEGINNING) -> ClientAgreementChanged:
    return ClientAgreementChanged(
        **_change(effective_at), client_id=client_id, data=ClientAgreementData(calendar_id=calendar_id)
    )


def weekdays(start: str, end: str, days: int = 5) -> dict[str, list[dict[str, str]]]:
    names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return {name: [{"start": start, "end": end}] for name in names[:days]}


#: Office hours in Berlin, Good Friday 2026 off.
BERLIN = {"timezone": "Europe/Berlin", "week": weekdays("09:00", "17:00"), "holidays": [date(2026, 4, 3)]}
#: A night shift, 22:00 to 06:00 UTC, starting Monday to Friday.
NIGHTS = {"timezone": "UTC", "week": weekdays("22:00", "06:00")}
ALWAYS = {"timezone": "UTC", "always_open": True}
TARGETS = {"P1": {"first_response_minutes": 60, "resolution_minutes": 240}}


def calendars(*changes: SlaConfigEvent) -> ClientCalendars:
    folded = ClientCalendars()
    for change in changes:
        folded.apply(change)
    return folded


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_a_berlin_calendar_counts_local_hours_and_its_holiday() -> None:
    acme = calendars(a_calendar("berlin", **BERLIN), an_agreement("acme", "berlin"))

    assert acme.minutes_inside("acme", utc(3, 2, 7, 30), 60) == 30  # 08:30-09:30 CET: half before opening
    assert acme.minutes_inside("acme", utc(3, 2, 15, 30), 60) == 30  # 16:30-17:30 CET
    assert acme.minutes_inside("acme", utc(4, 2, 7, 0), 60) == 60  # 09:00-10:00 CEST, summer time
    assert acme.minutes_inside("acme", utc(4, 2, 15, 0), 60) == 0  # 17:00-18:00 CEST: closed
    assert acme.minutes_inside("acme", utc(4, 3, 8, 0), 120) == 0  # Good Friday
    assert acme.minutes_inside("acme", utc(4, 2, 14, 0), 4 * 24 * 60) == 60 + 7 * 60  # Thursday to Monday 16:00 CEST


def test_a_night_shift_counts_the_hours_past_midnight() -> None:
    night_desk = calendars(a_calendar("nights", **NIGHTS), an_agreement("night-desk", "nights"))

    assert night_desk.minutes_inside("night-desk", utc(3, 2, 21), 10 * 60) == 8 * 60  # Monday 21:00-Tuesday 07:00
    assert night_desk.minutes_inside("night-desk", utc(3, 7, 2), 60) == 60  # Saturday 02:00: Friday's shift
    assert night_desk.minutes_inside("night-desk", utc(3, 8, 2), 60) == 0  # Sunday 02:00: no Saturday shift
    assert night_desk.minutes_inside("night-desk", utc(3, 3, 12), 60) == 0  # Tuesday noon


def test_a_client_whose_agreement_changes_calendar_is_split_by_each_version_for_its_own_worklogs() -> None:
    switch = utc(3, 16, 0)
    acme = calendars(
        a_calendar("berlin", **BERLIN),
        a_calendar("nights", **NIGHTS),
        an_agreement("acme", "berlin"),
        an_agreement("acme", "nights", effective_at=switch),
    )
    before, after = utc(3, 10, 21), utc(3, 17, 21)  # Tuesdays, 21:00-22:00 UTC then 22:00-23:00 UTC

    assert [acme.minutes_inside("acme", at, 120) for at in (before, after)] == [0, 60]
    assert [acme.minutes_inside("acme", at, 60) for at in (utc(3, 10, 9), utc(3, 17, 9))] == [60, 0]
    assert acme.calendar_at("acme", switch - timedelta(microseconds=1)).calendar_id == "berlin"
    assert acme.calendar_at("acme", switch).calendar_id == "nights"


def test_a_calendar_change_applies_from_its_effective_time_to_every_client_on_it() -> None:
    longer_days = utc(3, 16, 0)
    acme = calendars(
        a_calendar("office", timezone="UTC", week=weekdays("09:00", "17:00")),
        a_calendar("office", longer_days, timezone="UTC", week=weekdays("07:00", "19:00")),
        an_agreement("acme", "office"),
        an_agreement("globex", "office"),
    )

    assert [acme.minutes_inside("acme", at, 60) for at in (utc(3, 10, 7), utc(3, 17, 7))] == [0, 60]
    assert acme.minutes_inside("globex", utc(3, 17, 18), 60) == 60
    assert acme.calendar_at("globex", utc(3, 17, 18)).version == 2


def test_without_an_agreement_or_a_defined_calendar_a_client_is_on_office_hours() -> None:
    book = calendars(
        a_calendar("always", **ALWAYS),
        an_agreement("acme", "not-yet-defined"),
        an_agreement("globex", "always", effective_at=utc(3, 16, 0)),
        PolicyChanged(**_change(BEGINNING), policy_id="p", data=PolicyData.model_validate({"targets": TARGETS})),
    )

    assert book.calendar_at("initech", utc(3, 10, 12)) is OFFICE_HOURS
    assert book.calendar_at("acme", utc(3, 10, 12)) is OFFICE_HOURS
    assert book.calendar_at("globex", utc(3, 10, 12)) is OFFICE_HOURS  # before its agreement takes effect
    assert book.minutes_inside("globex", utc(3, 21, 22), 60) == 60  # a Saturday night, 24x7


def test_the_version_in_force_is_the_latest_made_of_those_effective() -> None:
    versions = [(utc(3, 1, 0), "first"), (utc(3, 20, 0), "second"), (utc(3, 10, 0), "third, made last")]

    assert version_in_force(versions, utc(2, 1, 0)) is None
    assert version_in_force(versions, utc(3, 5, 0)) == "first"
    assert version_in_force(versions, utc(3, 15, 0)) == "third, made last"
    assert version_in_force(versions, utc(3, 25, 0)) == "third, made last"


def test_a_worklog_row_carries_the_minutes_inside_its_clients_calendar() -> None:
    night_desk = calendars(a_calendar("nights", **NIGHTS), an_agreement("night-desk", "nights"))
    worklog = a_worklog_recorded("T-1", 2, minutes=120, client_id="night-desk", performed_at=utc(3, 2, 21))

    (row,) = worklog_rows(read(worklog), night_desk)
    (office,) = worklog_rows(read(worklog), ClientCalendars())

    assert (row.minutes, row.business_minutes, office.business_minutes) == (120, 60, 0)
