"""notify's use cases, without HTTP: register webhooks and people, read them with their deliveries, ask for a
redelivery. The API maps each refusal below to its status; nothing here knows FastAPI."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ticketstream_shared.contract.notify import (
    DeliveryChannel,
    NotifyConfigEvent,
    PersonChanged,
    PersonData,
    PersonEntry,
    RedeliveryRequested,
    WebhookChanged,
    WebhookData,
    WebhookRemoved,
)
from ticketstream_shared.contract.personal import plain_only
from ticketstream_shared.runtime.auth import Principal
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.runtime.refusals import Forbidden, InvalidField, NotFound, Unavailable
from ticketstream_shared.sealing import SecretBox, SecretNotOpened

from .addresses import AddressRefused, AllowedHosts
from .book import Book, Delivery, Status, Target
from .deliveries import DeliveryLog
from .directory import Directory, Webhook

PRODUCER = "notify"


class Saved(StrEnum):
    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    event_types: list[str]
    client_id: str | None
    secret: str | None
    active: bool


def config_key(change: NotifyConfigEvent) -> bytes:
    if isinstance(change, WebhookChanged | WebhookRemoved):
        return f"webhook/{change.webhook_id}".encode()
    assert isinstance(change, PersonChanged)
    return f"person/{change.person_id}".encode()


class NotifyDesk:
    def __init__(
        self,
        directory: Directory,
        config: ConfigLog[NotifyConfigEvent],
        book: Book,
        deliveries: DeliveryLog,
        box: SecretBox,
        allowed: AllowedHosts,
        clock: Callable[[], datetime],
        correlation: Callable[[], str | None],
        personal: PersonalData = PLAIN,
    ) -> None:
        """`personal`: seals people's names and addresses for notify.config."""
        self.directory = directory
        self._personal = personal
        self._config = config
        self._book = book
        self._deliveries = deliveries
        self._box = box
        self._allowed = allowed
        self._clock = clock
        self._correlation = correlation

    def _envelope(self, caller: Principal) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4().hex,
            "occurred_at": self._clock(),
            "producer": PRODUCER,
            "correlation_id": self._correlation() or str(uuid.uuid4()),
            "changed_by": caller.name,
            "actor": caller.actor,
        }

    def _ready(self) -> None:
        if not (self._config.caught_up.is_set() and self._deliveries.caught_up.is_set()):
            raise Unavailable("notify is still reading its logs")

    # webhooks

    def webhook(self, webhook_id: str, caller: Principal) -> Webhook:
        self._ready()
        found = self.directory.webhooks.get(webhook_id)
        if found is None or not _may_see(caller, found.data.client_id):
            raise NotFound(f"no webhook {webhook_id}")
        return found

    def webhooks(self, caller: Principal) -> list[Webhook]:
        self._ready()
        return sorted(
            (hook for hook in self.directory.webhooks.values() if _may_see(caller, hook.data.client_id)),
            key=lambda hook: hook.webhook_id,
        )

    async def put_webhook(self, webhook_id: str, request: WebhookRequest, caller: Principal) -> tuple[Webhook, Saved]:
        """The webhook as saved, and what the PUT did: the same PUT again appends nothing."""
        self._ready()
        client_id = request.client_id
        if caller.client_id is not None:
            if client_id not in (None, caller.client_id):
                raise Forbidden(f"this key is scoped to client {caller.client_id}")
            client_id = caller.client_id
        try:
            self._allowed.check_url(request.url)
        except AddressRefused as refused:
            raise InvalidField("url", str(refused)) from None
        known = self.directory.webhooks.get(webhook_id)
        if known is not None and not _may_see(caller, known.data.client_id):
            raise Forbidden(f"webhook {webhook_id} belongs to another client")
        secret = request.secret
        if secret is None and known is None:
            raise InvalidField("secret", "a new webhook needs a secret to sign its deliveries")
        sealed = self._sealed(webhook_id, known, secret)
        data = WebhookData.model_validate(
            {
                "url": request.url,
                "event_types": request.event_types,
                "client_id": client_id,
                "sealed_secret": sealed,
                "active": request.active,
            }
        )
        if known is not None and known.data == data:
            return known, Saved.UNCHANGED
        change = WebhookChanged(**self._envelope(caller), webhook_id=webhook_id, data=data)
        await self._config.append(change, config_key(change))
        return self.directory.webhooks[webhook_id], Saved.CREATED if known is None else Saved.CHANGED

    def _sealed(self, webhook_id: str, known: Webhook | None, secret: str | None) -> str:
        """The secret to keep, sealed: the one kept already if it is the same and sealed under the current key;
        so after a key rotation, PUTting a webhook again (with or without its secret) seals it anew."""
        kept = None
        if known is not None:
            try:
                kept = self._box.open(known.data.sealed_secret, webhook_id)
            except SecretNotOpened:
                if secret is None:
                    raise InvalidField("secret", "the secret kept cannot be opened any more: send it again") from None
        sealed = known.data.sealed_secret if known is not None else None
        if (
            kept is not None
            and sealed is not None
            and secret in (None, kept)
            and self._box.sealed_by_current_key(sealed)
        ):
            return sealed
        return self._box.seal(secret or kept or "", webhook_id)

    async def remove_webhook(self, webhook_id: str, caller: Principal) -> None:
        self.webhook(webhook_id, caller)
        change = WebhookRemoved(**self._envelope(caller), webhook_id=webhook_id)
        await self._config.append(change, config_key(change))

    def target(self, webhook_id: str) -> Target | None:
        """How the webhook's deliveries stand (waiting, failing), if any was ever scheduled."""
        return self._book.targets.get((DeliveryChannel.WEBHOOK, webhook_id))

    def deliveries(self, webhook_id: str, caller: Principal, limit: int) -> list[Delivery]:
        """The newest first."""
        self.webhook(webhook_id, caller)
        target = self.target(webhook_id)
        return list(reversed(target.deliveries.values()))[:limit] if target else []

    async def redeliver(self, webhook_id: str, delivery_id: str, caller: Principal) -> Delivery:
        self.webhook(webhook_id, caller)
        target = self._book.targets.get((DeliveryChannel.WEBHOOK, webhook_id))
        delivery = target.deliveries.get(delivery_id) if target else None
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id} (or too old to be kept)")
        if delivery.status is not Status.WAITING:
            request = RedeliveryRequested(
                delivery_id=delivery_id,
                occurred_at=self._clock(),
                channel=DeliveryChannel.WEBHOOK,
                target=webhook_id,
                requested_by=caller.name,
                actor=caller.actor,
            )
            await (await self._deliveries.append(request))
        return delivery

    # people

    def person(self, person_id: str, caller: Principal) -> PersonData:
        self._ready()
        found = self.directory.people.get(person_id)
        if found is None or not _may_see(caller, found.data.client_id):
            raise NotFound(f"no person {person_id}")
        return found.data

    async def put_person(self, person_id: str, data: PersonData, caller: Principal) -> Saved:
        """A key scoped to a client keeps that client's people only: none of another client, and no one without a
        client (who would hear of every client's breaches, as a manager)."""
        self._ready()
        known = self.directory.people.get(person_id)
        if caller.client_id is not None and (
            data.client_id != caller.client_id or (known is not None and known.data.client_id != caller.client_id)
        ):
            raise Forbidden(f"this key is scoped to client {caller.client_id}")
        for name in ("name", "email"):
            try:
                plain_only(getattr(data, name))
            except ValueError as refused:
                raise InvalidField(name, str(refused)) from None
        entry = PersonEntry.model_validate(data.model_dump())
        if known is not None and known.data == entry:
            return Saved.UNCHANGED
        holder = self.directory.by_address.get(data.email.lower())
        if holder is not None and holder != person_id:
            raise InvalidField("email", f"{data.email} is the address of {holder} already")
        sealed = await self._personal.seal_fields(entry, person_id)
        change = PersonChanged(**self._envelope(caller), person_id=person_id, data=sealed)
        await self._config.append(change, config_key(change))
        return Saved.CREATED if known is None else Saved.CHANGED


def _may_see(caller: Principal, client_id: str | None) -> bool:
    return caller.client_id is None or caller.client_id == client_id
