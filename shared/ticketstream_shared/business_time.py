"""Business time: how much of a calendar's working time lies between two moments, and when a given amount of it
will have passed. Pure functions over aware datetimes (answers in UTC); no clock, no I/O.

Working hours are wall-clock times in the calendar's IANA time zone, so a 09:00-17:00 day stays 09:00-17:00 across
daylight-saving changes. A wall time the change skips or repeats is read as PEP 495 `fold=0` reads it: a range
ending at 02:30 on a spring-forward night ends at 03:30 summer time, one ending at 02:30 on a fall-back night
ends at the first 02:30. A range belongs to the local date it starts on: a holiday closes the ranges that start on
it, including a night shift running into the next day, and not the tail of one that started the evening before.
Durations are `timedelta`s (microsecond-exact), so adding then measuring gives back exactly what was added,
within a century of the start (`HORIZON`).

Shared by sla (clocks) and reporting (hours inside and outside a client's business hours), so that both read a
calendar, and pick the version of it in force, the same way. Needs only the standard library and the contract.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TypeVar
from zoneinfo import ZoneInfo

from ticketstream_shared.contract.sla import CalendarData, Weekday

MINUTES_PER_DAY = 24 * 60
_WEEKDAYS = tuple(Weekday)  # Monday first, as date.weekday() counts
_END_OF_TIME = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
_ONE_DAY = timedelta(days=1)
#: How far ahead working time is counted: an amount the calendar does not hold within a century of its start (a
#: minute a week against a target of millions of minutes) is reached at the century's end. Counted on day by day, it
#: took seconds and ended past the year 9999 in an OverflowError; a century holds the largest target (10 million
#: minutes) on any calendar of a working week, and stays within what readers store (ClickHouse's DateTime64 ends
#: in 2299).
HORIZON = timedelta(days=36_525)

T = TypeVar("T")


@dataclass(frozen=True)
class WorkingRange:
    """Minutes after local midnight; an end at or before the start runs into the next day."""

    start_minute: int
    end_minute: int

    @property
    def length_minutes(self) -> int:
        return (self.end_minute - self.start_minute) % MINUTES_PER_DAY or MINUTES_PER_DAY


@dataclass(frozen=True)
class Calendar:
    calendar_id: str
    version: int
    timezone: str
    #: Working ranges of Monday .. Sunday.
    week: tuple[tuple[WorkingRange, ...], ...] = field(default=((),) * 7)
    holidays: frozenset[date] = frozenset()
    always_open: bool = False
    #: The working periods of each local date asked about so far: the same days are asked about again and again
    #: (every clock of a week, every worklog of a day), and placing wall times in the zone is most of the work.
    _periods_by_day: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError("a week has 7 days")
        if not self.always_open and not any(self.week):
            raise ValueError("a calendar needs working hours on at least one weekday, or always_open")

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_data(cls, calendar_id: str, version: int, data: CalendarData) -> Calendar:
        return cls(
            calendar_id=calendar_id,
            version=version,
            timezone=data.timezone,
            week=tuple(
                tuple(WorkingRange(_minutes(hours.start), _minutes(hours.end)) for hours in data.week.get(weekday, []))
                for weekday in _WEEKDAYS
            ),
            holidays=frozenset(data.holidays),
            always_open=data.always_open,
        )


def _minutes(hour_minute: str) -> int:
    hours, minutes = hour_minute.split(":")
    return int(hours) * 60 + int(minutes)


def _utc(wall: datetime, zone: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=zone).astimezone(UTC)


def _periods_starting_on(calendar: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    """The working periods (UTC) of the ranges that start on local date `day`, in start order."""
    periods = calendar._periods_by_day.get(day)
    if periods is None:
        periods = calendar._periods_by_day[day] = _place_periods_starting_on(calendar, day)
    return periods


def _place_periods_starting_on(calendar: Calendar, day: date) -> list[tuple[datetime, datetime]]:
    if day in calendar.holidays:
        return []
    midnight = datetime.combine(day, time())  # naive: wall-clock arithmetic, then placed in the zone
    periods = []
    for working in calendar.week[day.weekday()]:
        start = midnight + timedelta(minutes=working.start_minute)
        end = start + timedelta(minutes=working.length_minutes)
        period = (_utc(start, calendar.zone), _utc(end, calendar.zone))
        if period[1] > period[0]:  # a range inside a skipped hour has no length
            periods.append(period)
    return sorted(periods)


def open_periods(calendar: Calendar, since: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The calendar's working periods from `since` on, in UTC, in order, never overlapping (overlapping ranges are
    clipped; touching ones may come as two periods), the first starting no earlier than `since`. Endless: the
    caller stops."""
    since = since.astimezone(UTC)
    if calendar.always_open:
        yield since, _END_OF_TIME
        return
    covered_until = since
    day = since.astimezone(calendar.zone).date() - _ONE_DAY  # a night shift of the day before may still run
    while True:
        for start, end in _periods_starting_on(calendar, day):
            start = max(start, covered_until)
            if end > start:
                yield start, end
                covered_until = end
        day += _ONE_DAY


def business_time_between(calendar: Calendar, start: datetime, end: datetime) -> timedelta:
    """The working time from `start` to `end` (zero when `end` is not after `start`)."""
    total = timedelta()
    if end <= start:
        return total
    for opens, closes in open_periods(calendar, start):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


def add_business_time(calendar: Calendar, start: datetime, amount: timedelta) -> datetime:
    """The moment at which `amount` of working time has passed since `start` (UTC); `start` itself for none; at the
    latest `start` + HORIZON."""
    start = start.astimezone(UTC)
    if amount <= timedelta():
        return start
    horizon = start + HORIZON
    remaining = amount
    for opens, closes in open_periods(calendar, start):
        if opens >= horizon:
            return horizon
        if closes - opens >= remaining:
            return min(opens + remaining, horizon)
        remaining -= closes - opens
    raise AssertionError("open_periods is endless")  # pragma: no cover


def version_in_force(versions: Sequence[tuple[datetime, T]], moment: datetime) -> T | None:
    """Of `versions` ((effective_at, value) in the order they were made), the one in force at `moment`: of those
    effective by then, the latest made; None if none is. A change made later but effective earlier thus wins over
    an older one from its effective time on, and nothing made is ever lost."""
    for effective_at, value in reversed(versions):
        if effective_at <= moment:
            return value
    return None
