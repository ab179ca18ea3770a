"""Which replica holds which partition, learnt from the consumer group itself, so that a replica asked about a
ticket it does not hold can pass the question to the one that does.

The group's assignor carries it: every member puts its HTTP address in its subscription (the protocol's user
data), and the leader, after assigning partitions as aiokafka's round-robin (or range) assignor does, hands every
member the whole map of partition -> address along with its own partitions. No registry, no extra topic: the map
changes exactly when the assignment does. It is the group's only assignor (see the sla composition root for why).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata


class ReplicaDirectory(AbstractPartitionAssignor):
    """An assignor (round robin, or as `plain` assigns) that also tells every member the address of each partition's
    holder."""

    name = "roundrobin-with-addresses"
    version = 0
    #: Who gets which partitions: the directory only adds the addresses.
    plain: type[AbstractPartitionAssignor] = RoundRobinPartitionAssignor

    def __init__(self, address: str) -> None:
        self.address = address
        #: Partition number -> the holder's HTTP address, as of the last assignment.
        self.holders: dict[int, str] = {}

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, list(topics), self.address.encode())

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        plain = self.plain.assign(cluster, members)
        holders = {
            partition: address
            for member, assignment in plain.items()
            if (address := _address(members[member]))  # none: a replica of a version before the directory
            for _topic, partitions in assignment.assignment
            for partition in partitions
        }
        directory = json.dumps(holders).encode()
        return {
            member: ConsumerProtocolMemberAssignment(assignment.version, assignment.assignment, directory)
            for member, assignment in plain.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        held = json.loads(assignment.user_data) if assignment.user_data else {}  # none: a leader of RoundRobin's own
        self.holders = {int(partition): address for partition, address in held.items()}

    def holds_here(self, partition: int) -> bool:
        return self.holders.get(partition) == self.address

    def others(self) -> set[str]:
        """The addresses of the other replicas holding partitions, as of the last assignment."""
        return set(self.holders.values()) - {self.address}

    def holder(self, partition: int) -> str | None:
        """The address of the replica holding `partition`, if it is another one."""
        address = self.holders.get(partition)
        return None if address == self.address else address


class RoundRobinDirectory(ReplicaDirectory):
    """The directory under the protocol of aiokafka's default assignor, for a group that has been using that one
    (intake's owners): both assign alike, so replicas of a version before the directory and of one with it share the
    group through a rolling upgrade. While an older replica leads the group, the directory is empty: nobody's
    presence is watched until a newer one leads."""

    name = RoundRobinPartitionAssignor.name


class RangeDirectory(ReplicaDirectory):
    """The directory under the protocol of aiokafka's range assignor, for a co-partitioned group (partition n of
    every topic to one member: notify's fan-out), which replicas of a version before it share as above."""

    name = RangePartitionAssignor.name
    plain = RangePartitionAssignor


def advertised_address(member_metadata: bytes) -> str | None:
    """The address a member advertises in its subscription as the broker describes it (DescribeGroups), if any."""
    try:
        return _address(ConsumerProtocolMemberMetadata.decode(member_metadata))
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
        return None


def _address(metadata: ConsumerProtocolMemberMetadata) -> str:
    return metadata.user_data.decode()
