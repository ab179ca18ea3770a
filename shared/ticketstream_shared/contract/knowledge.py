"""Knowledge articles, on knowledge.articles (written by intake, one partition, key = the article id, kept forever):
every version of every article, so that what a requester was shown can be explained later."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .events import Frozen, Identifier, RecordedActor, ServiceId, UtcDatetime, listed_once

Keyword = Annotated[str, Field(min_length=1, max_length=60)]


class ArticleData(Frozen):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=50_000, description="Markdown.")
    service_id: ServiceId | None = Field(default=None, description="The service of the catalogue it helps with.")
    categories: Annotated[list[Identifier], AfterValidator(listed_once)] = Field(default_factory=list, max_length=50)
    keywords: Annotated[list[Keyword], AfterValidator(listed_once)] = Field(
        default_factory=list, max_length=50, description="Words people search with."
    )
    published: bool = Field(default=False, description="Shown to requesters; a draft until then.")
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", description="BCP 47, e.g. en or de-CH.")


class ArticleChanged(Frozen):
    """A new version of an article: its whole content, not a diff."""

    event_id: uuid.UUID
    event_type: Literal["knowledge.article_changed"] = "knowledge.article_changed"
    schema_version: Literal[2] = 2
    occurred_at: UtcDatetime
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    changed_by: str = Field(min_length=1, description="The API key's name that made the change.")
    article_id: Identifier
    data: ArticleData
    actor: RecordedActor = None


KNOWLEDGE_EVENT_TYPES: tuple[type[ArticleChanged], ...] = (ArticleChanged,)
