"""What the service desk promised: calendars, policies and client agreements, every version of each with the moment
it takes effect, and the one question the clocks ask of them: under which terms is this ticket timed at this moment?

Pure: the state is folded from sla.config events (`apply`), and nothing is ever overwritten, so a clock can be
explained, and re-timed, as of any moment. A version is the position of a change among the changes of its id.

Without configuration the service still keeps promises: the built-in `default` policy (rank 1000, any ticket) on
the built-in `default` calendar, 24x7 in UTC. 24x7 rather than office hours because the service cannot guess a
client's time zone or working week, and elapsed time is the reading of a promise no requester can call late;
both are ordinary ids that an admin may PUT over (or deactivate) like any other.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from operator import attrgetter
from typing import Any, Generic, TypeVar

from ticketstream_shared.business_time import Calendar, version_in_force
from ticketstream_shared.catalogue import CatalogueInForce
from ticketstream_shared.contract import Actor, Priority, TicketStatus
from ticketstream_shared.contract.sla import (
    SERVICE_PREFIX,
    CalendarChanged,
    CalendarData,
    ClientAgreementChanged,
    ClientAgreementData,
    PolicyChanged,
    PolicyData,
    ServiceChanged,
    ServiceData,
    SlaConfigEvent,
    SlaMetric,
    Targets,
)

DEFAULT_ID = "default"
#: Before any event of the log: the built-in versions are in effect from the beginning of time.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

DEFAULT_CALENDAR = CalendarData(name="24x7 (built in)", timezone="UTC", always_open=True)
DEFAULT_POLICY = PolicyData(
    name="Built-in default",
    rank=1000,
    targets={
        Priority.P1: Targets(first_response_minutes=15, resolution_minutes=4 * 60),
        Priority.P2: Targets(first_response_minutes=60, resolution_minutes=8 * 60),
        Priority.P3: Targets(first_response_minutes=4 * 60, resolution_minutes=24 * 60),
        Priority.P4: Targets(first_response_minutes=8 * 60, resolution_minutes=72 * 60),
    },
)
DEFAULT_TIER = "standard"
#: A service's clocks warn and pause as a policy's do by default.
_SERVICE_THRESHOLDS = tuple(
    sorted(set(PolicyData.model_fields["warning_thresholds"].get_default(call_default_factory=True)))
)
_SERVICE_PAUSES = frozenset(PolicyData.model_fields["pause_statuses"].get_default(call_default_factory=True))

T = TypeVar("T")


@dataclass(frozen=True)
class Version(Generic[T]):
    number: int
    effective_at: datetime
    recorded_at: datetime
    changed_by: str
    value: T
    actor: Actor | None = None  # None: built in, or made before actors were recorded


@dataclass
class History(Generic[T]):
    """Every version of one calendar, policy or agreement, in the order they were made."""

    versions: list[Version[T]] = field(default_factory=list)

    def add(
        self, effective_at: datetime, recorded_at: datetime, changed_by: str, value: T, actor: Actor | None = None
    ) -> Version[T]:
        version = Version(len(self.versions) + 1, effective_at, recorded_at, changed_by, value, actor)
        self.versions.append(version)
        return version

    def at(self, moment: datetime) -> Version[T] | None:
        """The version in effect at `moment`: of those effective by then, the latest made."""
        return version_in_force([(version.effective_at, version) for version in self.versions], moment)

    def in_force_from(self, moment: datetime, value: T) -> Version[T] | None:
        """The version in force at `moment`, if `value` is what is in force at `moment` and at every moment after
        it; None otherwise. A change to `value` from `moment` on would then change nothing.

        Future-dated versions count: a version made but not yet in effect is part of what the desk promised. So a
        PUT of today's terms, effective now, while a different version waits for next week, is a change (being
        the newest made, it takes the pending one back), and a PUT of next week's version for the same moment
        again is not."""
        current = self.at(moment)
        if current is None or current.value != value:
            return None
        # What is in force changes only at the moments versions take effect: looking at those after `moment` is
        # looking at every later moment.
        later = [self.at(version.effective_at) for version in self.versions if version.effective_at > moment]
        if any(version is None or version.value != value for version in later):
            return None
        return current


@dataclass(frozen=True)
class Terms:
    """What one clock is timed against."""

    policy_id: str
    policy_version: int
    calendar: Calendar
    target: timedelta
    thresholds: tuple[float, ...]
    pause_statuses: frozenset[TicketStatus]

    @cached_property
    def warnings(self) -> tuple[tuple[str, timedelta], ...]:
        """Each warning as (its alarm kind, the business time at which it is due), earliest first."""
        # repr: the shortest text that reads back as the same float (":g" made 0.9999999 a warning at "1")
        return tuple((f"warning:{threshold!r}", self.target * threshold) for threshold in self.thresholds)

    @property
    def identity(self) -> tuple[str, int, str, int, timedelta]:
        """Two terms with the same identity time a clock identically (a clock keeps them on a no-op change)."""
        return (self.policy_id, self.policy_version, self.calendar.calendar_id, self.calendar.version, self.target)


@dataclass(frozen=True)
class TicketFacts:
    """What policies match on, as of one moment."""

    client_id: str
    priority: Priority
    category: str
    #: The service the ticket was filed under, if it names one; otherwise its category's.
    service_id: str | None = None


class UnknownCalendar(ValueError):
    """A policy or agreement names a calendar that is not defined at the moment it takes effect."""


@dataclass
class Agreements:
    calendars: dict[str, History[CalendarData]] = field(default_factory=dict)
    policies: dict[str, History[PolicyData]] = field(default_factory=dict)
    clients: dict[str, History[ClientAgreementData]] = field(default_factory=dict)
    #: The service catalogue.
    services: dict[str, History[ServiceData]] = field(default_factory=dict)
    #: Every moment at which some change takes effect, sorted: clocks are re-timed at each of them.
    change_moments: list[datetime] = field(default_factory=list)
    #: One Calendar object per version, shared by every clock using it.
    _calendar_cache: dict[tuple[str, int], Calendar] = field(default_factory=dict)
    #: terms_for's answers by (ticket facts, metric, how many change moments precede): between two change moments
    #: every history answers the same, so tickets alike share one Terms. Emptied by every change applied.
    _terms_cache: dict[tuple[TicketFacts, SlaMetric, int], Terms | None] = field(default_factory=dict)
    #: The catalogue in force, by how many change moments precede, as `_terms_cache`.
    _catalogue_cache: dict[int, CatalogueInForce] = field(default_factory=dict)
    #: The event ids folded so far: a change appended twice (two replicas taking the same PUT, a retry after a
    #: timeout) carries the same id and counts once, so every reader numbers the versions alike.
    _folded: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    def with_defaults(cls) -> Agreements:
        agreements = cls()
        agreements.calendars[DEFAULT_ID] = History()
        agreements.calendars[DEFAULT_ID].add(BEGINNING, BEGINNING, "built-in", DEFAULT_CALENDAR)
        agreements.policies[DEFAULT_ID] = History()
        agreements.policies[DEFAULT_ID].add(BEGINNING, BEGINNING, "built-in", DEFAULT_POLICY)
        return agreements

    # --- folding sla.config -------------------------------------------------------------------------------------

    def knows(self, change: SlaConfigEvent) -> bool:
        """Whether a change with this event id is folded already."""
        return change.event_id in self._folded

    def apply(self, change: SlaConfigEvent) -> Version[Any] | None:
        """Record a change read from sla.config; returns the version it became, or None for a change already
        folded (the same event id again)."""
        if self.knows(change):
            return None
        self._folded.add(change.event_id)
        bisect.insort(self.change_moments, change.effective_at)
        self._terms_cache.clear()
        self._catalogue_cache.clear()
        args = (change.effective_at, change.occurred_at, change.changed_by)
        if isinstance(change, CalendarChanged):
            return self.calendars.setdefault(change.calendar_id, History()).add(*args, change.data, change.actor)
        if isinstance(change, PolicyChanged):
            return self.policies.setdefault(change.policy_id, History()).add(*args, change.data, change.actor)
        if isinstance(change, ServiceChanged):
            return self.services.setdefault(change.service_id, History()).add(*args, change.data, change.actor)
        assert isinstance(change, ClientAgreementChanged)
        return self.clients.setdefault(change.client_id, History()).add(*args, change.data, change.actor)

    def check_calendar(self, calendar_id: str | None, effective_at: datetime) -> None:
        """Refuse a policy or agreement naming a calendar that will not exist when it takes effect."""
        if calendar_id is not None and self._calendar_version(calendar_id, effective_at) is None:
            raise UnknownCalendar(f"no calendar {calendar_id!r} is defined at {effective_at.isoformat()}")

    def catalogue(self, moment: datetime) -> CatalogueInForce:
        """The services in force at `moment`, drafts included, and which service each category belongs to."""
        changes_before = bisect.bisect_right(self.change_moments, moment)
        if (found := self._catalogue_cache.get(changes_before)) is None:
            in_force = ((service_id, history.at(moment)) for service_id, history in self.services.items())
            found = CatalogueInForce({service_id: version.value for service_id, version in in_force if version})
            self._catalogue_cache[changes_before] = found
        return found

    def next_change_after(self, moment: datetime) -> datetime | None:
        index = bisect.bisect_right(self.change_moments, moment)
        return self.change_moments[index] if index < len(self.change_moments) else None

    # --- what the clocks ask ------------------------------------------------------------------------------------

    def terms_for(self, ticket: TicketFacts, metric: SlaMetric, moment: datetime) -> Terms | None:
        """The terms of the first active policy (by rank, then id) matching the ticket at `moment`; None if none."""
        key = (ticket, metric, bisect.bisect_right(self.change_moments, moment))
        if key not in self._terms_cache:
            self._terms_cache[key] = self._find_terms(ticket, metric, moment)
        return self._terms_cache[key]

    def _find_terms(self, ticket: TicketFacts, metric: SlaMetric, moment: datetime) -> Terms | None:
        """The first active policy (by rank, then id) that matches the ticket, unless it is one for any ticket (no
        client, tier, category or service named) and the ticket's service promises targets for its priority: a
        service's own promise is more specific than that. None if nothing covers the ticket, or if what covers it
        sets no target for `metric` (next reply is optional). A ticket's service, published or not, is the one it
        names, or else the one its category belongs to."""
        tier = self._tier(ticket.client_id, moment)
        service_id = self.catalogue(moment).service_of(ticket.service_id, ticket.category)
        service = self._service_promise(service_id, ticket.priority, moment)
        for policy_id, version in self._policies_by_rank(moment):
            policy = version.value
            if not _matches(policy, ticket, tier, service_id):
                continue
            if service is not None and _for_any_ticket(policy):
                break
            calendar_id = policy.calendar_id or self._client_calendar(ticket.client_id, moment)
            calendar = self.calendar(calendar_id, moment) or self.calendar(DEFAULT_ID, moment)
            if calendar is None:
                return None
            thresholds = tuple(sorted(set(policy.warning_thresholds)))
            pauses = frozenset(policy.pause_statuses)
            return _terms(
                policy_id, version.number, policy.targets[ticket.priority], calendar, metric, thresholds, pauses
            )
        if service is None:
            return None
        return _terms(*service, metric, _SERVICE_THRESHOLDS, _SERVICE_PAUSES)

    def _service_promise(
        self, service_id: str | None, priority: Priority, moment: datetime
    ) -> tuple[str, int, Targets, Calendar] | None:
        """What the published service of the ticket's category promises for its priority, on its calendar, if it
        does: named `service:<id>` where a policy's id would be, with the service's version."""
        if service_id is None:
            return None
        version = self.services[service_id].at(moment)
        assert version is not None, "service_of names services in force"
        if not version.value.published:
            return None  # a draft promises nothing yet
        targets = version.value.targets.get(priority)
        calendar = self.calendar(version.value.calendar_id or DEFAULT_ID, moment) or self.calendar(DEFAULT_ID, moment)
        if targets is None or calendar is None:
            return None
        return f"{SERVICE_PREFIX}{service_id}", version.number, targets, calendar

    def calendar(self, calendar_id: str, moment: datetime) -> Calendar | None:
        version = self._calendar_version(calendar_id, moment)
        return None if version is None else self.calendar_version(calendar_id, version.number)

    def calendar_data(self, calendar_id: str | None, moment: datetime) -> CalendarData:
        """The definition of a calendar in force at `moment`; the built-in 24x7 one for None or an unknown id."""
        version = self._calendar_version(calendar_id or DEFAULT_ID, moment)
        return version.value if version else DEFAULT_CALENDAR

    def calendar_version(self, calendar_id: str, number: int) -> Calendar | None:
        """Version `number` of a calendar, whenever it is in effect (a restored clock names the one it ran on)."""
        history = self.calendars.get(calendar_id)
        if history is None or not 1 <= number <= len(history.versions):
            return None
        key = (calendar_id, number)
        if key not in self._calendar_cache:
            self._calendar_cache[key] = Calendar.from_data(calendar_id, number, history.versions[number - 1].value)
        return self._calendar_cache[key]

    def _calendar_version(self, calendar_id: str, moment: datetime) -> Version[CalendarData] | None:
        history = self.calendars.get(calendar_id)
        return history.at(moment) if history else None

    def _client_calendar(self, client_id: str, moment: datetime) -> str:
        history = self.clients.get(client_id)
        version = history.at(moment) if history else None
        return version.value.calendar_id if version else DEFAULT_ID

    def _tier(self, client_id: str, moment: datetime) -> str:
        history = self.clients.get(client_id)
        version = history.at(moment) if history else None
        return version.value.tier if version else DEFAULT_TIER

    def _policies_by_rank(self, moment: datetime) -> Iterable[tuple[str, Version[PolicyData]]]:
        in_effect = []
        for policy_id, history in self.policies.items():
            version = history.at(moment)
            if version is not None and version.value.active:
                in_effect.append((version.value.rank, policy_id, version))
        return [(policy_id, version) for _, policy_id, version in sorted(in_effect, key=lambda item: item[:2])]


#: Each metric's target among a priority's targets.
_TARGET_MINUTES: dict[SlaMetric, Callable[[Targets], int | None]] = {
    SlaMetric.FIRST_RESPONSE: attrgetter("first_response_minutes"),
    SlaMetric.NEXT_REPLY: attrgetter("next_reply_minutes"),
    SlaMetric.RESOLUTION: attrgetter("resolution_minutes"),
}


def _terms(
    owner_id: str,
    version: int,
    targets: Targets,
    calendar: Calendar,
    metric: SlaMetric,
    thresholds: tuple[float, ...],
    pause_statuses: frozenset[TicketStatus],
) -> Terms | None:
    """A policy's or a service's targets for one priority as one metric's terms; None where it sets none."""
    minutes = _TARGET_MINUTES[metric](targets)
    if minutes is None:
        return None
    return Terms(owner_id, version, calendar, timedelta(minutes=minutes), thresholds, pause_statuses)


def _for_any_ticket(policy: PolicyData) -> bool:
    """A policy naming no client, tier, category or service: less specific than a service's own promise."""
    match = policy.match
    return not (match.client_ids or match.tiers or match.categories or match.service_ids)


def _matches(policy: PolicyData, ticket: TicketFacts, tier: str, service_id: str | None) -> bool:
    match = policy.match
    return (
        ticket.priority in policy.targets
        and (not match.client_ids or ticket.client_id in match.client_ids)
        and (not match.tiers or tier in match.tiers)
        and (not match.priorities or ticket.priority in match.priorities)
        and (not match.categories or ticket.category in match.categories)
        and (not match.service_ids or service_id in match.service_ids)
    )
