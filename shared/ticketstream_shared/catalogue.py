"""The service catalogue as the readers of sla.config other than sla know it (intake checks the services tickets
name, reporting groups tickets by service): every version of every service, in the order made. Pure. sla keeps its
own richer history of the same events (versions numbered, for clocks), and shares the rule of which service a
ticket belongs to (`CatalogueInForce`)."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from .business_time import version_in_force
from .contract.sla import ServiceChanged, ServiceData, SlaConfigEvent

#: How long a reader waits for sla.config to be read to its end when a ticket names a service it has not got: the
#: service may have been published a moment before, and a ticket is judged by what sla has written, not by how far
#: this replica has read.
UNREAD_SERVICE_WAIT_S = 5.0


@dataclass(frozen=True)
class CatalogueInForce:
    """The catalogue as it stands at one moment (drafts included), and the rule every reader follows for which
    service a ticket belongs to."""

    services: Mapping[str, ServiceData]

    @cached_property
    def category_owners(self) -> dict[str, str]:
        """Which service each category belongs to. The catalogue gives a category to one service at most; should
        two versions in force still share one, the first service by id keeps it, for every reader alike."""
        owners: dict[str, str] = {}
        for service_id in sorted(self.services):
            for category in self.services[service_id].categories:
                owners.setdefault(category, service_id)
        return owners

    def service_of(self, named: str | None, category: str) -> str | None:
        """The service a ticket names, if the catalogue has it (its writer checked it, but a reader may not have
        read it yet), else the one its category belongs to."""
        if named is not None and named in self.services:
            return named
        return self.category_owners.get(category)


class ServiceCatalogue:
    def __init__(self) -> None:
        self._versions: dict[str, list[tuple[datetime, ServiceData]]] = {}
        self._folded: set[uuid.UUID] = set()
        #: Every moment a service change takes effect, sorted: between two of them the catalogue stands still.
        self._change_moments: list[datetime] = []
        #: The catalogue in force by how many change moments precede, so that a reader asking per ticket builds it
        #: once per change. Emptied by every change applied.
        self._in_force: dict[int, CatalogueInForce] = {}

    def apply(self, change: SlaConfigEvent, live: bool = True) -> bool:
        """Fold one change of sla.config (calendars, policies and agreements are left out); False for a change
        read already (the same event id)."""
        if change.event_id in self._folded:
            return False
        self._folded.add(change.event_id)
        if isinstance(change, ServiceChanged):
            self._versions.setdefault(change.service_id, []).append((change.effective_at, change.data))
            bisect.insort(self._change_moments, change.effective_at)
            self._in_force.clear()
        return True

    def at(self, service_id: str, moment: datetime) -> ServiceData | None:
        return version_in_force(self._versions.get(service_id, ()), moment)

    def in_force(self, moment: datetime) -> CatalogueInForce:
        changes_before = bisect.bisect_right(self._change_moments, moment)
        if (found := self._in_force.get(changes_before)) is None:
            defined = ((service_id, self.at(service_id, moment)) for service_id in self._versions)
            found = CatalogueInForce({service_id: service for service_id, service in defined if service is not None})
            self._in_force[changes_before] = found
        return found
