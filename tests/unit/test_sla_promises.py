"""A service's promise in plain words: targets counted as people count them on the service's calendar, and the
calendar's opening hours in one line."""

from __future__ import annotations

import pytest

from sla.views import opening_hours, promise
from ticketstream_shared.contract.sla import CalendarData, ServiceTargets

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
OFFICE = CalendarData(timezone="Europe/Berlin", week={day: [{"start": "08:00", "end": "17:00"}] for day in WEEKDAYS})
ALWAYS = CalendarData(timezone="UTC", always_open=True)


@pytest.mark.parametrize(
    ("first", "resolution", "calendar", "said"),
    [
        (240, 18 * 60, OFFICE, "We answer within 4 working hours and solve it within 2 working days"),
        (60, 9 * 60, OFFICE, "We answer within 1 working hour and solve it within 1 working day"),
        (30, 10 * 60, OFFICE, "We answer within 30 working minutes and solve it within 10 working hours"),
        (90, 20 * 60, OFFICE, "We answer within 1 h 30 min of working time and solve it within 20 working hours"),
        (90, 48 * 60, ALWAYS, "We answer within 1 h 30 min and solve it within 2 days"),
        (1, 36 * 60, ALWAYS, "We answer within 1 minute and solve it within 36 hours"),
    ],
)
def test_a_target_is_said_in_the_largest_whole_unit(
    first: int, resolution: int, calendar: CalendarData, said: str
) -> None:
    targets = ServiceTargets(first_response_minutes=first, resolution_minutes=resolution)
    assert promise(targets, calendar) == f"{said} ({opening_hours(calendar)})."


def test_a_next_reply_is_promised_between_the_other_two() -> None:
    targets = ServiceTargets(first_response_minutes=120, next_reply_minutes=240, resolution_minutes=27 * 60)
    assert promise(targets, OFFICE) == (
        "We answer within 2 working hours, reply to each of your messages within 4 working hours and solve it within "
        "3 working days (Mon–Fri 08:00–17:00, Europe/Berlin)."
    )


def test_days_of_unequal_length_are_counted_in_hours() -> None:
    week = {**OFFICE.week, "friday": [{"start": "08:00", "end": "12:00"}]}
    short_friday = CalendarData(timezone="Europe/Berlin", week=week)
    targets = ServiceTargets(first_response_minutes=60, resolution_minutes=18 * 60)
    assert promise(targets, short_friday).startswith("We answer within 1 working hour and solve it within 18 working")


def test_opening_hours_group_days_alike_and_name_the_time_zone() -> None:
    calendar = CalendarData(
        timezone="Pacific/Chatham",
        week={
            "monday": [{"start": "22:00", "end": "06:00"}],
            "tuesday": [{"start": "22:00", "end": "06:00"}],
            "thursday": [{"start": "22:00", "end": "06:00"}],
            "saturday": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "15:00"}],
        },
        holidays=["2026-12-24"],
    )
    assert opening_hours(calendar) == (
        "Mon–Tue 22:00–06:00; Thu 22:00–06:00; Sat 09:00–12:00 and 13:00–15:00, Pacific/Chatham, closed on holidays"
    )
    assert opening_hours(ALWAYS) == "around the clock"
