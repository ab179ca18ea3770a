"""Request keys: one contract for every mutation, over HTTP (`Idempotency-Key`) and tickets.inbound (`request_id`).

- A key belongs to one caller (an API key's name; every tickets.inbound request shares the caller 'inbound').
- A keyed request is described by what it asks: operation, target and a digest of each field of its body
  (`KeyedRequest`, recorded on the events it causes, so it survives restarts and is known to every replica).
- Its command's id derives from the key and that description. The same request again derives the same event ids,
  is recognised as done and answered with its first outcome (`Idempotent-Replayed: true`), however long ago.
- The same key asking for anything else (another operation, another ticket, other values) is refused with a 409
  naming what differs, for as long as the key is remembered: `IDEMPOTENCY_KEY_TTL_HOURS` after the request took
  effect. After that the key may name a new request. A creation's key is never free again, since the new ticket's
  id derives from it: reusing it for another ticket stays a 409.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketstream_shared.contract import TicketEvent
from ticketstream_shared.contract.events import KeyedRequest
from ticketstream_shared.runtime.store import Changes, LocalStore

from .domain import (
    Actor,
    AddComment,
    ChangeStatus,
    Command,
    CommandContext,
    CorrectWorklog,
    CreateTicket,
    IdempotencyKeyReused,
    LifecycleRules,
    RecordCsat,
    RecordWorklog,
    SolveMyself,
    UpdateTicket,
    VoidWorklog,
)
from .ticket_store import REQUEST_KEYS

#: The operation each command is, by the names tickets.inbound uses where it has them.
OPERATIONS: dict[type, str] = {
    CreateTicket: "create_ticket",
    UpdateTicket: "update_ticket",
    ChangeStatus: "change_status",
    AddComment: "add_comment",
    RecordWorklog: "add_worklog",
    CorrectWorklog: "correct_worklog",
    VoidWorklog: "void_worklog",
    RecordCsat: "rate_ticket",
    SolveMyself: "self_solved",
}
#: Fields that are not what the caller asks for: the target, the If-Match precondition, and ids derived from the key.
_NOT_ASKED = {"ticket_id", "expected_version"}
_DERIVED_IDS: dict[type, str] = {AddComment: "comment_id", RecordWorklog: "worklog_id"}


def _digest(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def keyed_request(caller: str, command: Command) -> KeyedRequest:
    kind = type(command)
    asked = asdict(command)
    target = command.ticket_id
    if isinstance(command, CorrectWorklog | VoidWorklog):
        target = f"{command.ticket_id}/worklogs/{asked.pop('worklog_id')}"
    skipped = _NOT_ASKED | {_DERIVED_IDS.get(kind, "")}
    fields = {name: _digest(value) for name, value in asked.items() if name not in skipped}
    return KeyedRequest(caller=caller, operation=OPERATIONS[kind], target=target, fields=fields)


def request_context(
    command: Command,
    *,
    caller: str,
    request_key: str | None,
    now: datetime,
    correlation_id: str,
    actor: Actor,
    rules: LifecycleRules,
) -> CommandContext:
    """The context of a command arriving at an edge, keyed or not."""
    if request_key is None:
        request, command_id = None, str(uuid.uuid4())
    else:
        request = keyed_request(caller, command)
        command_id = f"{caller}\x00{request.target}\x00{request_key}\x00{_digest(request.model_dump())}"
    return CommandContext(
        now=now,
        correlation_id=correlation_id,
        command_id=command_id,
        actor=actor,
        request_key=request_key,
        rules=rules,
        request=request,
    )


def differences(first: KeyedRequest, again: KeyedRequest) -> tuple[str, ...]:
    """What `again` asks otherwise than `first`: "operation", "target" and "body.<field>" for each field."""
    differs = [name for name in ("operation", "target") if getattr(first, name) != getattr(again, name)]
    if not differs:
        names = sorted(first.fields.keys() | again.fields.keys())
        differs = [f"body.{name}" for name in names if first.fields.get(name) != again.fields.get(name)]
    return tuple(differs)


def refusal(first: KeyedRequest, again: KeyedRequest) -> IdempotencyKeyReused:
    differs = differences(first, again)
    shown = {"operation": f"operation ({again.operation})", "target": f"target ({again.target})"}
    described = ", ".join(shown.get(name, name) for name in differs)
    return IdempotencyKeyReused(
        f"this key was first used for {first.operation} on {first.target}; this request differs in {described}. "
        "Send a new Idempotency-Key (request_id) for a new request.",
        differs,
    )


@dataclass(frozen=True)
class FirstUse:
    request: KeyedRequest
    at: datetime


class RequestKeys:
    """The keys used within the TTL, per caller, with what each first asked for. Kept in the local store (and its
    changelog) from the events' `request` as the log is read; the keys of this replica's own decisions are held in
    memory from the decision until the log is read back to them."""

    def __init__(self, ttl: timedelta, clock: Callable[[], datetime], store: LocalStore) -> None:
        self._ttl = ttl
        self._clock = clock
        self._store = store
        self._decided: dict[bytes, FirstUse] = {}

    def decided(self, event: TicketEvent) -> None:
        """Hold the key of the request of an event this replica decided, until the log is read back to it."""
        if event.request is not None and event.request_id is not None and self._within_ttl(event.occurred_at):
            self._decided.setdefault(
                _key(event.request.caller, event.request_id), FirstUse(event.request, event.occurred_at)
            )

    def logged(
        self, caller: str, request_key: str, request: dict[str, Any], at: datetime, changes: Changes
    ) -> bytes | None:
        """Write the use of a key by an event read from the log (`request` as the event holds it) into `changes`, if
        it is the key's first use within the TTL. Returns the store key written."""
        if not self._within_ttl(at):
            return None
        key = _key(caller, request_key)
        self._decided.pop(key, None)
        if self._first(key, changes) is not None:
            return None
        changes.put(key, json.dumps({"request": request, "at": at.isoformat()}, separators=(",", ":")).encode())
        return key

    def _within_ttl(self, at: datetime) -> bool:
        return at > self._clock() - self._ttl

    def check(self, context: CommandContext) -> None:
        """Refuse a keyed command whose key was first used, by the same caller, for another request."""
        if context.request is None or context.request_key is None:
            return
        key = _key(context.request.caller, context.request_key)
        first = self._decided.get(key) or self._first(key)
        if first is not None and first.request != context.request:
            raise refusal(first.request, context.request)

    def _first(self, key: bytes, within: Changes | None = None) -> FirstUse | None:
        """The key's first use, if still within the TTL (an expired record is left on disk, and overwritten by the
        key's next first use)."""
        raw = self._store.get(key, within)
        if raw is None:
            return None
        record = json.loads(raw)
        at = datetime.fromisoformat(record["at"])
        if at <= self._clock() - self._ttl:
            return None
        return FirstUse(KeyedRequest.model_validate(record["request"]), at)


def _key(caller: str, request_key: str) -> bytes:
    return REQUEST_KEYS + caller.encode() + b"\x00" + request_key.encode()
