"""What an audit trail says about one change: who made it, and the fields it changed, each before and after.
Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .contract import Actor


def by(actor: Actor | None, unrecorded: str = "not recorded (before actors were)") -> str:
    """Who made a change, in words; `unrecorded` for one made before actors were recorded (a configuration
    change's key name, which it carried then)."""
    return actor.in_words() if actor else unrecorded


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each field whose value differs between two versions of one thing, as {"before", "after"} (a field new in
    `after`, or everything when there was nothing before, is before None)."""
    earlier = before or {}
    return {
        name: {"before": earlier.get(name), "after": value}
        for name, value in after.items()
        if name not in earlier or earlier[name] != value
    }
