"""The audit trail of the roster and routing: every change read from the team log, who made it, what it was before
and after. Kept by every process as it folds the team log (roster changes are rare: a bounded number is kept, the
team log itself keeps them all)."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ticketstream_shared.audit import by, changed_fields
from ticketstream_shared.contract.assignment import (
    CategoryRouted,
    RosterChange,
    ShiftChanged,
    TeamStrategyChosen,
    TechnicianProfiled,
    TechnicianTransferred,
)

if TYPE_CHECKING:
    from .desk import Desk

#: The most recent roster changes kept for the audit trail.
KEPT = 10_000
#: What each kind of change sets, shown before and after.
SETS: dict[type[RosterChange], tuple[str, ...]] = {
    TechnicianProfiled: ("name", "team", "tier", "skills", "capacity"),
    TechnicianTransferred: ("team",),
    ShiftChanged: ("on_shift",),
    CategoryRouted: ("team", "skill"),
    TeamStrategyChosen: ("strategy",),
}


@dataclass(frozen=True)
class Entry:
    change: RosterChange
    #: The values it replaced, as they stood on the desk just before it.
    before: dict[str, Any] | None

    @property
    def subject(self) -> dict[str, str]:
        """What the change is about, by kind: a technician, a team, a category."""
        data = data_of(self.change)
        return {name: getattr(data, name) for name in ("technician_id", "team", "category") if hasattr(data, name)}

    def concerns(self, name: str, value: str) -> bool:
        """Whether the change is about `value` as its `name`: a transfer is about the team left and the one joined."""
        if name == "team" and isinstance(self.change, TechnicianTransferred):
            return value in (self.change.data.from_team, self.change.data.to_team)
        return self.subject.get(name) == value

    def view(self) -> dict[str, Any]:
        change = self.change
        actor = change.actor
        return {
            "at": change.occurred_at.isoformat(),
            "event_type": change.event_type,
            **self.subject,
            "by": by(actor),
            "actor": actor.model_dump(mode="json") if actor else None,
            "what": what(change),
            "changes": changed_fields(self.before, _values(change)),
        }


_ON_OFF = {True: "on", False: "off"}


def data_of(change: RosterChange) -> Any:
    """The change's data: every kind of change has its own, the envelope they share none."""
    return change.data  # type: ignore[attr-defined]


def what(change: RosterChange) -> str:
    data = data_of(change)
    if isinstance(change, TechnicianProfiled):
        return f"profiled technician {data.technician_id} in team {data.team}"
    if isinstance(change, TechnicianTransferred):
        return f"moved technician {data.technician_id} from team {data.from_team} to {data.to_team}"
    if isinstance(change, ShiftChanged):
        return f"{'put' if data.on_shift else 'took'} technician {data.technician_id} {_ON_OFF[data.on_shift]} shift"
    if isinstance(change, CategoryRouted):
        return f"routed category {data.category} to team {data.team}"
    if isinstance(change, TeamStrategyChosen):
        return f"team {data.team} distributes its tickets by {data.strategy.value}"
    return change.event_type


class RosterTrail:
    def __init__(self, kept: int = KEPT) -> None:
        self._entries: dict[uuid.UUID, Entry] = {}  # in the order read; a twin (the same event id) once
        self._kept = kept
        #: Changes recorded so far, and the trail pickled at that count (see `__reduce__`).
        self._recorded = 0
        self._pickled: tuple[int, bytes] | None = None

    def record(self, change: RosterChange, desk: Desk) -> None:
        """Note `change` with what it replaces; call it before the desk folds the change."""
        if change.event_id in self._entries:
            return
        self._entries[change.event_id] = Entry(change, _as_it_was(change, desk))
        self._recorded += 1
        if len(self._entries) > self._kept:
            del self._entries[next(iter(self._entries))]

    def __reduce__(self) -> tuple[Callable[[bytes], RosterTrail], tuple[bytes]]:
        """Pickled (in every checkpoint of the desk, archive.py) as the bytes it pickled to last, while no change
        came: roster changes are rare, and pickling 10,000 entries takes some 70 ms."""
        if self._pickled is None or self._pickled[0] != self._recorded:
            state = (self._entries, self._kept, self._recorded)
            self._pickled = (self._recorded, pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
        return _unpickled, (self._pickled[1],)

    def newest_first(self, **about: str | None) -> Iterator[Entry]:
        """The entries whose subject has the given values (None: any), newest first."""
        wanted = {name: value for name, value in about.items() if value is not None}
        for entry in reversed(self._entries.values()):
            if all(entry.concerns(name, value) for name, value in wanted.items()):
                yield entry


def _values(change: RosterChange) -> dict[str, Any]:
    """What the change sets (a transfer: the technician's team)."""
    data = data_of(change).model_dump(mode="json")
    if isinstance(change, TechnicianTransferred):
        return {"team": data["to_team"]}
    values = {name: data[name] for name in SETS[type(change)]}
    if "skills" in values:
        values["skills"] = sorted(values["skills"])  # a set: its order says nothing
    return values


def _as_it_was(change: RosterChange, desk: Desk) -> dict[str, Any] | None:
    """What the change replaces, as the desk has it just before (None: nothing yet)."""
    data = data_of(change)
    if isinstance(change, TechnicianTransferred):
        return {"team": data.from_team}
    if isinstance(change, TechnicianProfiled | ShiftChanged):
        technician = desk.technician(data.technician_id)
        if technician is None:
            return None
        return {name: sorted(value) if name == "skills" else value
                for name in SETS[type(change)] if (value := getattr(technician, name)) is not None}  # fmt: skip
    if isinstance(change, CategoryRouted):
        rule = desk.rules.get(data.category)
        return None if rule is None else {"team": rule.team, "skill": rule.skill}
    team = desk.teams.get(data.team)
    return None if team is None else {"strategy": team.strategy.value}


def _unpickled(raw: bytes) -> RosterTrail:
    trail = RosterTrail()
    trail._entries, trail._kept, trail._recorded = pickle.loads(raw)
    return trail
