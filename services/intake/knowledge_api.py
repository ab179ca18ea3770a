"""Knowledge articles over HTTP (served by intake, beside the tickets whose suggestions they are): kept by staff,
every change a version on knowledge.articles; searched by everyone, requesters among the published ones only.
(No postponed annotations in this module: FastAPI must see the dependencies.)"""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse

from ticketstream_shared.audit import by
from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier, ServiceId
from ticketstream_shared.contract.knowledge import ArticleChanged, ArticleData
from ticketstream_shared.runtime.auth import Principal, require_role, require_unscoped
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.http import REPLAYED, Caller, from_app_state
from ticketstream_shared.runtime.ids import IdSpace, change_id
from ticketstream_shared.runtime.logging import correlation_id

from .knowledge import Hit, Library, Version

#: Who writes articles; everyone reads the published ones.
AUTHORS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)
#: A change's id derives from the article, the version it follows and its content: the same PUT taken twice (two
#: replicas, a retry) appends one version.
CHANGE_IDS = IdSpace(uuid.UUID("0b6f3c1e-8d2a-4f5e-9c7b-1a2d3e4f5a60"))


class Knowledge:
    def __init__(self, library: Library, log: ConfigLog[ArticleChanged], clock: Callable[[], datetime]) -> None:
        self.library = library
        self.log = log
        self.clock = clock


Shelf = Annotated[Knowledge, Depends(from_app_state("knowledge"))]
router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])


def _ready(knowledge: Knowledge) -> None:
    if not knowledge.log.caught_up.is_set():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "still reading the articles; retry shortly")


def article_view(article_id: str, version: Version) -> dict[str, Any]:
    return {
        "id": article_id,
        **version.data.model_dump(mode="json"),
        "version": version.number,
        "changed_at": version.recorded_at.isoformat(),
        "changed_by": version.changed_by,
        "by": by(version.actor, version.changed_by),
    }


def hit_view(hit: Hit) -> dict[str, Any]:
    return {"id": hit.article_id, "title": hit.title, "snippet": hit.snippet, "service_id": hit.service_id}


def _sees_drafts(caller: Principal) -> bool:
    return caller.role in AUTHORS


@router.put("/articles/{article_id}")
async def put_article(article_id: Identifier, body: ArticleData, caller: Caller, knowledge: Shelf) -> JSONResponse:
    """A new version of the article (its whole content); the same content again records nothing."""
    require_role(caller, *AUTHORS)
    require_unscoped(caller, "the knowledge base")
    _ready(knowledge)
    current = knowledge.library.current(article_id)
    if current is None or current.data != body:
        change = ArticleChanged(
            event_id=change_id(CHANGE_IDS, ArticleChanged, article_id, current.number if current else 0, body),
            occurred_at=knowledge.clock(),
            producer="intake",
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
            changed_by=caller.name,
            actor=caller.actor,
            article_id=article_id,
            data=body,
        )
        await knowledge.log.append(change, article_id.encode())
    version = knowledge.library.current(article_id)
    assert version is not None, "read back before append returns"
    changed = current is None or version.number != current.number
    return JSONResponse(
        article_view(article_id, version),
        status_code=status.HTTP_201_CREATED if current is None else status.HTTP_200_OK,
        headers={} if changed else REPLAYED,
    )


@router.get("/articles/{article_id}")
async def get_article(article_id: Identifier, caller: Caller, knowledge: Shelf) -> dict[str, Any]:
    _ready(knowledge)
    current = knowledge.library.current(article_id)
    if current is None or not (current.data.published or _sees_drafts(caller)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no article {article_id}")
    return article_view(article_id, current)


@router.get("/search")
async def search(
    caller: Caller,
    knowledge: Shelf,
    q: Annotated[str, Query(min_length=1, max_length=500, description="What the problem is, in your words.")],
    service_id: ServiceId | None = None,
    category: Identifier | None = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Articles ranked by how well they match `q`, each with a snippet; requesters see published ones only."""
    _ready(knowledge)
    hits = knowledge.library.search(
        q, published_only=not _sees_drafts(caller), service_id=service_id, category=category, limit=limit
    )
    return {"results": [hit_view(hit) for hit in hits]}
