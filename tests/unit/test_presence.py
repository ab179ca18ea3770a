"""A process's presence port and the watch over the group's other members (runtime/presence.py): a member is removed
from the group only when nothing listens at its presence port nor at its HTTP port. Real sockets; the group is a
fake of aiokafka's admin client, recording the LeaveGroup requests the watch sends."""

import asyncio
import json
from types import SimpleNamespace

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.protocol.group import LeaveGroupRequest_v1

from tests.polling import until
from ticketstream_shared.runtime.presence import PeerWatch, Presence, refused


def test_a_presence_port_answers_while_open_and_is_refused_once_closed():
    async def story():
        presence = Presence()
        assert presence.port is None
        await presence.open("127.0.0.1")
        port = presence.port
        assert port and not await refused("127.0.0.1", port, timeout_s=2)
        presence.close()
        assert await refused("127.0.0.1", port, timeout_s=2)

    asyncio.run(story())


class Group:
    """The consumer group as aiokafka's admin client describes it, and the members removed from it."""

    def __init__(self, members: dict[str, str]) -> None:
        self.members = members  # member id -> the address it advertises
        self.removed: list[str] = []
        self.failures = 1  # the first description fails as no Kafka error does: a client library's own

    async def start(self):
        pass

    async def close(self):
        pass

    async def find_coordinator(self, group_id):
        return 1

    async def describe_consumer_groups(self, group_ids, group_coordinator_id=None):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("unexpected")
        described = [
            {
                "member_id": member,
                "member_metadata": ConsumerProtocolMemberMetadata(0, ["t"], address.encode()).encode(),
            }
            for member, address in self.members.items()
        ]
        return [SimpleNamespace(to_object=lambda: {"groups": [{"members": described}]})]

    async def _send_request(self, request, node_id):
        member = request.build(LeaveGroupRequest_v1).member_id
        self.removed.append(member)
        self.members.pop(member, None)
        return SimpleNamespace(error_code=0)


class Replica:
    """Another member's two ports: its HTTP API (a /healthz naming its presence port) and its presence port, which
    counts the probes it receives."""

    async def start(self) -> None:
        self.probes = 0
        await self.open_presence()
        self.http = await asyncio.start_server(self._healthz, "127.0.0.1", 0)
        self.address = f"http://127.0.0.1:{self.http.sockets[0].getsockname()[1]}"

    async def open_presence(self) -> None:
        self.presence = await asyncio.start_server(self._probed, "127.0.0.1", 0)
        self.port = self.presence.sockets[0].getsockname()[1]

    async def _probed(self, _, writer):
        self.probes += 1
        writer.close()

    async def _healthz(self, reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"status": "alive", "presence_port": self.port}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        writer.close()


def test_a_member_is_removed_once_nothing_listens_at_either_of_its_ports_and_not_before():
    """And an error no one expected (the group's first description fails) ends neither the watch nor the service."""

    async def story():
        stopping, restarted = Replica(), Replica()
        await stopping.start()
        await restarted.start()
        group = Group({"m-stopping": stopping.address, "m-restarted": restarted.address, "m-self": "http://self"})
        watch = PeerWatch("g", lambda: {stopping.address, restarted.address}, lambda: group, interval_s=0.05)
        watching = asyncio.create_task(watch.run())
        try:
            await until(lambda: watch.watched == {stopping.address: stopping.port, restarted.address: restarted.port})
            stopping.http.close()  # a graceful stop: HTTP closes first, the presence port once out of the group
            probed = stopping.probes
            restarted.presence.close()  # a new process at the same address: a new presence port, HTTP answers
            await restarted.open_presence()
            await until(lambda: watch.watched.get(restarted.address) == restarted.port and stopping.probes > probed + 2)
            assert group.removed == []

            restarted.presence.close()  # its process gone: nothing listens at either port
            restarted.http.close()
            await until(lambda: group.removed == ["m-restarted"])
            assert set(group.members) == {"m-stopping", "m-self"}
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            stopping.presence.close()

    asyncio.run(story())
