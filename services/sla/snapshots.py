"""A ticket's clocks as bytes and back: what the local store (clock_store.py) and its changelog sla.clocks hold.
Pure. A snapshot names its terms by policy and calendar version, and the calendar is looked up in sla.config's
history again when it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic_core import from_json, to_json

from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.sla import SlaMetric

from .agreements import Agreements, Terms, TicketFacts
from .clocks import Clock, ClockStatus, TicketClocks


class UnreadableSnapshot(ValueError):
    """A snapshot this worker cannot restore (e.g. its calendar version is not in sla.config): replay instead."""


@dataclass(frozen=True)
class Checkpoint:
    """The clocks of a partition reflect every record of tickets.events below `tickets_offset`, and every sla event
    of the partition below `sla_offset` (those at or above it may have been published without their clocks being
    saved: they are looked up when the partition is taken over, so that none is published twice)."""

    tickets_offset: int = 0
    sla_offset: int = 0


def encode(state: TicketClocks) -> bytes:
    return to_json(
        {
            "ticket_id": state.ticket_id,
            "client_id": state.client_id,
            "requester_id": state.requester_id,
            "priority": state.facts.priority.value,
            "category": state.facts.category,
            "service_id": state.facts.service_id,
            "status": state.status.value,
            "version": state.version,
            "as_of": state.as_of.isoformat(),
            "clocks": [_clock(clock) for clock in state.clocks],
        }
    )


def _clock(clock: Clock) -> dict[str, Any]:
    terms = clock.terms
    return {
        "metric": clock.metric.value,
        "policy_id": terms.policy_id,
        "policy_version": terms.policy_version,
        "calendar_id": terms.calendar.calendar_id,
        "calendar_version": terms.calendar.version,
        "target_us": _us(terms.target),
        "thresholds": list(terms.thresholds),
        "pause_statuses": sorted(status.value for status in terms.pause_statuses),
        "status": clock.status.value,
        "elapsed_us": _us(clock.elapsed),
        "since": clock.since.isoformat(),
        "deadline": clock.deadline.isoformat(),
        "raised": sorted(clock.raised),
        "alarms": [[at.isoformat(), kind] for at, kind in clock.alarms],
        "breached_before": clock.breached_before,
    }


#: Terms already restored, by what they are made of: tickets alike share one Terms object, as they do when their
#: clocks are started (Agreements.terms_for), instead of one copy per restored clock.
TermsSeen = dict[tuple[object, ...], Terms]


#: Enum members by value: a dict lookup is a fifth of the enum's own call, and a restore makes six per ticket.
_PRIORITIES = {member.value: member for member in Priority}
_TICKET_STATUSES = {member.value: member for member in TicketStatus}
_METRICS = {member.value: member for member in SlaMetric}
_CLOCK_STATUSES = {member.value: member for member in ClockStatus}


def decode(raw: bytes, agreements: Agreements, terms_seen: TermsSeen | None = None) -> TicketClocks:
    seen: TermsSeen = {} if terms_seen is None else terms_seen
    try:
        data = from_json(raw)
        return TicketClocks(
            ticket_id=data["ticket_id"],
            client_id=data["client_id"],
            requester_id=data["requester_id"],
            facts=TicketFacts(
                data["client_id"], _PRIORITIES[data["priority"]], data["category"], data.get("service_id")
            ),
            status=_TICKET_STATUSES[data["status"]],
            version=data["version"],
            as_of=datetime.fromisoformat(data["as_of"]),
            clocks=tuple(_restored_clock(clock, agreements, seen) for clock in data["clocks"]),
        )
    except UnreadableSnapshot:
        raise
    except (ValueError, KeyError, TypeError) as error:  # KeyError: a field missing, or a value no member has
        raise UnreadableSnapshot(f"{type(error).__name__}: {error}") from error


def _restored_clock(data: dict[str, Any], agreements: Agreements, seen: TermsSeen) -> Clock:
    key = (
        data["policy_id"],
        data["policy_version"],
        data["calendar_id"],
        data["calendar_version"],
        data["target_us"],
        tuple(data["thresholds"]),
        tuple(data["pause_statuses"]),
    )
    if key not in seen:
        calendar = agreements.calendar_version(data["calendar_id"], data["calendar_version"])
        if calendar is None:
            raise UnreadableSnapshot(f"calendar {data['calendar_id']} v{data['calendar_version']} is not in sla.config")
        seen[key] = Terms(
            policy_id=data["policy_id"],
            policy_version=data["policy_version"],
            calendar=calendar,
            target=timedelta(microseconds=data["target_us"]),
            thresholds=tuple(data["thresholds"]),
            pause_statuses=frozenset(TicketStatus(status) for status in data["pause_statuses"]),
        )
    terms = seen[key]
    return Clock(
        metric=_METRICS[data["metric"]],
        terms=terms,
        status=_CLOCK_STATUSES[data["status"]],
        elapsed=timedelta(microseconds=data["elapsed_us"]),
        since=datetime.fromisoformat(data["since"]),
        deadline=datetime.fromisoformat(data["deadline"]),
        raised=frozenset(data["raised"]),
        alarms=tuple((datetime.fromisoformat(at), kind) for at, kind in data["alarms"]),
        breached_before=data.get("breached_before", False),  # absent in snapshots from before next reply
    )


def _us(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)
