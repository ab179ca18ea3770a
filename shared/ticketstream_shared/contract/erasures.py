"""People erased, on privacy.erasures (written by intake, one partition, key = the person's id, kept forever): the
record that a person's words were made unreadable, when, by whom and how much, with none of those words in it."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from .events import Actor, Frozen, Identifier, UtcDatetime


class SubjectErased(Frozen):
    """A person erased: every data key of theirs shredded (privacy.keys), so what they wrote reads "[erased]"."""

    event_id: uuid.UUID
    event_type: Literal["privacy.subject_erased"] = "privacy.subject_erased"
    schema_version: Literal[1] = 1
    occurred_at: UtcDatetime
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    subject_id: Identifier = Field(description="The person erased, by the id the events name them with.")
    keys_shredded: list[str] = Field(description="The ids of the data keys shredded (random: they name no one).")
    tickets_requested: int = Field(ge=0, description="How many tickets the person had opened, their words erased.")
    actor: Actor = Field(description="Who erased them (an admin key of no single client).")


ERASURE_EVENT_TYPES: tuple[type[SubjectErased], ...] = (SubjectErased,)
