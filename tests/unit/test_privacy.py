"""Crypto-shredding's key ring (ticketstream_shared/privacy.py), with real AES-GCM: a person's fields open while
their keys live, read "[erased]" once the keys are shredded, and nothing about a key is readable without the
master key."""

import asyncio
import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketstream_shared.privacy import ERASED, SEALED_PREFIX, DataKeyRecord, KeyNotYetRead, KeyRing
from ticketstream_shared.sealing import SecretBox, SecretNotOpened

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MASTER = bytes(range(32))


def a_ring(*keys: bytes) -> KeyRing:
    return KeyRing(SecretBox(list(keys or [MASTER])))


def issued(ring: KeyRing, subject: str) -> DataKeyRecord:
    """A key issued, written to privacy.keys and read back: as the service does."""
    record = DataKeyRecord.model_validate_json(ring.issue(subject, NOW).model_dump_json())
    ring.apply(record)
    return record


@given(st.text(max_size=2_000))
def test_a_sealed_field_opens_to_what_was_sealed(text):
    ring = a_ring()
    key = issued(ring, "alice")
    sealed = ring.seal(text, key.key_id)
    assert sealed.startswith(SEALED_PREFIX) and ring.open(sealed) == text


def test_a_sealed_field_shows_nothing_of_its_text_and_differs_each_time():
    ring = a_ring()
    key = issued(ring, "alice")
    text = "Alice Example, flat 4, 12 Station Road: my laptop was stolen"
    first, second = ring.seal(text, key.key_id), ring.seal(text, key.key_id)
    assert first != second and all(word not in first for word in ("Alice", "Station", "laptop"))


def test_another_process_with_the_master_key_opens_it_and_one_without_does_not():
    writer = a_ring()
    record = issued(writer, "alice")
    sealed = writer.seal("My printer prints blank pages", record.key_id)
    reader = a_ring()
    with pytest.raises(KeyNotYetRead):
        reader.open(sealed)
    reader.apply(record)
    assert reader.open(sealed) == "My printer prints blank pages"
    stranger = a_ring(bytes(32))
    with pytest.raises(SecretNotOpened):
        stranger.apply(record)
    with pytest.raises(SecretNotOpened, match="master key does not open"):
        stranger.open(sealed, unknown_is_erased=True)  # not erased: unreadable here, and said so


def test_the_key_record_holds_no_key_in_plain_text_and_is_bound_to_its_id_and_person():
    ring = a_ring()
    record = ring.issue("alice", NOW)
    as_written = record.model_dump_json()
    secret = base64.b64decode(SecretBox([MASTER]).open(record.wrapped, f"privacy.keys/{record.key_id}/alice"))
    assert len(secret) == 32 and base64.b64encode(secret).decode() not in as_written
    assert "alice" not in record.key_id
    for forged in ({"subject": "mallory"}, {"key_id": "0" * 32}):
        with pytest.raises(SecretNotOpened):
            ring.apply(DataKeyRecord.model_validate({**json.loads(as_written), **forged}))


def test_a_field_moved_under_another_key_or_altered_does_not_open():
    ring = a_ring()
    alice, bob = issued(ring, "alice"), issued(ring, "bob")
    sealed = ring.seal("VPN drops every hour", alice.key_id)
    body = sealed.removeprefix(SEALED_PREFIX + alice.key_id)
    with pytest.raises(SecretNotOpened):
        ring.open(SEALED_PREFIX + bob.key_id + body)
    flipped = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SecretNotOpened):
        ring.open(SEALED_PREFIX + alice.key_id + flipped)


def test_shredding_a_persons_keys_erases_their_fields_and_no_one_elses():
    ring = a_ring()
    first, second, bob = issued(ring, "alice"), issued(ring, "alice"), issued(ring, "bob")
    fields = {
        "alice": [ring.seal("Laptop stolen at the station", first.key_id), ring.seal("Call me at home", second.key_id)],
        "bob": [ring.seal("Replaced the docking station", bob.key_id)],
    }
    assert ring.keys_of("alice") == [first.key_id, second.key_id]
    for key_id in ring.keys_of("alice"):
        ring.shred(key_id)
    assert [ring.open(value) for value in fields["alice"]] == [ERASED, ERASED]
    assert ring.open(fields["bob"][0]) == "Replaced the docking station"
    assert ring.keys_of("alice") == []
    ring.apply(first)  # the key's record read again (a replay from before the tombstone): it stays shredded
    assert ring.open(fields["alice"][0]) == ERASED


def test_a_key_no_one_knows_once_the_keys_are_read_to_the_end_was_erased():
    """A tombstone is compacted away in time: a process started later never reads the shredded key at all."""
    ring = a_ring()
    gone = a_ring()
    sealed = gone.seal("Forgotten", issued(gone, "carol").key_id)
    with pytest.raises(KeyNotYetRead):
        ring.open(sealed)
    assert ring.open(sealed, unknown_is_erased=True) == ERASED


def test_a_value_never_sealed_reads_as_written():
    assert a_ring().open("written before fields were sealed") == "written before fields were sealed"


def test_keys_rotate_a_new_master_key_first_still_opens_what_the_old_one_wrapped():
    old = a_ring(MASTER)
    record = old.issue("alice", NOW)
    rotated = a_ring(bytes(reversed(MASTER)), MASTER)
    rotated.apply(record)
    assert rotated.open(old_sealed := _sealed_by(record)) == "before the rotation", old_sealed


def test_after_a_rotation_the_keys_are_wrapped_again_by_the_new_master_key_and_the_old_one_can_go():
    old = a_ring(MASTER)
    record = old.issue("alice", NOW)
    old.apply(record)
    assert old.rewrapped() == []
    sealed = _sealed_by(record)
    rotated = a_ring(bytes(reversed(MASTER)), MASTER)
    rotated.apply(record)
    [rewrapped] = rotated.rewrapped()
    assert (rewrapped.key_id, rewrapped.subject) == (record.key_id, record.subject)
    assert rewrapped.wrapped != record.wrapped
    rotated.apply(rewrapped)  # written to privacy.keys and read back
    assert rotated.rewrapped() == []
    only_new = a_ring(bytes(reversed(MASTER)))
    only_new.apply(rewrapped)
    assert only_new.open(sealed) == "before the rotation"
    with pytest.raises(SecretNotOpened):
        only_new.apply(record)


def _sealed_by(record: DataKeyRecord) -> str:
    ring = a_ring(MASTER)
    ring.apply(record)
    return ring.seal("before the rotation", record.key_id)


def test_a_field_is_not_called_erased_when_privacy_keys_does_not_answer():
    """DataKeys waits KEY_WAIT_S for a key not read yet; a broker too slow to get there in time leaves the field
    unopened (KeyNotYetRead, a 503 to the caller), never "[erased]"."""
    from ticketstream_shared.runtime.data_keys import DataKeys

    writer = a_ring()
    sealed = writer.seal("My printer prints blank pages", issued(writer, "alice").key_id)
    reader = DataKeys(SecretBox([MASTER]), "test", lambda: NOW)

    async def never(timeout_s: float | None = None) -> bool:
        return False  # the broker did not answer within the timeout

    reader.log.read_to_end = never  # type: ignore[method-assign]
    with pytest.raises(KeyNotYetRead, match="within"):
        asyncio.run(reader.open(sealed))
    with pytest.raises(KeyNotYetRead):
        asyncio.run(reader.erase("alice"))


def test_a_value_sealed_in_layers_opens_while_every_key_lives_and_reads_erased_once_any_is_shredded():
    for shredded in ("alice", "bob", "carol"):
        ring = a_ring()
        keys = {person: issued(ring, person).key_id for person in ("alice", "bob", "carol")}
        sealed = ring.seal_in_layers("Dear Carol, Alice wrote: the VPN is down", list(keys.values()))
        assert "Alice" not in sealed and ring.open(sealed) == "Dear Carol, Alice wrote: the VPN is down"
        assert ring.shred(keys[shredded]) == shredded
        assert ring.open(sealed) == ERASED


def test_layers_cost_their_nonces_and_tags_not_base64_again():
    """A mail quoting a 20,000-character comment, sealed under three people's keys, fits a record as one layer
    does: only the outer layer is base64."""
    ring = a_ring()
    keys = [issued(ring, person).key_id for person in ("alice", "bob", "carol")]
    text = "é" * 20_000
    one, three = ring.seal_in_layers(text, keys[:1]), ring.seal_in_layers(text, keys)
    assert ring.open(three) == text
    assert len(three) - len(one) < 2 * (len("sealed:v1:") + 33 + 28) * 4 / 3 + 4
