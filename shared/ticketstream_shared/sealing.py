"""Secrets at rest, sealed with AES-GCM under an operator's key from a file: notify's webhook secrets, and the data
keys of people's personal data (privacy.py). Opened only in memory.

A sealed secret is 'v1.<key id>.<base64(nonce + ciphertext)>'; the key id (the first bytes of the key's SHA-256)
says which key opens it, so a key can be rotated: the new key first in the file seals, older keys after it still
open what they sealed until all of it has been sealed again. What a secret belongs to (a webhook id, a data key's
id and person) is bound in as associated data, so a sealed secret copied onto another does not open.

A key management service would stand in the same place: anything with `seal` and `open` of this shape.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


class SecretNotOpened(Exception):
    """A sealed secret that none of the keys opens (the key was lost or it was tampered with)."""


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys or any(len(key) != 32 for key in keys):
            raise ValueError("each sealing key must be 32 bytes (base64 in the key file)")
        self._sealing = keys[0]
        self._by_id = {_key_id(key): AESGCM(key) for key in keys}

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        try:
            return cls([base64.b64decode(line, validate=True) for line in lines])
        except ValueError as error:
            raise ValueError(f"{path}: not base64 keys of 32 bytes ({error})") from None

    def seal(self, secret: str, bound_to: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._sealing).encrypt(nonce, secret.encode(), bound_to.encode())
        return f"v1.{_key_id(self._sealing)}.{base64.b64encode(nonce + sealed).decode()}"

    def sealed_by_current_key(self, sealed: str) -> bool:
        return sealed.split(".", 2)[1:2] == [_key_id(self._sealing)]

    def open(self, sealed: str, bound_to: str) -> str:
        version, key_id, body = (sealed.split(".", 2) + ["", ""])[:3]
        aead = self._by_id.get(key_id)
        if version != "v1" or aead is None:
            raise SecretNotOpened(f"sealed under key {key_id!r}, which this service does not have")
        try:
            raw = base64.b64decode(body, validate=True)
            if len(raw) < NONCE_BYTES + TAG_BYTES:
                raise ValueError("shorter than a nonce and a tag")
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode()).decode()
        except (InvalidTag, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise SecretNotOpened("the sealed secret does not open (tampered with, or sealed for another)") from None


def write_key(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        path.chmod(0o600)
    return path
