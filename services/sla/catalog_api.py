"""The service catalogue's HTTP routes (served by sla): what IT offers and what it promises, for everyone to read;
kept by admins and managers, every change a version on sla.config (configuration.py).
(No postponed annotations in this module: FastAPI must see the dependencies.)"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse

from ticketstream_shared.contract.sla import ServiceData, ServiceId
from ticketstream_shared.runtime.auth import require_role, require_unscoped
from ticketstream_shared.runtime.http import Caller

from .api import Desk, changed_response
from .configuration import SERVICES, Configuration, Effective, history_view
from .views import service_view

#: Who sees drafts and every version of a service, besides the published services everyone sees.
KEEPERS = SERVICES.writers


class ServiceBody(ServiceData, Effective):
    pass


async def _configuration(desk: Desk) -> Configuration:
    return desk.configuration


Config = Annotated[Configuration, Depends(_configuration)]
router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


def _current(configuration: Configuration, service_id: str) -> dict[str, Any] | None:
    """The service as it stands now, or None if it has no version in force yet."""
    history = configuration.history(SERVICES, service_id)
    now = configuration.now()
    version = history.at(now) if history else None
    if version is None:
        return None
    return service_view(service_id, version, configuration.agreements.calendar_data(version.value.calendar_id, now))


@router.put("/services/{service_id}")
async def put_service(service_id: ServiceId, body: ServiceBody, caller: Caller, desk: Desk) -> JSONResponse:
    """A new version of the service, effective from `effective_at` (now if not given)."""
    require_role(caller, *SERVICES.writers)
    require_unscoped(caller, "the service catalogue")
    return changed_response(await desk.change(SERVICES, service_id, body, caller))


@router.get("/services")
async def list_services(
    caller: Caller,
    config: Config,
    include_drafts: Annotated[bool, Query(description="Unpublished services too (admin, manager).")] = False,
) -> dict[str, Any]:
    """The services in force, published ones only unless asked otherwise, by name."""
    if include_drafts:
        require_role(caller, *KEEPERS)
    services = [view for service_id in config.agreements.services if (view := _current(config, service_id))]
    listed = [view for view in services if include_drafts or view["published"]]
    return {"services": sorted(listed, key=lambda view: (view["name"].casefold(), view["id"]))}


@router.get("/services/{service_id}")
async def get_service(service_id: ServiceId, caller: Caller, config: Config) -> dict[str, Any]:
    """The service as it stands; for admins and managers also every version, drafts and future ones included."""
    current = _current(config, service_id)
    if caller.role in KEEPERS and (history := config.history(SERVICES, service_id)) is not None:
        return {**history_view(service_id, history, config.now()), "service": current}
    if current is None or not current["published"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no published service {service_id}")
    return current
