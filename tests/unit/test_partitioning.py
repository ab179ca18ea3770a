"""Where a keyed record goes: Kafka's murmur2, as the Java client computes it, so that every service and every other
system agree on a ticket's partition."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from ticketstream_shared.runtime.kafka import keyed_partition, murmur2, partition_of

# The Java client's own test vectors (org.apache.kafka.common.utils.UtilsTest.testMurmur2), as signed 32-bit ints.
JAVA_CLIENT = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_is_the_java_clients() -> None:
    assert {key: murmur2(key) for key in JAVA_CLIENT} == {key: value & 0xFFFFFFFF for key, value in JAVA_CLIENT.items()}


@given(st.binary(max_size=300))
def test_murmur2_agrees_with_aiokafkas_for_any_key(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=64))
def test_a_keyed_record_goes_where_the_default_partitioner_sends_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert keyed_partition(key, partitions, partitions[::2]) == DefaultPartitioner()(key, partitions, partitions[::2])


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {keyed_partition(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {keyed_partition(None, [0, 1], []) for _ in range(50)} == {0, 1}


def test_a_tickets_partition_follows_its_id() -> None:
    assert partition_of("T-1", 12) == DefaultPartitioner()(b"T-1", list(range(12)), [])
