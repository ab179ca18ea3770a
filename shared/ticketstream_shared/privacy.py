"""People's personal data in logs kept forever, made forgettable: crypto-shredding.

Each person (a data subject: a requester, a technician) has data keys of their own. A personal field is sealed with
AES-GCM under one of its person's keys before it reaches any topic or store, and opened only in memory. The keys
live in privacy.keys, one record per key, each wrapped (sealed) by the operator's master key (sealing.SecretBox, or
a key management service in its place). Erasing a person writes a tombstone over each of their keys: once
compaction has removed the records, and each process its copy in memory, nothing anywhere opens their fields again,
while every other field of every event (ids, times, minutes, statuses) stays as it was.

A sealed field is 'sealed:v1:<key id>:<base64(nonce + ciphertext)>'. The key id is random: it names no one. The key
id is bound in as associated data, so a sealed field does not open under another key.

Pure: what reads and writes privacy.keys is the service's (runtime/config_log.py).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field

from .contract.events import Identifier, UtcDatetime
from .contract.personal import SEALED_PREFIX, is_sealed
from .sealing import NONCE_BYTES, SecretBox, SecretNotOpened

#: What a field of an erased person reads as, everywhere.
ERASED = "[erased]"
_KEY_BYTES = 32
_KEY_ID_CHARS = 32
_SEALED_BYTES = SEALED_PREFIX.encode()


class DataKeyRecord(BaseModel):
    """A record of privacy.keys (key = the key id): one data key of one person, wrapped by the master key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    subject: Identifier = Field(description="The person whose fields this key seals.")
    wrapped: str = Field(min_length=1, description="The data key, sealed by the master key (never in plain text).")
    created_at: UtcDatetime


class KeyNotYetRead(LookupError):
    """A field sealed under a key this process has not read yet: privacy.keys is behind; read on, then retry."""


class KeyRing:
    """The data keys this process has read from privacy.keys, opened in memory, by person."""

    def __init__(self, master: SecretBox) -> None:
        self._master = master
        self._keys: dict[str, AESGCM] = {}
        self._subject_of: dict[str, str] = {}
        self._by_subject: dict[str, list[str]] = {}
        self._erased: set[str] = set()
        #: Keys read whose wrapping the master key does not open (another deployment's, or a lost master key).
        self._unopened: set[str] = set()
        #: Keys wrapped by an older master key than the current one (rotation): their records, with the data key.
        self._stale: dict[str, tuple[DataKeyRecord, str]] = {}

    def issue(self, subject: str, now: datetime) -> DataKeyRecord:
        """A new data key for `subject`, wrapped, to be written to privacy.keys (and read back into the ring)."""
        key_id = uuid.uuid4().hex
        secret = base64.b64encode(AESGCM.generate_key(bit_length=8 * _KEY_BYTES)).decode()
        wrapped = self._master.seal(secret, _binding(key_id, subject))
        return DataKeyRecord(key_id=key_id, subject=subject, wrapped=wrapped, created_at=now)

    def apply(self, record: DataKeyRecord) -> None:
        """A key read from privacy.keys. Raises sealing.SecretNotOpened if the master key does not open it: the
        fields it sealed then say so when opened, rather than read as erased."""
        if record.key_id in self._erased:
            return
        try:
            secret = base64.b64decode(self._master.open(record.wrapped, _binding(record.key_id, record.subject)))
        except SecretNotOpened:
            self._unopened.add(record.key_id)
            raise
        if record.key_id not in self._keys:
            self._by_subject.setdefault(record.subject, []).append(record.key_id)
        self._keys[record.key_id] = AESGCM(secret)
        self._subject_of[record.key_id] = record.subject
        if self._master.sealed_by_current_key(record.wrapped):
            self._stale.pop(record.key_id, None)
        else:
            self._stale[record.key_id] = (record, base64.b64encode(secret).decode())

    def rewrapped(self) -> list[DataKeyRecord]:
        """The keys wrapped by an older master key, wrapped by the current one: to be written to privacy.keys over
        their records (the same ids), after which the older master key may be dropped."""
        return [
            record.model_copy(update={"wrapped": self._master.seal(secret, _binding(record.key_id, record.subject))})
            for record, secret in self._stale.values()
        ]

    def shred(self, key_id: str) -> str | None:
        """A key's tombstone read from privacy.keys: what it sealed opens no more. Returns whose key it was, if this
        ring held it."""
        self._keys.pop(key_id, None)
        self._stale.pop(key_id, None)
        if (subject := self._subject_of.pop(key_id, None)) is not None:
            held = self._by_subject[subject]
            held.remove(key_id)
            if not held:
                del self._by_subject[subject]
        self._erased.add(key_id)
        return subject

    def holds(self, key_id: str) -> bool:
        return key_id in self._keys

    def keys_of(self, subject: str) -> list[str]:
        """The ids of `subject`'s keys this ring holds, oldest first."""
        return list(self._by_subject.get(subject, ()))

    def seal(self, text: str, key_id: str) -> str:
        return self.seal_in_layers(text, [key_id])

    def seal_in_layers(self, text: str, key_ids: list[str]) -> str:
        """`text` sealed under each key in turn, the last one outermost: it opens only while every one of them is
        held (a mail quoting several people's words). An inner layer is the outer's plain bytes, 'sealed:v1:<key
        id>:' and its ciphertext unencoded, so that only the outer layer pays base64's third."""
        body = text.encode()
        for key_id in key_ids[:-1]:
            body = f"{SEALED_PREFIX}{key_id}:".encode() + self._encrypt(body, key_id)
        return f"{SEALED_PREFIX}{key_ids[-1]}:{base64.b64encode(self._encrypt(body, key_ids[-1])).decode()}"

    def _encrypt(self, body: bytes, key_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._keys[key_id].encrypt(nonce, body, key_id.encode())

    def open(self, value: str, unknown_is_erased: bool = False) -> str:
        """A field as read: its text, ERASED if its person was erased, or the value itself if it was never sealed
        (written before sealing, or not personal). A key this ring does not know raises KeyNotYetRead: the caller
        reads privacy.keys to its end and asks again with `unknown_is_erased` (a tombstone is itself compacted
        away in time, so a key known to no one by then was erased). A sealed value that is not what its key
        sealed (tampered with) raises sealing.SecretNotOpened. A value sealed in layers opens layer by layer, and
        reads ERASED if any of its keys was shredded (no plain text begins with the sealed prefix:
        contract/personal.py)."""
        if not is_sealed(value):
            return value
        key_id, _, body = value[len(SEALED_PREFIX) :].partition(":")
        try:
            sealed = base64.b64decode(body, validate=True)
        except ValueError:
            raise SecretNotOpened(f"a field sealed under key {key_id} does not open (tampered with)") from None
        while True:
            opened = self._decrypt(sealed, key_id, unknown_is_erased)
            if opened is None:
                return ERASED
            if not opened.startswith(_SEALED_BYTES):
                return opened.decode()
            key_id = opened[len(_SEALED_BYTES) : len(_SEALED_BYTES) + _KEY_ID_CHARS].decode()
            sealed = opened[len(_SEALED_BYTES) + _KEY_ID_CHARS + 1 :]

    def _decrypt(self, sealed: bytes, key_id: str, unknown_is_erased: bool) -> bytes | None:
        """The plain bytes; None if the key was shredded."""
        aead = self._keys.get(key_id)
        if aead is None:
            if key_id in self._unopened:
                raise SecretNotOpened(f"sealed under key {key_id}, whose record the master key does not open")
            if key_id in self._erased or unknown_is_erased:
                return None
            raise KeyNotYetRead(f"sealed under key {key_id}, not read from privacy.keys yet")
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], key_id.encode())
        except (InvalidTag, ValueError):
            raise SecretNotOpened(f"a field sealed under key {key_id} does not open (tampered with)") from None


def sealed_key_id(value: str) -> str:
    """The id of the key a sealed value was sealed with (its outer layer's)."""
    return value[len(SEALED_PREFIX) :].partition(":")[0]


def _binding(key_id: str, subject: str) -> str:
    """What a wrapped key is bound to: a wrapped key copied onto another id or person does not open."""
    return f"privacy.keys/{key_id}/{subject}"


#: Opens a field as read (KeyRing.open), for the places that show personal data.
Opener = Callable[[str], str]
