"""The group's directory of addresses (runtime/directory.py), as the assignor of a group's leader computes it and
each member reads it."""

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from ticketstream_shared.runtime.directory import (
    RangeDirectory,
    ReplicaDirectory,
    RoundRobinDirectory,
    advertised_address,
)

TOPIC = "intake.commands"
#: Topics of as many partitions each, read by a co-partitioned group (notify's fan-out).
CO_PARTITIONED = ("tickets.events", "sla.events")


class Cluster:
    """What an assignor asks of the cluster's metadata: a topic's partitions."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(4)) if topic in (TOPIC, *CO_PARTITIONED) else set()


def test_a_leader_hands_every_member_the_address_of_each_partitions_holder() -> None:
    here, there = RoundRobinDirectory("http://here:8001"), RoundRobinDirectory("http://there:8001")
    members = {"m-here": here.metadata([TOPIC]), "m-there": there.metadata([TOPIC])}
    assignments = here.assign(Cluster(), members)  # type: ignore[arg-type]
    for member, directory in (("m-here", here), ("m-there", there)):
        directory.on_assignment(assignments[member])
    assert here.holders == there.holders
    assert sorted(here.holders) == [0, 1, 2, 3]
    assert set(here.holders.values()) == {"http://here:8001", "http://there:8001"}
    assert here.others() == {"http://there:8001"} and there.others() == {"http://here:8001"}
    assert advertised_address(members["m-there"].encode()) == "http://there:8001"


def test_a_group_that_used_the_default_assignor_keeps_its_protocol_and_an_older_leader_leaves_the_directory_empty() -> (
    None
):
    """A rolling upgrade of intake: the group's protocol is still aiokafka's default, so replicas with and without
    the directory join one group; while a replica without it leads, its assignment carries no addresses, and a newer
    member takes the same partitions with nobody to watch."""
    assert RoundRobinDirectory.name == RoundRobinPartitionAssignor.name
    assert ReplicaDirectory.name != RoundRobinPartitionAssignor.name  # sla's group keeps the protocol it has
    newer = RoundRobinDirectory("http://newer:8001")
    newer.holders = {0: "http://gone:8001"}
    older_metadata = ConsumerProtocolMemberMetadata(0, [TOPIC], b"")
    assignments = RoundRobinPartitionAssignor.assign(
        Cluster(),  # type: ignore[arg-type]
        {"m-newer": newer.metadata([TOPIC]), "m-older": older_metadata},
    )
    newer.on_assignment(assignments["m-newer"])
    assert newer.holders == {} and newer.others() == set()
    assert [tp.partition for tp in assignments["m-newer"].partitions()] == [0, 2]


def test_a_newer_leader_names_no_address_for_the_partitions_of_a_member_that_advertises_none() -> None:
    """Its partitions have no holder in the directory, so nobody watches it (its presence could not be probed)."""
    newer = RoundRobinDirectory("http://newer:8001")
    older_metadata = ConsumerProtocolMemberMetadata(0, [TOPIC], b"")
    assignments = newer.assign(Cluster(), {"m-newer": newer.metadata([TOPIC]), "m-older": older_metadata})  # type: ignore[arg-type]
    newer.on_assignment(assignments["m-newer"])
    assert newer.holders == {0: "http://newer:8001", 2: "http://newer:8001"}
    assert newer.others() == set()


def test_a_co_partitioned_groups_directory_gives_partition_n_of_every_topic_to_one_member() -> None:
    """Assigned as aiokafka's range assignor does, under its protocol (replicas of the version before share the
    group), with every member told each partition's holder."""
    assert RangeDirectory.name == RangePartitionAssignor.name
    here, there = RangeDirectory("http://here:8005"), RangeDirectory("http://there:8005")
    members = {"m-here": here.metadata(CO_PARTITIONED), "m-there": there.metadata(CO_PARTITIONED)}
    assignments = here.assign(Cluster(), members)  # type: ignore[arg-type]
    plain = RangePartitionAssignor.assign(Cluster(), members)  # type: ignore[arg-type]
    for member, directory in (("m-here", here), ("m-there", there)):
        directory.on_assignment(assignments[member])
        assert assignments[member].assignment == plain[member].assignment
        held = {topic: set(partitions) for topic, partitions in assignments[member].assignment}
        assert held[CO_PARTITIONED[0]] == held[CO_PARTITIONED[1]]
    assert here.holders == there.holders
    assert set(here.holders.values()) == {"http://here:8005", "http://there:8005"}
    assert here.others() == {"http://there:8005"}
