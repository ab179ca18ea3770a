"""Personal fields: free text people write and that names or describes them (a ticket's title and description, a
comment's body, a worklog's note). Such a field holds its text in plain within its limits, or sealed under a data
key of the person it belongs to (privacy.py), so that erasing the person's keys erases the field in every copy of
every event. The JSON Schemas mark them `"x-personal": true`.

A sealed value is 'sealed:v1:<key id, 32 hex digits>:<base64 of nonce, ciphertext and tag>'. Plain text may not
begin with 'sealed:', so no one's words are mistaken for a sealed value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

SEALED_PREFIX = "sealed:v1:"
RESERVED_PREFIX = "sealed:"
_SEALED = re.compile(r"sealed:v1:[0-9a-f]{32}:[A-Za-z0-9+/]+={0,2}")
#: AES-GCM's nonce and tag around the text's UTF-8 bytes (at most 4 per character).
_NONCE_AND_TAG = 12 + 16

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Personal:
    """Annotated[str, Personal(min_length, max_length)]: personal text within these limits (and matching `pattern`,
    if one is given), or sealed."""

    min_length: int
    max_length: int
    pattern: str | None = None

    @property
    def sealed_max_length(self) -> int:
        sealed_bytes = _NONCE_AND_TAG + 4 * self.max_length
        return len(SEALED_PREFIX) + 33 + 4 * -(-sealed_bytes // 3)

    def _check(self, value: str) -> str:
        if value.startswith(SEALED_PREFIX):
            if len(value) > self.sealed_max_length or not _SEALED.fullmatch(value):
                raise PydanticCustomError("sealed_value", "not a well-formed sealed value")
            return value
        if value.startswith(RESERVED_PREFIX):
            raise PydanticCustomError("reserved_prefix", "may not begin with 'sealed:'")
        if len(value) < self.min_length:
            raise PydanticCustomError("string_too_short", f"should have at least {self.min_length} characters")
        if len(value) > self.max_length:
            raise PydanticCustomError("string_too_long", f"should have at most {self.max_length} characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise PydanticCustomError("string_pattern_mismatch", f"should match the pattern '{self.pattern}'")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "x-personal": True,
            "anyOf": [
                {
                    "minLength": self.min_length,
                    "maxLength": self.max_length,
                    **({"pattern": self.pattern} if self.pattern is not None else {}),
                    "not": {"pattern": f"^{RESERVED_PREFIX}"},
                    "description": "In plain text.",
                },
                {
                    "maxLength": self.sealed_max_length,
                    "pattern": f"^{_SEALED.pattern}$",
                    "description": "Sealed under a data key of the person it belongs to (AES-GCM).",
                },
            ],
        }


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def plain_only(value: str) -> str:
    """`value`, if it is plain text; ValueError if it begins as a sealed value does."""
    if value.startswith(RESERVED_PREFIX):
        raise ValueError(f"may not begin with '{RESERVED_PREFIX}'")
    return value


#: For what people send (Annotated[str, Field(...), PLAIN_ONLY]): their words, never a value that reads as sealed.
PLAIN_ONLY = AfterValidator(plain_only)


@functools.cache
def _personal_fields(model: type[BaseModel]) -> tuple[tuple[str, bool], ...]:
    """The fields of `model` that are personal (True) or may hold a model with personal fields (False)."""
    found = []
    for name, field in model.model_fields.items():
        if _is_personal(field.metadata, field.annotation):
            found.append((name, True))
        elif _holds_models(field.annotation):
            found.append((name, False))
    return tuple(found)


def _is_personal(metadata: list[Any], annotation: Any) -> bool:
    """Personal(...) among a field's metadata, or an optional field's (`Title | None`)."""
    if any(isinstance(item, Personal) for item in metadata):
        return True
    return any(_is_personal(list(getattr(argument, "__metadata__", ())), None) for argument in get_args(annotation))


def _holds_models(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel) and bool(_personal_fields(annotation))
    return any(_holds_models(argument) for argument in get_args(annotation))


def has_personal_fields(model: type[BaseModel]) -> bool:
    return bool(_personal_fields(model))


def personal_texts(model: BaseModel) -> Iterator[str]:
    """Every personal text of `model` that is not empty, nested ones too."""
    for name, personal in _personal_fields(type(model)):
        value = getattr(model, name)
        if personal and value:
            yield value
        elif isinstance(value, BaseModel):
            yield from personal_texts(value)


def map_personal(model: M, change: Callable[[str], str]) -> M:
    """`model` with `change` applied to each of its personal texts, nested ones too (empty ones stay empty: there
    is nothing to hide in them). The same model when it has none."""
    updates: dict[str, Any] = {}
    for name, personal in _personal_fields(type(model)):
        value = getattr(model, name)
        if personal and value:
            updates[name] = change(value)
        elif isinstance(value, BaseModel) and (changed := map_personal(value, change)) is not value:
            updates[name] = changed
    return model.model_copy(update=updates) if updates else model
