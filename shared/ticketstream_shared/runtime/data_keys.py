"""People's data keys on privacy.keys, as every replica of a service that seals or opens personal fields holds them
(privacy.py): read from the beginning and followed (runtime/config_log.py), a key issued on a person's first
sealed field, and tombstones over all of a person's keys when they are erased.

Two replicas may issue a key for the same new person at once: each record has its own id, both are kept, and a
field names the key it was sealed with, so either opens it. Erasing shreds all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.topics import PRIVACY_KEYS
from ticketstream_shared.privacy import DataKeyRecord, KeyNotYetRead, KeyRing
from ticketstream_shared.sealing import SecretBox, SecretNotOpened

from .config_log import ConfigLog

log = logging.getLogger(__name__)


class KeyShredded:
    """A tombstone read from privacy.keys: the key of this id is gone."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id


def _decode(raw: bytes) -> DataKeyRecord:
    try:
        return DataKeyRecord.model_validate_json(raw)
    except ValueError as error:
        raise InvalidEvent(f"not a data key record: {error}") from None


class DataKeys:
    def __init__(self, master: SecretBox, service: str, clock: Callable[[], datetime]) -> None:
        self.ring = KeyRing(master)
        self._clock = clock
        self.log: ConfigLog[DataKeyRecord | KeyShredded] = ConfigLog(  # type: ignore[type-var]
            PRIVACY_KEYS, _decode, self._apply, service, tombstone=lambda key: KeyShredded(key.decode())
        )
        #: Issuing is once per person, and rare: one at a time in this replica, so that it issues one key each.
        self._issuing = asyncio.Lock()

    def _apply(self, change: DataKeyRecord | KeyShredded, live: bool) -> bool:
        if isinstance(change, KeyShredded):
            self.ring.shred(change.key_id)
            return True
        try:
            self.ring.apply(change)
        except SecretNotOpened as error:  # another master key's record: its fields stay closed here, said loudly
            reason = {"key_id": change.key_id, "reason": str(error)}
            log.error("a data key this service's master key does not open", extra=reason)
        return True

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        await self.log.follow(consumer)

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

    async def open(self, value: str) -> str:
        """A field as read: its text, or privacy.ERASED. A key not read yet is waited for, up to the log's end."""
        try:
            return self.ring.open(value)
        except KeyNotYetRead:
            await self.log.read_to_end()
            return self.ring.open(value, unknown_is_erased=True)

    async def erase(self, subject: str) -> list[str]:
        """Shred every key of `subject`: a tombstone each, read back. Returns their ids."""
        await self.log.read_to_end()  # a key another replica issued a moment ago is among them
        shredded = self.ring.keys_of(subject)
        for key_id in shredded:
            await self.log.append(None, key_id.encode())
        return shredded
