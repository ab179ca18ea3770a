"""The API keys file is followed while the service runs: keys added or revoked take effect without a restart, and a
broken file never locks everyone out."""

from __future__ import annotations

import os
from pathlib import Path

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import RELOAD_CHECK_S, ApiKeyEntry, ApiKeys, ApiKeysFile, hash_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, version: int, *keys: str) -> None:
    entries = [ApiKeyEntry(name=key, sha256=hash_key(key), role=Role.MANAGER) for key in keys]
    path.write_text(ApiKeysFile(keys=entries).model_dump_json())
    os.utime(path, ns=(version * 10**9, version * 10**9))  # a distinct modification time per version


def test_a_key_added_or_revoked_counts_within_a_second(tmp_path: Path) -> None:
    path, clock = tmp_path / "api-keys.json", Clock()
    write(path, 1, "old-key")
    keys = ApiKeys.load(path, clock)
    write(path, 2, "new-key")
    assert keys.identify("old-key") is not None and keys.identify("new-key") is None  # not looked at yet
    clock.now += RELOAD_CHECK_S
    assert keys.identify("new-key") is not None
    assert keys.identify("old-key") is None


def test_a_broken_file_is_refused_and_the_keys_in_use_stay(tmp_path: Path) -> None:
    path, clock = tmp_path / "api-keys.json", Clock()
    write(path, 1, "key")
    keys = ApiKeys.load(path, clock)
    path.write_text('{"keys": [{"name": "x"')
    os.utime(path, ns=(2 * 10**9, 2 * 10**9))
    clock.now += RELOAD_CHECK_S
    assert keys.identify("key") is not None
    path.unlink()
    clock.now += RELOAD_CHECK_S
    assert keys.identify("key") is not None
    write(path, 3, "repaired")
    clock.now += RELOAD_CHECK_S
    assert keys.identify("repaired") is not None and keys.identify("key") is None
