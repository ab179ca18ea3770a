"""Whose business hours a worklog falls in: each client's calendar, as the sla service times that client's clocks.

Folded from sla.config (`apply`; see sla_config.py for the reading): per client, every version of its agreement
(which calendar, from when), and per calendar every version of its hours, so that a worklog is split by the
calendar in force for its client at its performed_at, by the same rule (`version_in_force`) and the same
arithmetic (`business_time_between`) as sla's clocks. A client without an agreement, or whose agreement names a
calendar not defined at that moment, is split by office hours, Monday to Friday 09:00-17:00 UTC: what reporting has
always reported for them (sla's own fallback, 24x7, would count every hour as business hours, which tells a
manager nothing).

A worklog is taken to start at its performed_at and to last its minutes; it is split by the calendar version in
force at its start, and its minutes inside are the whole minutes of working time in it.

The split is computed when the worklog is projected and stored in its ledger row, not when a report is asked for:
reports stay plain sums over pre-aggregated rows (a month of 10M worklogs in milliseconds), and the split is still
exactly the versioned one, since a calendar or agreement change takes effect only from its effective_at on, never
before it was made; a worklog projected after the change was read is split by it exactly when it falls after the
effective time. A rebuild reads the whole of sla.config before any worklog, so it gives the same split.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ticketstream_shared.business_time import Calendar, WorkingRange, business_time_between, version_in_force
from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract.sla import CalendarChanged, ClientAgreementChanged, SlaConfigEvent

_ONE_MINUTE = timedelta(minutes=1)

#: The calendar of clients without one of their own (see the module docstring).
OFFICE_HOURS = Calendar(
    calendar_id="office-hours",
    version=1,
    timezone="UTC",
    week=((WorkingRange(9 * 60, 17 * 60),),) * 5 + ((),) * 2,
)


class ClientCalendars:
    """Every version of every calendar and client agreement read from sla.config, in the order made."""

    def __init__(self) -> None:
        #: The services of the catalogue, folded from the same log: reports group tickets by them.
        self.catalogue = ServiceCatalogue()
        self._calendars: dict[str, list[tuple[datetime, Calendar]]] = {}
        #: client_id -> (effective_at, calendar_id) of each version of its agreement.
        self._agreements: dict[str, list[tuple[datetime, str]]] = {}

    def apply(self, change: SlaConfigEvent) -> None:
        """Record one change of sla.config; policies time clocks, not hours, and are left out."""
        self.catalogue.apply(change)
        if isinstance(change, CalendarChanged):
            versions = self._calendars.setdefault(change.calendar_id, [])
            calendar = Calendar.from_data(change.calendar_id, len(versions) + 1, change.data)
            versions.append((change.effective_at, calendar))
        elif isinstance(change, ClientAgreementChanged):
            self._agreements.setdefault(change.client_id, []).append((change.effective_at, change.data.calendar_id))

    def calendar_at(self, client_id: str, moment: datetime) -> Calendar:
        """The calendar version in force for `client_id` at `moment`."""
        calendar_id = version_in_force(self._agreements.get(client_id, ()), moment)
        if calendar_id is None:
            return OFFICE_HOURS
        return version_in_force(self._calendars.get(calendar_id, ()), moment) or OFFICE_HOURS

    def minutes_inside(self, client_id: str, start: datetime, minutes: int) -> int:
        """Whole minutes of [start, start + minutes) inside the client's business hours."""
        calendar = self.calendar_at(client_id, start)
        return business_time_between(calendar, start, start + minutes * _ONE_MINUTE) // _ONE_MINUTE
