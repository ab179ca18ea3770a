"""Events of sla.events, written by the sla service only; key = ticket_id.

Every clock event says which metric it is about, which policy and calendar versions timed it, the deadline, and the
business time elapsed and remaining when it happened, so any consumer can explain an SLA outcome on its own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from .events import Envelope, Frozen, Identifier, UtcDatetime


class SlaMetric(StrEnum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


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


class SlaEvent(Envelope):
    """An event of an SLA clock; aggregate_version stays null outside tickets.events."""

    aggregate_version: None = None


class ClockStarted(SlaEvent):
    event_type: Literal["sla.clock_started"] = "sla.clock_started"
    schema_version: Literal[1] = 1
    data: ClockData


class ClockPaused(SlaEvent):
    event_type: Literal["sla.paused"] = "sla.paused"
    schema_version: Literal[1] = 1
    data: PauseData


class ClockResumed(SlaEvent):
    event_type: Literal["sla.resumed"] = "sla.resumed"
    schema_version: Literal[1] = 1
    data: PauseData


class SlaWarning(SlaEvent):
    event_type: Literal["sla.warning"] = "sla.warning"
    schema_version: Literal[1] = 1
    data: WarningData


class SlaBreached(SlaEvent):
    event_type: Literal["sla.breached"] = "sla.breached"
    schema_version: Literal[1] = 1
    data: ClockData


class SlaMet(SlaEvent):
    event_type: Literal["sla.met"] = "sla.met"
    schema_version: Literal[1] = 1
    data: ClockData


SLA_EVENT_TYPES: tuple[type[SlaEvent], ...] = (ClockStarted, ClockPaused, ClockResumed, SlaWarning, SlaBreached, SlaMet)
SlaEventUnion = Annotated[
    ClockStarted | ClockPaused | ClockResumed | SlaWarning | SlaBreached | SlaMet, Field(discriminator="event_type")
]
