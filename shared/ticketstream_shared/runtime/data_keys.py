"""People's data keys on privacy.keys, as every replica of a service that seals or opens personal fields holds them
(privacy.py): read from the beginning and followed (runtime/config_log.py), a key issued on a person's first
sealed field, and tombstones over all of a person's keys when they are erased.

Two replicas may issue a key for the same new person at once: each record has its own id, both are kept, and a
field names the key it was sealed with, so either opens it. Erasing shreds all of them.

Services seal and open whole events through the `PersonalData` port: the personal fields the contract marks
(contract/personal.py) are sealed under the key of the person they belong to, and opened in memory. `NoSealing` is
the port where no master key is configured: fields are written and read in plain text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.personal import is_sealed, map_personal, personal_texts
from ticketstream_shared.contract.topics import PRIVACY_KEYS
from ticketstream_shared.privacy import DataKeyRecord, KeyNotYetRead, KeyRing, sealed_key_id
from ticketstream_shared.sealing import SecretBox, SecretNotOpened

from .config_log import ConfigLog
from .settings import PrivacySettings, ServiceSettings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: How long opening a field or erasing a person waits for privacy.keys before saying it could not (KeyNotYetRead).
KEY_WAIT_S = 10.0


class PersonalData(Protocol):
    async def seal_fields(self, model: M, subject: str) -> M:
        """`model` with its personal fields sealed under a key of `subject`'s."""

    def open_fields(self, model: M) -> M:
        """`model` with its personal fields opened (privacy.ERASED for an erased person's; one this master key does
        not open stays sealed); raises privacy.KeyNotYetRead for a key issued elsewhere a moment ago, and not read
        here yet."""

    async def opened(self, model: M) -> M:
        """open_fields, waiting for a key issued elsewhere a moment ago."""

    async def seal(self, text: str, subject: str) -> str:
        """`text` sealed under a key of `subject`'s."""

    async def seal_quoting(self, text: str, subject: str, quoted: Iterable[str]) -> str:
        """`text` sealed under a key of `subject`'s and under the key of each sealed value in `quoted` (as the events
        have them), one layer each: it opens only while none of those people is erased (a mail quoting them)."""

    async def open(self, value: str) -> str:
        """A value as seal wrote it, opened (privacy.ERASED for an erased person's); another value as it is."""


class NoSealing:
    """No master key configured: personal fields travel and rest in plain text."""

    async def seal_fields(self, model: M, subject: str) -> M:
        return model

    def open_fields(self, model: M) -> M:
        return model

    async def opened(self, model: M) -> M:
        return model

    async def seal(self, text: str, subject: str) -> str:
        return text

    async def seal_quoting(self, text: str, subject: str, quoted: Iterable[str]) -> str:
        return text

    async def open(self, value: str) -> str:
        return value


#: The one NoSealing, for defaults.
PLAIN = NoSealing()


class KeyShredded:
    """A tombstone read from privacy.keys: the key of this id is gone."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id


def _decode(raw: bytes) -> DataKeyRecord:
    try:
        return DataKeyRecord.model_validate_json(raw)
    except ValueError as error:
        raise InvalidEvent(f"not a data key record: {error}") from None


def data_keys_for(
    settings: PrivacySettings, service: str, clock: Callable[[], datetime], **options: Any
) -> DataKeys | None:
    """The service's DataKeys under the configured master key (`options`: DataKeys'); None without one."""
    if settings.privacy_master_key_file is None:
        return None
    return DataKeys(SecretBox.from_file(settings.privacy_master_key_file), service, clock, **options)


async def opened_json(personal: PersonalData, value: Any) -> Any:
    """`value` (JSON: dicts, lists, strings, numbers) with every sealed string in it opened: for a view built from
    what a service holds sealed (no plain text begins with the sealed prefix). Raises privacy.KeyNotYetRead when
    privacy.keys is too far behind."""
    if isinstance(value, str):
        return await personal.open(value) if is_sealed(value) else value
    if isinstance(value, dict):
        return {key: await opened_json(personal, item) for key, item in value.items()}
    if isinstance(value, list):
        return [await opened_json(personal, item) for item in value]
    return value


class DataKeys:
    def __init__(
        self,
        master: SecretBox,
        service: str,
        clock: Callable[[], datetime],
        on_shredded: Callable[[str], None] = lambda subject: None,
        owner: bool = True,
    ) -> None:
        """`on_shredded`: called with its person when a key is shredded, for what holds their fields opened to
        forget them. `owner`: this
        service issues keys and parks what is not one (intake); a reader only opens (notify)."""
        self.ring = KeyRing(master)
        self._owner = owner
        self._clock = clock
        self._on_shredded = on_shredded
        self.log: ConfigLog[DataKeyRecord | KeyShredded] = ConfigLog(  # type: ignore[type-var, misc]
            PRIVACY_KEYS, _decode, self._apply, service, owner, tombstone=lambda key: KeyShredded(key.decode())
        )
        #: Issuing is once per person, and rare: one at a time in this replica, so that it issues one key each.
        self._issuing = asyncio.Lock()

    def _apply(self, change: DataKeyRecord | KeyShredded, live: bool) -> bool:
        if isinstance(change, KeyShredded):
            if (subject := self.ring.shred(change.key_id)) is not None:
                self._on_shredded(subject)
            return True
        try:
            self.ring.apply(change)
        except SecretNotOpened as error:  # another master key's record: its fields stay closed here, said loudly
            reason = {"key_id": change.key_id, "reason": str(error)}
            log.error("a data key this service's master key does not open", extra=reason)
        return True

    async def follow(self, consumer: AIOKafkaConsumer, ends: AIOKafkaConsumer | None = None) -> None:
        """Read privacy.keys; the issuing service also wraps again, once read, the keys an older master key wraps.
        `ends`: where a key not read yet asks how far the log reaches (ConfigLog.follow)."""
        await self._rewrapping_once_read(self.log.follow(consumer, ends))

    async def follow_on_own_connections(self, settings: ServiceSettings, client_id: str) -> None:
        """`follow` on a consumer of its own and another asking where the log ends (ConfigLog's), both stopped when
        following ends."""
        await self._rewrapping_once_read(self.log.follow_on_own_connections(settings, client_id))

    async def _rewrapping_once_read(self, following: Awaitable[None]) -> None:
        async def rewrap_once_read() -> None:
            await self.caught_up.wait()
            await self.rewrap()

        if self._owner:
            await asyncio.gather(following, rewrap_once_read())
        else:
            await following

    @property
    def caught_up(self) -> asyncio.Event:
        return self.log.caught_up

    async def key_for(self, subject: str) -> str:
        """The id of a key of `subject`'s to seal with: their newest, or one issued now."""
        if held := self.ring.keys_of(subject):
            return held[-1]
        async with self._issuing:
            if held := self.ring.keys_of(subject):
                return held[-1]
            record = self.ring.issue(subject, self._clock())
            await self.log.append(record, record.key_id.encode())
            return record.key_id

    async def seal(self, text: str, subject: str) -> str:
        return self.ring.seal(text, await self.key_for(subject))

    async def seal_quoting(self, text: str, subject: str, quoted: Iterable[str]) -> str:
        own = await self.key_for(subject)
        # A quoted key this ring no longer holds was erased: its words are in the text as ERASED already.
        theirs = dict.fromkeys(sealed_key_id(value) for value in quoted if is_sealed(value))
        return self.ring.seal_in_layers(text, [key for key in theirs if key != own and self.ring.holds(key)] + [own])

    async def seal_fields(self, model: M, subject: str) -> M:
        if next(personal_texts(model), None) is None:
            return model  # nothing to seal: no key issued for it
        key_id = await self.key_for(subject)
        return map_personal(model, lambda text: self.ring.seal(text, key_id))

    def open_fields(self, model: M) -> M:
        return map_personal(model, self._open)

    async def opened(self, model: M) -> M:
        """open_fields, waiting for a key not read yet up to the log's end (then it was erased)."""
        return await self._waiting_for_keys(
            lambda erased: map_personal(model, lambda value: self._open(value, unknown_is_erased=erased))
        )

    async def opened_eventually(self, model: M) -> M:
        """opened, however long privacy.keys takes to answer: for a log whose records are folded in order, none
        skipped (notify.config)."""
        while True:
            try:
                return await self.opened(model)
            except KeyNotYetRead as error:
                log.warning("waiting for privacy.keys to open a record", extra={"reason": str(error)})

    async def open(self, value: str) -> str:
        """A field as read: its text, or privacy.ERASED. A key not read yet is waited for, up to the log's end."""
        return await self._waiting_for_keys(lambda erased: self._open(value, unknown_is_erased=erased))

    def _open(self, value: str, unknown_is_erased: bool = False) -> str:
        """KeyRing.open, but a value this master key does not open (sealed in another deployment, or altered) stays
        as it is, sealed, and is logged: what reads it shows it sealed, or leaves it out, rather than fail."""
        try:
            return self.ring.open(value, unknown_is_erased=unknown_is_erased)
        except SecretNotOpened as error:
            log.error("a sealed field does not open; it stays sealed", extra={"reason": str(error)})
            return value

    async def _waiting_for_keys(self, opening: Callable[[bool], T]) -> T:
        """`opening(unknown_is_erased)` with the keys read so far; if one is not read yet, again once privacy.keys
        is read to its end, when a key still unknown was erased."""
        try:
            return opening(False)
        except KeyNotYetRead:
            await self._read_to_end()
            return opening(True)

    async def _read_to_end(self) -> None:
        """Up to where privacy.keys ends now; KeyNotYetRead if the broker does not get us there in KEY_WAIT_S (no
        field is called erased for a slow broker)."""
        if not await self.log.read_to_end(KEY_WAIT_S):
            raise KeyNotYetRead(f"privacy.keys was not read to its end within {KEY_WAIT_S:.0f} s")

    async def rewrap(self) -> int:
        """Write each key wrapped by an older master key again, wrapped by the current one (after a rotation of the
        master key; replicas doing it at once write twins, which compaction folds). Returns how many."""
        rewrapped = self.ring.rewrapped()
        for record in rewrapped:
            await self.log.append(record, record.key_id.encode())
        if rewrapped:
            log.info("data keys wrapped by the current master key", extra={"keys": len(rewrapped)})
        return len(rewrapped)

    async def erase(self, subject: str) -> list[str]:
        """Shred every key of `subject`: a tombstone each, read back. Returns their ids."""
        await self._read_to_end()  # a key another replica issued a moment ago is among them
        shredded = self.ring.keys_of(subject)
        for key_id in shredded:
            await self.log.append(None, key_id.encode())
        return shredded
