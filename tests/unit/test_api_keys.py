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


def test_a_key_may_name_its_person_and_acts_as_them() -> None:
    ann = ApiKeyEntry(name="ann-laptop", sha256=hash_key("a"), role=Role.TECHNICIAN, subject="ann")
    alice = ApiKeyEntry(name="alice", sha256=hash_key("b"), role=Role.REQUESTER, client_id="acme", requester_id="alice")
    desk = ApiKeyEntry(name="desk", sha256=hash_key("c"), role=Role.TECHNICIAN)
    keys = ApiKeys([ann, alice, desk])
    assert keys.identify("a").actor.model_dump() == {  # type: ignore[union-attr]
        "key_name": "ann-laptop", "role": Role.TECHNICIAN, "subject": "ann", "on_behalf_of": None
    }  # fmt: skip
    assert keys.identify("b").subject == "alice"  # type: ignore[union-attr]  # a requester's key is theirs
    assert keys.identify("c").subject is None  # type: ignore[union-attr]  # a shared key names nobody
    try:
        ApiKeyEntry(name="x", sha256=hash_key("d"), role=Role.REQUESTER, requester_id="alice", subject="bob")
    except ValueError as refused:
        assert "belongs to its requester_id" in str(refused)
    else:
        raise AssertionError("a requester's key named someone else")
