"""When a client's business hours are, and how many minutes of a worklog fall inside them.

Calendars belong to the sla service, and sla.events name a calendar but do not carry its hours, so reporting
applies one default calendar to every client until calendars reach it: Monday to Friday, 09:00-17:00 UTC.
A worklog is taken to start at its performed_at and to last its minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours on working days (ISO weekdays, Monday = 1), in UTC; no holidays."""

    weekdays: frozenset[int]
    opens: time
    closes: time

    def minutes_within(self, start: datetime, minutes: int) -> int:
        """Whole minutes of [start, start + minutes) that fall inside these hours (start in UTC).

        In seconds from the midnight before `start`, day by day: called for every worklog the projector
        writes, so it stays in integer arithmetic."""
        opens = self.opens.hour * 3600 + self.opens.minute * 60
        closes = self.closes.hour * 3600 + self.closes.minute * 60
        begin = start.hour * 3600 + start.minute * 60 + start.second
        end = begin + minutes * 60
        weekday = start.isoweekday()
        inside = 0
        for day in range(end // DAY_SECONDS + 1):
            if (weekday + day - 1) % 7 + 1 in self.weekdays:
                midnight = day * DAY_SECONDS
                inside += max(0, min(end, midnight + closes) - max(begin, midnight + opens))
        return inside // 60


#: Every client's calendar until the sla service publishes calendars (see the module docstring).
DEFAULT_BUSINESS_HOURS = BusinessHours(weekdays=frozenset(range(1, 6)), opens=time(9), closes=time(17))
