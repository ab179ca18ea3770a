"""Secrets at rest (webhook secrets, people's data keys): sealed under the operator's key, bound to what they belong
to, opened only by a key that sealed them, and a key file that rotates (the newest key seals, older ones still
open)."""

from __future__ import annotations

import base64
import hashlib
import stat

import pytest

from ticketstream_shared.sealing import NONCE_BYTES, SecretBox, SecretNotOpened, write_key

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 132))
SECRET = "whsec-hunter2-correct-horse-battery-staple"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def with_body(sealed: str, body: str) -> str:
    version, kid, _ = sealed.split(".", 2)
    return f"{version}.{kid}.{body}"


def test_a_sealed_secret_opens_to_itself():
    box = SecretBox([OLD_KEY])

    sealed = box.seal(SECRET, "wh-1")

    assert sealed.startswith(f"v1.{key_id(OLD_KEY)}.")
    assert box.open(sealed, "wh-1") == SECRET


def test_an_empty_and_a_non_ascii_secret_round_trip():
    box = SecretBox([OLD_KEY])

    assert box.open(box.seal("", "wh-1"), "wh-1") == ""
    assert box.open(box.seal("clé secrète ✓", "wh-1"), "wh-1") == "clé secrète ✓"


def test_the_sealed_text_never_contains_the_secret():
    box = SecretBox([OLD_KEY])

    first, second = box.seal(SECRET, "wh-1"), box.seal(SECRET, "wh-1")

    for sealed in (first, second):
        assert SECRET not in sealed
        assert SECRET.encode() not in base64.b64decode(sealed.split(".", 2)[2])
    assert first != second  # a fresh nonce each time: equal secrets do not show as equal


def test_a_sealed_secret_is_bound_to_its_webhook():
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")

    with pytest.raises(SecretNotOpened):
        box.open(sealed, "wh-2")


@pytest.mark.parametrize("position", [0, NONCE_BYTES - 1, NONCE_BYTES, NONCE_BYTES + 3, -1], ids=str)
def test_a_sealed_secret_with_one_byte_changed_does_not_open(position: int):
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")
    raw = bytearray(base64.b64decode(sealed.split(".", 2)[2]))
    raw[position] ^= 0x01

    with pytest.raises(SecretNotOpened):
        box.open(with_body(sealed, base64.b64encode(bytes(raw)).decode()), "wh-1")


@pytest.mark.parametrize("replacement", ["A", "!", "."], ids=["base64-character", "bang", "dot"])
def test_a_sealed_text_with_one_character_changed_does_not_open(replacement: str):
    """Whatever the byte put in, the caller (who catches SecretNotOpened) hears that it does not open."""
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")
    body = sealed.split(".", 2)[2]
    middle = len(body) // 2
    if body[middle] == replacement:
        middle += 1
    tampered = with_body(sealed, body[:middle] + replacement + body[middle + 1 :])

    with pytest.raises(SecretNotOpened):
        box.open(tampered, "wh-1")


@pytest.mark.parametrize("cut", [1, 5, 40], ids=str)
def test_a_truncated_sealed_text_does_not_open(cut: int):
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")

    with pytest.raises(SecretNotOpened):
        box.open(sealed[:-cut], "wh-1")


def test_a_sealed_text_without_its_body_does_not_open():
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")

    with pytest.raises(SecretNotOpened):
        box.open(with_body(sealed, ""), "wh-1")


def test_an_unknown_version_does_not_open():
    box = SecretBox([OLD_KEY])
    sealed = box.seal(SECRET, "wh-1")

    with pytest.raises(SecretNotOpened):
        box.open("v2" + sealed.removeprefix("v1"), "wh-1")


def test_after_a_rotation_the_old_key_still_opens_and_the_new_one_seals():
    old_box = SecretBox([OLD_KEY])
    rotated = SecretBox([NEW_KEY, OLD_KEY])
    sealed_before = old_box.seal(SECRET, "wh-1")

    sealed_after = rotated.seal(SECRET, "wh-1")

    assert rotated.open(sealed_before, "wh-1") == SECRET
    assert rotated.open(sealed_after, "wh-1") == SECRET
    assert rotated.sealed_by_current_key(sealed_before) is False
    assert rotated.sealed_by_current_key(sealed_after) is True
    assert sealed_after.split(".")[1] == key_id(NEW_KEY)
    assert old_box.sealed_by_current_key(sealed_before) is True


def test_a_box_without_the_sealing_key_names_the_key_it_lacks():
    sealed = SecretBox([OLD_KEY]).seal(SECRET, "wh-1")

    with pytest.raises(SecretNotOpened, match=key_id(OLD_KEY)):
        SecretBox([NEW_KEY]).open(sealed, "wh-1")


def test_sealed_by_current_key_is_false_for_garbage():
    box = SecretBox([OLD_KEY])

    assert box.sealed_by_current_key("") is False
    assert box.sealed_by_current_key("not sealed at all") is False


@pytest.mark.parametrize(
    "keys",
    [[], [b""], [bytes(16)], [bytes(31)], [bytes(33)], [bytes(64)], [NEW_KEY, bytes(16)]],
    ids=["none", "empty", "16", "31", "33", "64", "good-then-short"],
)
def test_keys_of_the_wrong_length_are_refused(keys: list[bytes]):
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(keys)


def test_the_key_file_holds_several_base64_keys_the_first_sealing(tmp_path):
    path = tmp_path / "notify.key"
    path.write_text(
        f"\n  {base64.b64encode(NEW_KEY).decode()}  \n\n{base64.b64encode(OLD_KEY).decode()}\n\n",
    )
    sealed_by_old = SecretBox([OLD_KEY]).seal(SECRET, "wh-1")

    box = SecretBox.from_file(path)

    assert box.open(sealed_by_old, "wh-1") == SECRET
    sealed = box.seal(SECRET, "wh-1")
    assert sealed.split(".")[1] == key_id(NEW_KEY)
    assert SecretBox([NEW_KEY]).open(sealed, "wh-1") == SECRET


@pytest.mark.parametrize(
    "content",
    [
        "this is not base64!\n",
        base64.b64encode(bytes(16)).decode() + "\n",
        base64.b64encode(NEW_KEY).decode() + "\nnot-a-key\n",
        "",
        "\n\n",
    ],
    ids=["garbage", "short-key", "good-then-garbage", "empty", "blank-lines"],
)
def test_a_key_file_of_garbage_is_refused_naming_the_file(tmp_path, content: str):
    path = tmp_path / "broken.key"
    path.write_text(content)

    with pytest.raises(ValueError) as refused:
        SecretBox.from_file(path)

    assert str(path) in str(refused.value)


def test_write_key_writes_a_private_key_file_once(tmp_path):
    path = tmp_path / "secrets" / "notify.key"

    assert write_key(path) == path

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = path.read_text()
    assert len(base64.b64decode(written.strip(), validate=True)) == 32
    box = SecretBox.from_file(path)
    assert box.open(box.seal(SECRET, "wh-1"), "wh-1") == SECRET

    assert write_key(path) == path
    assert path.read_text() == written


def test_write_key_keeps_an_existing_file(tmp_path):
    path = tmp_path / "notify.key"
    existing = base64.b64encode(OLD_KEY).decode() + "\n"
    path.write_text(existing)

    write_key(path)

    assert path.read_text() == existing
    assert SecretBox.from_file(path).sealed_by_current_key(SecretBox([OLD_KEY]).seal(SECRET, "wh-1"))


def test_two_written_keys_differ(tmp_path):
    first = write_key(tmp_path / "a.key").read_text()
    second = write_key(tmp_path / "b.key").read_text()

    assert first != second
