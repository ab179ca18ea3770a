"""The reports managers ask for: their parameters, checked before anything reaches ClickHouse, and their shapes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ticketstream_shared.contract.events import Identifier, Priority, ServiceId
from ticketstream_shared.contract.sla import SlaMetric

#: Days ClickHouse's DateTime64 and Date32 hold comfortably; outside them a date is a typo, not a question.
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(2199, 12, 31)

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DAY.match(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


def _within_range(day: date) -> date:
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}")
    return day


Day = Annotated[date, BeforeValidator(_iso_day), AfterValidator(_within_range)]


class Granularity(StrEnum):
    """Periods a report can be split into; a week starts on Monday (ISO 8601)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    def last_day(self, day: date) -> date:
        """The last day of the period `day` is in."""
        if self is Granularity.DAY:
            return day
        if self is Granularity.WEEK:
            return day + timedelta(days=6 - day.weekday())
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return following - timedelta(days=1)


def _invalid(field_name: str, value: Any, message: str) -> ValidationError:
    """A refusal of `field_name` found by a check of the whole query (one that reads fields declared after it)."""
    error = PydanticCustomError("value_error", "Value error, {reason}", {"reason": message})
    return ValidationError.from_exception_data("query", [InitErrorDetails(type=error, loc=(field_name,), input=value)])


class ReportQuery(BaseModel):
    """What every report asks: the UTC days from..to (both included), optionally one client only."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    from_: Day = Field(alias="from", description="First UTC day, included (YYYY-MM-DD).")
    to: Day = Field(description="Last UTC day, included (YYYY-MM-DD).")
    client_id: Identifier | None = Field(default=None, description="Only this client.")

    @field_validator("to")
    @classmethod
    def _not_before_from(cls, to: date, info: ValidationInfo) -> date:
        start = info.data.get("from_")
        if start is not None and to < start:
            raise ValueError(f"must not be before from ({start.isoformat()})")
        return to

    def utc_interval(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC: midnight of `from` to midnight after `to`."""
        start = datetime.combine(self.from_, time(), tzinfo=UTC)
        end = datetime.combine(self.to + timedelta(days=1), time(), tzinfo=UTC)
        return start, end


class HoursBreakdown(StrEnum):
    """A second grouping of hours per client."""

    TECHNICIAN = "technician"
    CATEGORY = "category"
    SERVICE = "service"


class ServiceBreakdown(StrEnum):
    """Reports other than hours split by one thing only: the service of the catalogue."""

    SERVICE = "service"


#: The service filter of every report that has one.
SERVICE_FILTER = Field(
    default=None,
    description=(
        "Only tickets of this service of the catalogue: the one a ticket names, else the one its category belongs "
        "to in the catalogue as it stands now."
    ),
)


class HoursPerClientQuery(ReportQuery):
    """Hours worked per client, by the worklogs' performed_at; corrected worklogs count with their new values,
    voided ones not at all."""

    granularity: Granularity | None = Field(default=None, description="Adds a period column: day, week or month.")
    by: HoursBreakdown | None = Field(default=None, description="Adds a technician_id, category or service_id column.")
    service_id: ServiceId | None = SERVICE_FILTER
    technician_id: Identifier | None = Field(default=None, description="Only this technician's worklogs.")
    category: Identifier | None = Field(default=None, description="Only tickets of this category.")
    billable: bool | None = Field(default=None, description="Only billable (true) or non-billable (false) work.")
    business_hours: bool = Field(
        default=False,
        description=(
            "Adds business_hours and outside_business_hours columns: each worklog split by its client's calendar "
            "in sla (the agreement and calendar versions in force when the work was done); Monday to Friday "
            "09:00-17:00 UTC for a client without an agreement."
        ),
    )


class ByService(ReportQuery):
    """A report that may be narrowed to one service and split by service."""

    service_id: ServiceId | None = SERVICE_FILTER
    by: ServiceBreakdown | None = Field(default=None, description="service: adds a service_id column.")


class SlaComplianceQuery(ByService):
    """SLA outcomes (met or breached, of each clock's newest policy version) decided on the days from..to. Next
    reply counts once per ticket: breached if any of its rounds was late."""

    priority: Priority | None = Field(default=None, description="Only tickets of this priority.")
    metric: SlaMetric | None = Field(default=None, description="first_response, next_reply or resolution only.")


class ServicesOverviewQuery(ReportQuery):
    """Per service of the catalogue (and tickets of none, as ""): the tickets created on the days from..to, the
    SLA compliance of the outcomes decided on those days (every metric), the median first response of those tickets
    in minutes, and the hours worked on those days."""


class DeflectionsQuery(ReportQuery):
    """Tickets their requesters solved themselves with a knowledge article on the days from..to, per client,
    service and article."""

    service_id: ServiceId | None = SERVICE_FILTER


class ResponseTimesQuery(ByService):
    """First-response and resolution times of the tickets created on the days from..to, in minutes."""

    priority: Priority | None = Field(default=None, description="Only tickets of this priority.")


#: A backlog lists every day (week, month) of its range for every client, with nothing changed or not: a range of
#: decades (every day of 2000-2028, found by the fuzz) did not answer within 10 s. By day, a year and a day at most.
BACKLOG_MOST_PERIODS = 366


class BacklogQuery(ByService):
    """Tickets neither resolved nor closed at the end of each day from..to, per client (at most 366 days); by week
    or month, at the end of each week (Sunday) or month, and at `to` (at most 366 weeks or months)."""

    granularity: Granularity | None = Field(
        default=None, description="day (default), week or month: the backlog at the end of each, and at `to`."
    )

    def days_told(self) -> list[date]:
        """The days at whose end the backlog is told: the last of each period from..to, the last one cut at `to`."""
        told = []
        for last in self._period_ends():
            told.append(min(last, self.to))
            if last >= self.to:
                break
        return told

    @property
    def period(self) -> Granularity:
        """What the backlog is told by: every day unless asked otherwise."""
        return self.granularity or Granularity.DAY

    def _period_ends(self) -> Iterator[date]:
        day = self.from_
        while True:
            yield (last := self.period.last_day(day))
            day = last + timedelta(days=1)

    @model_validator(mode="after")
    def _within_most_periods(self) -> Self:
        for count, last in enumerate(self._period_ends(), start=1):
            if last >= self.to:
                break
            if count == BACKLOG_MOST_PERIODS:
                unit = self.period.value
                reason = f"a backlog lists every {unit}: at most {BACKLOG_MOST_PERIODS} {unit}s, to {last}"
                raise _invalid("to", self.to, reason)
        return self


class WorkloadQuery(ReportQuery):
    """Per technician: hours worked and tickets assigned on the days from..to, and tickets open with them now."""

    technician_id: Identifier | None = Field(default=None, description="Only this technician.")


class CsatQuery(ByService):
    """Satisfaction ratings given on the days from..to (a ticket's newest rating), per client."""


class ReportsUnavailable(RuntimeError):
    """The reporting database cannot answer now (not the caller's fault: try again later)."""


@dataclass(frozen=True)
class Report:
    """A table of results: named columns, rows in that order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def csv(self) -> str:
        """CSV with a header row; dates as YYYY-MM-DD."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()
