"""Deterministic event ids: uuid5 under a namespace, so a decision or a routed record gets the same id in every
process and on every retry (consumers deduplicate on it)."""

from __future__ import annotations

import hashlib
import uuid


class IdSpace:
    """`uuid.uuid5(namespace, name)`, with the namespace hashed once: several ids are made for every decision, and
    the standard function (which re-hashes the namespace and re-checks its arguments) cost ~10% of a worker's CPU."""

    def __init__(self, namespace: uuid.UUID) -> None:
        self.namespace = namespace
        self._hashed = hashlib.sha1(namespace.bytes, usedforsecurity=False)

    def __call__(self, name: str) -> uuid.UUID:
        digest = self._hashed.copy()
        digest.update(name.encode())
        return uuid.UUID(bytes=digest.digest()[:16], version=5)
