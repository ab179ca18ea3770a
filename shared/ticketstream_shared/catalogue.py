"""The service catalogue as the readers of sla.config other than sla know it (intake checks the services tickets
name, reporting groups tickets by service): every version of every service, in the order made. Pure. sla keeps its
own richer history of the same events (versions numbered, for clocks), and shares the rule of which service a
category belongs to."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from .business_time import version_in_force
from .contract.sla import ServiceChanged, ServiceData, SlaConfigEvent


def category_owners(services: Iterable[tuple[str, ServiceData]]) -> dict[str, str]:
    """Which service each category belongs to. The catalogue gives a category to one service at most; should two
    versions in force still share one, the first service by id keeps it, for every reader alike."""
    owners: dict[str, str] = {}
    for service_id, service in sorted(services, key=lambda item: item[0]):
        for category in service.categories:
            owners.setdefault(category, service_id)
    return owners


class ServiceCatalogue:
    def __init__(self) -> None:
        self._versions: dict[str, list[tuple[datetime, ServiceData]]] = {}
        self._folded: set[uuid.UUID] = set()

    def apply(self, change: SlaConfigEvent, live: bool = True) -> bool:
        """Fold one change of sla.config (calendars, policies and agreements are left out); False for a change
        read already (the same event id)."""
        if change.event_id in self._folded:
            return False
        self._folded.add(change.event_id)
        if isinstance(change, ServiceChanged):
            self._versions.setdefault(change.service_id, []).append((change.effective_at, change.data))
        return True

    def at(self, service_id: str, moment: datetime) -> ServiceData | None:
        return version_in_force(self._versions.get(service_id, ()), moment)

    def in_force(self, moment: datetime) -> dict[str, ServiceData]:
        """Every service defined at `moment`, drafts included."""
        found = ((service_id, self.at(service_id, moment)) for service_id in self._versions)
        return {service_id: service for service_id, service in found if service is not None}

    def category_owners(self, moment: datetime) -> dict[str, str]:
        return category_owners(self.in_force(moment).items())
