"""Events of sla.events, written by the sla service only; key = ticket_id.

Every clock event says which metric it is about, which policy and calendar versions timed it, the deadline, and the
business time elapsed and remaining when it happened, so any consumer can explain an SLA outcome on its own.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator, model_validator

from .events import (
    Envelope,
    Frozen,
    Identifier,
    Priority,
    RecordedActor,
    ServiceId,
    TicketStatus,
    UtcDatetime,
    listed_once,
)


class SlaMetric(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"
    #: Runs from a requester's message, while no answer to an earlier one is awaited, to the next public staff reply.
    NEXT_REPLY = "next_reply"


#: What a clock of each metric promises, in a requester's words.
PROMISED = {
    SlaMetric.FIRST_RESPONSE: "a first answer",
    SlaMetric.NEXT_REPLY: "a reply to your message",
    SlaMetric.RESOLUTION: "a solution",
}


class ClockData(Frozen):
    metric: SlaMetric
    policy_id: Identifier
    policy_version: int = Field(ge=1)
    calendar_id: Identifier
    calendar_version: int = Field(ge=1)
    target_business_seconds: int = Field(ge=0)
    deadline: UtcDatetime = Field(description="When the target is reached if the clock keeps running.")
    elapsed_business_seconds: int = Field(ge=0)
    remaining_business_seconds: int = Field(description="Negative once breached.")


class PauseData(ClockData):
    reason: str = Field(default="", description="Why: the ticket status that paused or resumed the clock.")


class WarningData(ClockData):
    threshold: float = Field(gt=0, lt=1, description="Share of the target used up, e.g. 0.75.")


class RetargetData(ClockData):
    """The clock's new terms, and what they replaced: elapsed business time is always carried over."""

    previous_policy_id: Identifier
    previous_policy_version: int = Field(ge=1)
    previous_calendar_id: Identifier
    previous_calendar_version: int = Field(ge=1)
    previous_target_business_seconds: int = Field(ge=0)
    previous_deadline: UtcDatetime
    reason: str = Field(min_length=1, description="Why, in plain words: the ticket change or the policy change.")


class StopData(ClockData):
    reason: str = Field(min_length=1, description="Why the clock no longer runs, e.g. its policy was deactivated.")


class SlaEnvelopeV1(Envelope):
    """An SLA clock's envelope before actors were recorded; aggregate_version stays null outside tickets.events."""

    aggregate_version: None = None


class SlaEvent(SlaEnvelopeV1):
    """An event of an SLA clock, decided by sla itself (its actor: system:sla)."""

    actor: RecordedActor = None


class ClockStarted(SlaEvent):
    event_type: Literal["sla.clock_started"] = "sla.clock_started"
    schema_version: Literal[2] = 2
    data: ClockData


class ClockPaused(SlaEvent):
    event_type: Literal["sla.paused"] = "sla.paused"
    schema_version: Literal[2] = 2
    data: PauseData


class ClockResumed(SlaEvent):
    event_type: Literal["sla.resumed"] = "sla.resumed"
    schema_version: Literal[2] = 2
    data: PauseData


class SlaWarning(SlaEvent):
    event_type: Literal["sla.warning"] = "sla.warning"
    schema_version: Literal[2] = 2
    data: WarningData


class SlaBreached(SlaEvent):
    event_type: Literal["sla.breached"] = "sla.breached"
    schema_version: Literal[2] = 2
    data: ClockData


class SlaMet(SlaEvent):
    event_type: Literal["sla.met"] = "sla.met"
    schema_version: Literal[2] = 2
    data: ClockData


class ClockRetargeted(SlaEvent):
    """A priority or category change, or a policy or calendar change, gave the clock new terms."""

    event_type: Literal["sla.retargeted"] = "sla.retargeted"
    schema_version: Literal[2] = 2
    data: RetargetData


class ClockStopped(SlaEvent):
    """No active policy applies to the ticket any more: the clock neither warns nor breaches from now on."""

    event_type: Literal["sla.clock_stopped"] = "sla.clock_stopped"
    schema_version: Literal[2] = 2
    data: StopData


SLA_EVENT_TYPES: tuple[type[SlaEvent], ...] = (
    ClockStarted,
    ClockPaused,
    ClockResumed,
    SlaWarning,
    SlaBreached,
    SlaMet,
    ClockRetargeted,
    ClockStopped,
)
SlaEventUnion = Annotated[
    ClockStarted | ClockPaused | ClockResumed | SlaWarning | SlaBreached | SlaMet | ClockRetargeted | ClockStopped,
    Field(discriminator="event_type"),
]


# --- sla.config: calendars, policies and client agreements ------------------------------------------------------
#
# Every change is an event with the moment it takes effect; nothing is overwritten. The version of a calendar,
# policy or agreement is its position among the changes of the same id in sla.config (1, 2, 3...), which is a
# single partition, so every reader counts the same. These events concern no ticket, hence their own envelope.


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


#: A wall-clock time of day, "00:00" to "24:00".
HourMinute = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", examples=["09:00"])]


class WorkingHours(Frozen):
    """One stretch of working time on a weekday, in the calendar's time zone. An end at or before the start
    runs past midnight into the next day (a night shift, "22:00"-"06:00")."""

    start: HourMinute
    end: HourMinute

    @model_validator(mode="after")
    def _not_empty(self) -> WorkingHours:
        if self.start == "24:00":
            raise ValueError("start must be before 24:00")
        if self.start == self.end:
            raise ValueError("start and end are the same: for a whole day use 00:00-24:00")
        return self


class CalendarData(Frozen):
    name: str = Field(default="", max_length=200)
    timezone: str = Field(description="IANA time zone, e.g. Europe/Berlin.", examples=["Europe/Berlin"])
    always_open: bool = Field(default=False, description="24x7: every moment is business time.")
    week: dict[Weekday, list[WorkingHours]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list, description="Local dates on which no working hours start.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        # ZoneInfo opens the file its key names: a directory of the database ("America"), a name too long for the
        # file system, anything the OS refuses is an OSError, and no more a time zone than a missing file.
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _some_working_time(self) -> CalendarData:
        if not self.always_open and not any(self.week.values()):
            raise ValueError("a calendar needs working hours on at least one weekday, or always_open")
        return self


class Targets(Frozen):
    first_response_minutes: int = Field(gt=0, le=10_000_000, description="Business minutes.")
    next_reply_minutes: int | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="Business minutes after each message of the requester; none: not timed.",
    )
    resolution_minutes: int = Field(gt=0, le=10_000_000, description="Business minutes.")


class PolicyMatch(Frozen):
    """Which tickets a policy covers; an empty list means any."""

    client_ids: list[Identifier] = Field(default_factory=list)
    tiers: list[Identifier] = Field(default_factory=list)
    priorities: list[Priority] = Field(default_factory=list)
    categories: list[Identifier] = Field(default_factory=list)
    service_ids: list[Identifier] = Field(
        default_factory=list, description="Services of the catalogue: a ticket's service is the one of its category."
    )


def _default_thresholds() -> list[float]:
    return [0.75, 0.9]


def _default_pause_statuses() -> list[TicketStatus]:
    return [TicketStatus.WAITING_ON_CUSTOMER]


class PolicyData(Frozen):
    name: str = Field(default="", max_length=200)
    active: bool = True
    rank: int = Field(default=100, ge=0, description="Policies are tried by rank, lowest first; first match wins.")
    match: PolicyMatch = Field(default_factory=PolicyMatch)
    targets: dict[Priority, Targets] = Field(description="Per priority; a priority without targets is not covered.")
    calendar_id: Identifier | None = Field(default=None, description="None: the calendar of the client's agreement.")
    pause_statuses: list[TicketStatus] = Field(default_factory=_default_pause_statuses)
    warning_thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=_default_thresholds)

    @field_validator("pause_statuses")
    @classmethod
    def _pausable(cls, value: list[TicketStatus]) -> list[TicketStatus]:
        final = {TicketStatus.RESOLVED, TicketStatus.CLOSED} & set(value)
        if final:
            raise ValueError(f"{', '.join(sorted(final))} end a clock; they cannot pause it")
        return value

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[Priority, Targets]) -> dict[Priority, Targets]:
        if not value:
            raise ValueError("a policy needs targets for at least one priority")
        return value


class ClientAgreementData(Frozen):
    calendar_id: Identifier
    tier: Identifier = "standard"


#: A clock timed by a service's promise names it where a policy's id would be: `service:<service id>`.
SERVICE_PREFIX = "service:"


class ServiceTargets(Targets):
    """What a service promises for one priority, in business minutes of its calendar."""


class ServiceData(Frozen):
    """A service of the catalogue: what IT offers, who answers for it, which categories of ticket belong to it, and
    what it promises, per priority."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000, description="For requesters: what the service covers.")
    owner_team: Identifier = Field(description="The team that answers for it (assignment's team id).")
    categories: Annotated[list[Identifier], AfterValidator(listed_once)] = Field(
        default_factory=list, max_length=200, description="Ticket categories of the service; each in one service."
    )
    targets: dict[Priority, ServiceTargets] = Field(description="Per priority; at least one.")
    calendar_id: Identifier | None = Field(default=None, description="None: the built-in 24x7 calendar (UTC).")
    published: bool = Field(default=False, description="Listed to requesters; a draft until then.")

    @field_validator("targets")
    @classmethod
    def _some_targets(cls, value: dict[Priority, ServiceTargets]) -> dict[Priority, ServiceTargets]:
        if not value:
            raise ValueError("a service promises targets for at least one priority")
        return value


class SlaConfigEventV1(Frozen):
    """A change of SLA configuration on sla.config (one partition, key = '<kind>/<id>', kept forever)."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    effective_at: UtcDatetime = Field(description="From when the change applies; never before it was made.")
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    changed_by: str = Field(min_length=1, description="The API key's name that made the change.")

    #: The field naming what changed (a calendar, policy, client or service).
    subject_field: ClassVar[str]

    @property
    def subject(self) -> str:
        return str(getattr(self, self.subject_field))


class SlaConfigEvent(SlaConfigEventV1):
    """A change of SLA configuration on sla.config (one partition, key = '<kind>/<id>', kept forever), with who
    made it (schema_version 2 on)."""

    actor: RecordedActor = None


class CalendarChanged(SlaConfigEvent):
    event_type: Literal["sla.calendar_changed"] = "sla.calendar_changed"
    schema_version: Literal[2] = 2
    subject_field: ClassVar[str] = "calendar_id"
    calendar_id: Identifier
    data: CalendarData


class PolicyChanged(SlaConfigEvent):
    event_type: Literal["sla.policy_changed"] = "sla.policy_changed"
    schema_version: Literal[2] = 2
    subject_field: ClassVar[str] = "policy_id"
    policy_id: Identifier
    data: PolicyData


class ClientAgreementChanged(SlaConfigEvent):
    event_type: Literal["sla.client_agreement_changed"] = "sla.client_agreement_changed"
    schema_version: Literal[2] = 2
    subject_field: ClassVar[str] = "client_id"
    client_id: Identifier
    data: ClientAgreementData


class ServiceChanged(SlaConfigEvent):
    """A version of a service of the catalogue."""

    event_type: Literal["sla.service_changed"] = "sla.service_changed"
    schema_version: Literal[2] = 2
    subject_field: ClassVar[str] = "service_id"
    service_id: ServiceId
    data: ServiceData


SLA_CONFIG_EVENT_TYPES: tuple[type[SlaConfigEvent], ...] = (
    CalendarChanged,
    PolicyChanged,
    ClientAgreementChanged,
    ServiceChanged,
)
SlaConfigEventUnion = Annotated[
    CalendarChanged | PolicyChanged | ClientAgreementChanged | ServiceChanged, Field(discriminator="event_type")
]
