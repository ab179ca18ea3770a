"""A ticket's service checked against the catalogue, which every intake replica follows on sla.config (sla writes
it) before it is ready: one it has not got is refused at once (422), and so is a draft named by a requester."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract import Role

from .domain import InvalidCommand


def require_service(
    catalogue: ServiceCatalogue, service_id: str, role: Role | Literal["system"], now: datetime
) -> None:
    """Refuse a service that is not in the catalogue at `now`, and a draft to a requester (who only sees the
    published ones); staff and integrations may file a ticket under a service not published yet."""
    service = catalogue.at(service_id, now)
    if service is None:
        raise InvalidCommand("service_id", f"no service {service_id!r} in the catalogue")
    if not service.published and role is Role.REQUESTER:
        raise InvalidCommand("service_id", f"service {service_id!r} is not published")
