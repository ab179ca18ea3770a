"""The service catalogue as intake needs it: which services exist, and which are published, so that a ticket naming
a service is refused at once (422) when the catalogue has no such service for its requester. Read from sla.config,
which sla writes and every intake replica follows to its end before it is ready; folding is pure."""

from __future__ import annotations

import uuid
from datetime import datetime

from ticketstream_shared.business_time import version_in_force
from ticketstream_shared.contract import Role
from ticketstream_shared.contract.sla import ServiceChanged, SlaConfigEvent

from .domain import InvalidCommand


class Catalogue:
    def __init__(self) -> None:
        #: Per service, (effective_at, published) of each version in the order they were made.
        self._versions: dict[str, list[tuple[datetime, bool]]] = {}
        self._folded: set[uuid.UUID] = set()

    def apply(self, change: SlaConfigEvent, live: bool = True) -> bool:
        """Fold one change of sla.config (calendars, policies and agreements are sla's alone); False for a twin."""
        if change.event_id in self._folded:
            return False
        self._folded.add(change.event_id)
        if isinstance(change, ServiceChanged):
            self._versions.setdefault(change.service_id, []).append((change.effective_at, change.data.published))
        return True

    def require(self, service_id: str, role: Role, now: datetime) -> None:
        """Refuse a service that is not in the catalogue at `now`, and a draft to a requester (who only sees the
        published ones); staff and integrations may file a ticket under a service not published yet."""
        published = version_in_force(self._versions.get(service_id, []), now)
        if published is None:
            raise InvalidCommand("service_id", f"no service {service_id!r} in the catalogue")
        if not published and role is Role.REQUESTER:
            raise InvalidCommand("service_id", f"service {service_id!r} is not published")
