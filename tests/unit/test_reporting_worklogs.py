"""A worklog's versions as the ledger takes them (reporting.worklogs): one row keyed by its worklog_id per event, with
its minutes inside its client's business hours (reporting.business_hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.worklogs import worklog_rows
from tests.builders import T0, a_worklog_recorded
from tests.reporting_events import NO_AGREEMENTS, TICKET, a_worklog_corrected, a_worklog_voided, read


def test_a_worklog_becomes_one_row_keyed_by_its_worklog_id() -> None:
    worklog = a_worklog_recorded(TICKET, 5, minutes=90, billable=False)

    (row,) = worklog_rows(read(worklog, 2, 40), NO_AGREEMENTS)

    assert (row.worklog_id, row.event_id, row.aggregate_version) == (worklog.data.worklog_id, worklog.event_id, 5)
    assert (row.client_id, row.ticket_id, row.technician_id) == ("acme", TICKET, "tech-1")
    assert (row.minutes, row.billable, row.performed_at, row.voided) == (90, False, T0, False)
    assert (row.partition, row.offset) == (2, 40)


def test_a_correction_and_a_void_rewrite_the_same_worklog_at_a_newer_version() -> None:
    recorded = a_worklog_recorded(TICKET, 5, minutes=90)
    later = T0 + timedelta(hours=7)  # Monday 16:00: one hour inside business hours, then after hours

    (original,) = worklog_rows(read(recorded), NO_AGREEMENTS)
    (corrected,) = worklog_rows(read(a_worklog_corrected(recorded, 6, minutes=120, performed_at=later)), NO_AGREEMENTS)
    (voided,) = worklog_rows(read(a_worklog_voided(recorded, 7)), NO_AGREEMENTS)

    assert original.worklog_id == corrected.worklog_id == voided.worklog_id
    assert [original.aggregate_version, corrected.aggregate_version, voided.aggregate_version] == [5, 6, 7]
    assert (corrected.minutes, corrected.business_minutes, corrected.performed_at) == (120, 60, later)
    assert (voided.voided, voided.minutes, original.voided, corrected.voided) == (True, 0, False, False)


def test_minutes_inside_business_hours_use_office_hours_for_a_client_without_agreement() -> None:
    friday_evening = datetime(2026, 3, 6, 16, 30, tzinfo=T0.tzinfo)

    def inside(start: datetime, minutes: int) -> int:
        return NO_AGREEMENTS.minutes_inside("acme", start, minutes)

    assert inside(T0, 90) == 90  # Monday 09:00-10:30
    assert inside(T0 - timedelta(hours=1), 90) == 30  # 08:00-09:30
    assert inside(friday_evening, 24 * 60) == 30  # into Saturday
    assert inside(datetime(2026, 3, 2, 16, 0, tzinfo=T0.tzinfo), 18 * 60) == 120  # to Tuesday 10:00
    assert inside(datetime(2026, 3, 7, 10, 0, tzinfo=T0.tzinfo), 60) == 0  # Saturday


@settings(max_examples=300)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(min_value=1, max_value=24 * 60),
)
def test_minutes_inside_business_hours_are_those_counted_one_by_one(start: datetime, minutes: int) -> None:
    start = start.replace(second=0, microsecond=0)
    moments = (start + timedelta(minutes=minute) for minute in range(minutes))

    expected = sum(1 for moment in moments if moment.isoweekday() <= 5 and 9 <= moment.hour < 17)

    assert NO_AGREEMENTS.minutes_inside("acme", start, minutes) == expected
