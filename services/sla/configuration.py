"""Changing the sla configuration: calendars, policies, client agreements and the service catalogue. Every PUT that
changes something becomes the subject's next version on sla.config, effective from `effective_at`, nothing
overwritten; one that changes nothing is answered with the version in force, marked replayed.

Handlers without FastAPI (api.py and catalog_api.py only check the caller and shape the answer), so they are tested
on their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from ticketstream_shared.audit import by, changed_fields
from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import UtcDatetime
from ticketstream_shared.contract.sla import (
    CalendarChanged,
    CalendarData,
    ClientAgreementChanged,
    ClientAgreementData,
    PolicyChanged,
    PolicyData,
    ServiceChanged,
    ServiceData,
    SlaConfigEvent,
)
from ticketstream_shared.runtime import ids
from ticketstream_shared.runtime.auth import Principal
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.logging import correlation_id
from ticketstream_shared.runtime.refusals import InvalidField, Unavailable

from .agreements import Agreements, History, UnknownCalendar, Version
from .config_log import config_key

#: How far in the past an effective time may lie (clock skew between caller and service); older is a rewrite.
CLOCK_SKEW = timedelta(minutes=5)
#: uuid5 namespace of configuration changes (see `change_id`).
CONFIG_CHANGE_IDS = ids.IdSpace(uuid.UUID("9d3c2f6e-41b7-4c58-a0e2-6f1b8d7c5e30"))


class Effective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_at: UtcDatetime | None = None


#: Why a change (or a what-if) is refused while sla reads sla.config: it could not be judged against it yet.
NOT_READ_YET = "sla is still reading its configuration"


@dataclass(frozen=True)
class Configurable:
    """One kind of configuration: what its PUT records, who may make it, and where its GET looks."""

    label: str
    change: type[SlaConfigEvent]
    data: type[BaseModel]
    histories: Callable[[Agreements], dict[str, History[Any]]]
    writers: tuple[Role, ...] = (Role.ADMIN,)


CALENDARS = Configurable("calendar", CalendarChanged, CalendarData, lambda a: a.calendars)
POLICIES = Configurable("policy", PolicyChanged, PolicyData, lambda a: a.policies)
CLIENTS = Configurable("client agreement", ClientAgreementChanged, ClientAgreementData, lambda a: a.clients)
SERVICES = Configurable(
    "service", ServiceChanged, ServiceData, lambda a: a.services, writers=(Role.ADMIN, Role.MANAGER)
)


def change_id(
    kind: Configurable, subject: str, history: History[Any] | None, data: BaseModel, effective_at: datetime | None
) -> uuid.UUID:
    """A change's event id from what it changes: the subject, how many versions it was judged against, when it
    takes effect as asked ("now" when not given, so a retry a moment later is the same change) and its content.
    Two identical PUTs judged against the same versions (two replicas at once, a retry after a timeout) get one id,
    and readers of sla.config fold it once; the same body again after another change is judged against more
    versions, so it is a change of its own."""
    basis = len(history.versions) if history else 0
    when = effective_at.isoformat() if effective_at else "now"
    return ids.change_id(CONFIG_CHANGE_IDS, kind.change, subject, f"{basis}/{when}", data)


def version_view(version: Version[Any], values: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """One version (`values`: its value as JSON), who made it, and what it changed from the version made before it
    (`before`: that one's value as JSON; the audit trail)."""
    return {
        "version": version.number,
        "effective_at": version.effective_at.isoformat(),
        "recorded_at": version.recorded_at.isoformat(),
        "changed_by": version.changed_by,
        "by": by(version.actor, version.changed_by),
        "actor": version.actor.model_dump(mode="json") if version.actor else None,
        **values,
        "changes": changed_fields(before, values),
    }


def history_view(subject: str, history: History[Any], now: datetime) -> dict[str, Any]:
    current = history.at(now)
    values = [version.value.model_dump(mode="json") for version in history.versions]  # each once
    return {
        "id": subject,
        "current_version": current.number if current else None,
        "current": values[current.number - 1] if current else None,  # version n is the n-th made
        "versions": [
            version_view(version, values[index], values[index - 1] if index else None)
            for index, version in enumerate(history.versions)
        ],
    }


class Configuration:
    def __init__(self, agreements: Agreements, config_log: ConfigLog[SlaConfigEvent], clock: Callable[[], datetime]):
        self.agreements = agreements
        self._config_log = config_log
        self._clock = clock
        #: Judging a PUT and appending it happen in turn on this worker, so a retry racing with the request it
        #: repeats finds it in force (configuration changes are rare: one at a time costs nothing).
        self._one_change_at_a_time = asyncio.Lock()

    def now(self) -> datetime:
        return self._clock()

    def history(self, kind: Configurable, subject: str) -> History[Any] | None:
        return kind.histories(self.agreements).get(subject)

    async def change(
        self, kind: Configurable, subject: str, body: Effective, principal: Principal
    ) -> tuple[History[Any], bool]:
        """The body as the subject's next version on sla.config, once this worker has it; returns the subject's
        history and whether this PUT recorded a version. A PUT that would change nothing (`History.in_force_from`)
        appends nothing; that comes before the check of a past `effective_at`, since it rewrites nothing, so a
        retry whose effective time has meanwhile slipped into the past is answered as its first try was.
        The caller's role is checked by the route (`kind.writers`)."""
        if not self._config_log.caught_up.is_set():
            raise Unavailable(NOT_READ_YET)
        data = kind.data.model_validate(body.model_dump(exclude={"effective_at"}))
        async with self._one_change_at_a_time:
            now = self._clock()
            history = self.history(kind, subject)
            if history is not None and history.in_force_from(body.effective_at or now, data) is not None:
                return history, False
            at = self._effective(body, now)
            self.require_known_calendar(getattr(data, "calendar_id", None), at)  # all but calendars may name one
            if isinstance(data, ServiceData):
                self._require_own_categories(subject, data, at)
            change = kind.change(
                event_id=change_id(kind, subject, history, data, body.effective_at),
                occurred_at=now,
                effective_at=at,
                producer="sla",
                correlation_id=correlation_id.get() or str(uuid.uuid4()),
                changed_by=principal.name,
                actor=principal.actor,
                data=data,
                **{kind.change.subject_field: subject},
            )
            recorded = await self._config_log.append(change, config_key(change))
            written = self.history(kind, subject)
            assert written is not None, "append returns once this worker has folded the change"
            return written, recorded

    def require_known_calendar(
        self, calendar_id: str | None, at: datetime, among: Agreements | None = None, field: str = "calendar_id"
    ) -> None:
        """A policy, agreement or service may only name a calendar in force at its effective time."""
        try:
            (among or self.agreements).check_calendar(calendar_id, at)
        except UnknownCalendar as error:
            raise InvalidField(field, str(error)) from None

    def _require_own_categories(self, service_id: str, data: ServiceData, at: datetime) -> None:
        """A category belongs to one service: a ticket's category then names its service."""
        owners = self.agreements.catalogue(at).category_owners
        taken = {
            category: owners[category] for category in data.categories if owners.get(category, service_id) != service_id
        }
        if taken:
            listed = ", ".join(f"{category} (service {owner})" for category, owner in sorted(taken.items()))
            raise InvalidField("categories", f"already in another service: {listed}")

    @staticmethod
    def _effective(body: Effective, now: datetime) -> datetime:
        if body.effective_at is None:
            return now
        if body.effective_at < now - CLOCK_SKEW:
            raise InvalidField("effective_at", "lies in the past: a change takes effect from now on, never before")
        return body.effective_at
