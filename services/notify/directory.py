"""Who is told of what: the webhooks and the people of notify.config, as read from it (every replica holds all of
it: a few thousand entries at most). People's names and addresses are held opened; an erased person is forgotten."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime

from ticketstream_shared.contract.notify import (
    NotifyConfigEvent,
    PersonChanged,
    PersonEntry,
    PersonRole,
    WebhookChanged,
    WebhookData,
    WebhookRemoved,
)
from ticketstream_shared.contract.personal import is_sealed
from ticketstream_shared.privacy import ERASED


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    data: WebhookData
    version: int
    changed_at: datetime
    changed_by: str

    def wants(self, event_type: str, client_id: str) -> bool:
        if not self.data.active or (self.data.client_id is not None and self.data.client_id != client_id):
            return False
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.data.event_types)


@dataclass(frozen=True)
class Person:
    person_id: str
    data: PersonEntry
    version: int


@dataclass
class Directory:
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    #: Lower-cased address -> person id, for mail coming in.
    by_address: dict[str, str] = field(default_factory=dict)
    _versions: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def apply(self, change: NotifyConfigEvent, live: bool = True) -> bool:
        """Fold one change of notify.config; False for a twin of one folded already."""
        if change.event_id in self._seen:
            return False
        self._seen.add(change.event_id)
        if isinstance(change, WebhookChanged):
            version = self._next_version(f"webhook/{change.webhook_id}")
            self.webhooks[change.webhook_id] = Webhook(
                change.webhook_id, change.data, version, change.occurred_at, change.changed_by
            )
        elif isinstance(change, WebhookRemoved):
            self.webhooks.pop(change.webhook_id, None)
        elif isinstance(change, PersonChanged):
            self.forget(change.person_id)
            version = self._next_version(f"person/{change.person_id}")
            # Held once opened: an erased person is forgotten, and one still sealed (no master key here, or not this
            # deployment's) is left out: neither can be mailed.
            if not any(value == ERASED or is_sealed(value) for value in (change.data.name, change.data.email)):
                self.people[change.person_id] = Person(change.person_id, change.data, version)
                self.by_address[change.data.email.lower()] = change.person_id
        return True

    def forget(self, person_id: str) -> None:
        """An erased person (their keys shredded): no mail goes to them, none from their address opens a ticket."""
        before = self.people.pop(person_id, None)
        if before is not None and self.by_address.get(before.data.email.lower()) == person_id:
            del self.by_address[before.data.email.lower()]

    def _next_version(self, subject: str) -> int:
        self._versions[subject] = self._versions.get(subject, 0) + 1
        return self._versions[subject]

    def webhooks_for(self, event_type: str, client_id: str) -> list[Webhook]:
        return [webhook for webhook in self.webhooks.values() if webhook.wants(event_type, client_id)]

    def managers_of(self, client_id: str) -> list[Person]:
        """Managers who hear of every breach and escalation of the client: theirs, or every client's."""
        return [
            person
            for person in self.people.values()
            if person.data.role is PersonRole.MANAGER and person.data.client_id in (None, client_id)
        ]
