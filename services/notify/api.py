"""notify's HTTP routes: check the caller, hand the request to the desk, shape the answer.
(No postponed annotations in this module: FastAPI must see the dependencies.)"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.notify import EventTypePattern, PersonData
from ticketstream_shared.runtime.auth import require_role
from ticketstream_shared.runtime.http import REPLAYED, Caller, from_app_state

from .book import Delivery, Target
from .desk import NotifyDesk, Saved, WebhookRequest
from .directory import Webhook

WEBHOOK_KEEPERS = (Role.ADMIN, Role.INTEGRATION)
PEOPLE_KEEPERS = (Role.ADMIN, Role.MANAGER)
PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The pattern is described, not enforced here: the desk refuses another scheme in plainer words.
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="http or https; private addresses need allowing.",
        json_schema_extra={"pattern": r"^https?://[^\s/?#@]+(/\S*)?$"},
    )
    event_types: list[EventTypePattern] = Field(
        min_length=1, max_length=100, description='Event types, families ("ticket.*") or "*".'
    )
    client_id: Identifier | None = Field(default=None, description="Only this client's events.")
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="Signs each delivery; never returned. Required new."
    )
    active: bool = True


Desk = Annotated[NotifyDesk, Depends(from_app_state("notify"))]
router = APIRouter(prefix="/v1/notify", tags=["notify"])


def webhook_view(webhook: Webhook, target: Target | None) -> dict[str, Any]:
    data = webhook.data
    return {
        "id": webhook.webhook_id,
        "url": str(data.url),
        "event_types": data.event_types,
        "client_id": data.client_id,
        "active": data.active,
        "version": webhook.version,
        "updated_at": webhook.changed_at,
        "updated_by": webhook.changed_by,
        "status": "failing" if target is not None and target.failing_since else "healthy",
        "failing_since": target.failing_since if target else None,
        "last_error": target.last_error if target else None,
        "waiting": target.waiting if target else 0,
    }


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    scheduled = delivery.scheduled
    return {
        "id": scheduled.delivery_id,
        "event_id": scheduled.source_event_id,
        "event_type": scheduled.source_event_type,
        "ticket_id": scheduled.ticket_id,
        "scheduled_at": scheduled.occurred_at,
        "status": delivery.status.value,
        "next_attempt_at": delivery.next_attempt_at,
        "attempts": [
            {
                "attempt": attempt.attempt,
                "at": attempt.occurred_at,
                "outcome": attempt.outcome.value,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "latency_ms": attempt.latency_ms,
            }
            for attempt in delivery.attempts
        ],
    }


def _saved(view: dict[str, Any], saved: Saved) -> JSONResponse:
    """200 whether the PUT created or changed it, as every PUT of the system answers; `Idempotent-Replayed` when it
    changed nothing."""
    headers = REPLAYED if saved is Saved.UNCHANGED else None
    return JSONResponse(jsonable_encoder({**view, "created": saved is Saved.CREATED}), headers=headers)


@router.put("/webhooks/{webhook_id}")
async def put_webhook(webhook_id: PathId, body: WebhookBody, caller: Caller, desk: Desk) -> JSONResponse:
    require_role(caller, *WEBHOOK_KEEPERS)
    request = WebhookRequest(body.url, list(body.event_types), body.client_id, body.secret, body.active)
    webhook, saved = await desk.put_webhook(webhook_id, request, caller)
    return _saved(webhook_view(webhook, desk.target(webhook_id)), saved)


@router.get("/webhooks")
async def list_webhooks(caller: Caller, desk: Desk) -> dict[str, Any]:
    require_role(caller, *WEBHOOK_KEEPERS)
    return {"webhooks": [webhook_view(hook, desk.target(hook.webhook_id)) for hook in desk.webhooks(caller)]}


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: PathId, caller: Caller, desk: Desk) -> dict[str, Any]:
    require_role(caller, *WEBHOOK_KEEPERS)
    return webhook_view(desk.webhook(webhook_id, caller), desk.target(webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: PathId, caller: Caller, desk: Desk) -> Response:
    require_role(caller, *WEBHOOK_KEEPERS)
    await desk.remove_webhook(webhook_id, caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: PathId, caller: Caller, desk: Desk, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """The newest deliveries first, each with every attempt: status, latency, the next attempt."""
    require_role(caller, *WEBHOOK_KEEPERS)
    return {"deliveries": [delivery_view(delivery) for delivery in desk.deliveries(webhook_id, caller, limit)]}


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver(webhook_id: PathId, delivery_id: PathId, caller: Caller, desk: Desk) -> dict[str, Any]:
    """Send a delivery once more (a fresh retry budget); one still being tried is left as it is."""
    require_role(caller, *WEBHOOK_KEEPERS)
    delivery = await desk.redeliver(webhook_id, delivery_id, caller)
    return {"id": delivery.delivery_id, "status": "waiting"}


@router.put("/people/{person_id}")
async def put_person(person_id: PathId, body: PersonData, caller: Caller, desk: Desk) -> JSONResponse:
    """Who gets mail, at which address and in which language; `person_id` is the requester or technician id the
    rest of the system uses."""
    require_role(caller, *PEOPLE_KEEPERS)
    saved = await desk.put_person(person_id, body, caller)
    return _saved({"id": person_id, **body.model_dump(mode="json")}, saved)


@router.get("/people/{person_id}")
async def get_person(person_id: PathId, caller: Caller, desk: Desk) -> dict[str, Any]:
    require_role(caller, *PEOPLE_KEEPERS)
    return {"id": person_id, **desk.person(person_id, caller).model_dump(mode="json")}


def install(app: FastAPI, desk: NotifyDesk) -> None:
    app.state.notify = desk
    app.include_router(router)
