"""Failure detection below a consumer group's session timeout.

A group notices a member gone only once its session expires (seconds, so that a busy member is not expelled), and
meanwhile nobody holds its partitions: sla's alarms wait, commands on intake's tickets answer 503, and assignment's
new tickets wait for a technician. A replica that died (kill -9, the OOM killer, a crash) leaves a sign much sooner:
nothing listens on its ports any more, and a connection is refused at once.

Every replica opens a presence port (`Presence`) that it closes only once out of its group (or its process's end
does): a graceful stop, which finishes its batch and then leaves the group itself, keeps it open throughout, while
its HTTP port is already closed. Its /healthz says which port it is. Each replica watches the others the group's
directory names (`PeerWatch`): a presence port refused, and then the HTTP port refused too (so that no new process
answers at that address), means the process is gone, and the watcher removes its member from the group on its
behalf (a LeaveGroup with the member's id, found by the address it advertises), so that the group rebalances at
once. A port that does not answer (a host down, a network split) may hide a live process: that is left to the
session timeout. A replica started again at the address of one that died (a container restarted in its pod) removes
that former process before it joins (`remove_former_self`), rather than wait for its session too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from prometheus_client import Counter

from .directory import ReplicaDirectory, RoundRobinDirectory, advertised_address
from .kafka import make_admin
from .settings import GroupMemberSettings

log = logging.getLogger(__name__)

EVICTED = Counter(
    "ticketstream_group_members_evicted_total", "Members removed from a consumer group because their process is gone"
)
#: How often each peer's presence is probed.
PROBE_INTERVAL_S = 0.25
_UNKNOWN_MEMBER_ID = 25


class Presence:
    """A port held open while the process lives: peers tell a process gone from one merely slow or stopping."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._opening = asyncio.Lock()  # the groups of one process join side by side
        self.port: int | None = None

    async def open(self, host: str) -> None:
        """Open the port; once for the process, however many groups it joins."""
        async with self._opening:
            if self._server is None:
                self._server = await asyncio.start_server(_hang_up, host, 0)
                self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


class PeerWatch:
    """Watches the presence of the group's other members and removes those whose process is gone."""

    def __init__(
        self,
        group_id: str,
        peers: Callable[[], set[str]],
        admin: Callable[[], AIOKafkaAdminClient],
        interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self._group_id = group_id
        self._peers = peers  # the other members' HTTP addresses, as the group's directory has them now
        self._admin_factory = admin
        self._admin: AIOKafkaAdminClient | None = None
        self._interval_s = interval_s
        #: Per peer: its presence port, and its member ids in the group as last described.
        self._ports: dict[str, int] = {}
        self._members: dict[str, set[str]] = {}

    @property
    def watched(self) -> dict[str, int]:
        """The peers whose presence is probed, and at which port."""
        return dict(self._ports)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self._interval_s * 4) as http:
            try:
                while True:
                    peers = self._peers()
                    for gone in set(self._ports) - peers:
                        self._forget(gone)
                    await asyncio.gather(*(self._watched_safely(http, peer) for peer in peers))
                    await asyncio.sleep(self._interval_s)
            finally:
                if self._admin is not None:
                    await self._admin.close()

    async def _watched_safely(self, http: httpx.AsyncClient, peer: str) -> None:
        """Whatever one peer's watch meets (an address that is no URL, an error of a client library) stops neither
        the others' nor the service: the session timeout still removes a member this cannot."""
        try:
            await self._watch(http, peer)
        except Exception:
            log.exception("watching a group member's presence failed", extra={"address": peer})

    def _forget(self, peer: str) -> None:
        self._ports.pop(peer, None)
        self._members.pop(peer, None)

    async def _watch(self, http: httpx.AsyncClient, peer: str) -> None:
        if (port := self._ports.get(peer)) is None:
            await self._meet(http, peer)
            return
        if not await refused(urlsplit(peer).hostname or peer, port, self._interval_s):
            return
        try:  # the HTTP port too: nothing listens at that address, not even a new process
            await http.get(f"{peer}/healthz")
        except httpx.ConnectError:
            await self._evict(peer)  # tried again at the next probe until the group no longer names it
            return
        except httpx.HTTPError:
            return  # no answer in time: not known to be gone
        self._forget(peer)  # an answer: a new process at the same address (a restart), met again next time

    async def _meet(self, http: httpx.AsyncClient, peer: str) -> None:
        """Learn a peer's presence port, and its member id while the group is stable (a group rebalancing describes
        its members without their addresses, and a member that died then must still be found)."""
        try:
            answer = await http.get(f"{peer}/healthz")
            port = answer.json().get("presence_port")
        except (httpx.HTTPError, ValueError, AttributeError):
            return
        if not isinstance(port, int):
            return  # a replica of a version without one: its session decides
        try:
            await self._describe()
        except KafkaError as error:
            log.info("could not describe the group; trying again", extra={"group": self._group_id, "why": str(error)})
            return
        if peer in self._members:
            self._ports[peer] = port

    async def _describe(self) -> tuple[AIOKafkaAdminClient, int, set[str]]:
        """The admin client, the group's coordinator and its members' ids; the ids of every member whose address
        the description carries are remembered."""
        admin = await self._started_admin()
        coordinator = await admin.find_coordinator(self._group_id)
        (described,) = await admin.describe_consumer_groups([self._group_id], group_coordinator_id=coordinator)
        listed = set()
        addresses: dict[str, set[str]] = {}
        for group in described.to_object()["groups"]:
            for member in group["members"]:
                listed.add(member["member_id"])
                if (address := advertised_address(member["member_metadata"])) is not None:
                    addresses.setdefault(address, set()).add(member["member_id"])
        self._members.update(addresses)
        return admin, coordinator, listed

    async def remove_former_self(self, address: str) -> None:
        """Before joining the group: a member advertising this process's own address is a former process at it (killed,
        then started again in the same place, as a container restarted in its pod). It is gone, since this process
        now holds the address; removed, the group need not wait for its session before taking this one in."""
        await self._evict(address)

    async def _evict(self, peer: str) -> None:
        """Remove the members of the group that advertise `peer` (one process, unless it restarted meanwhile)."""
        try:
            admin, coordinator, listed = await self._describe()
            for member_id in self._members.get(peer, set()) & listed:
                # Private to aiokafka's admin client, which has no public LeaveGroup: the request a member sends
                # when it stops, sent on behalf of one that cannot.
                answer = await admin._send_request(LeaveGroupRequest(self._group_id, member_id), coordinator)
                if answer.error_code == _UNKNOWN_MEMBER_ID:
                    continue  # gone already
                if answer.error_code:
                    raise KafkaError(f"LeaveGroup refused with error {answer.error_code}")
                EVICTED.inc()
                log.warning(
                    "a group member's process is gone: removed from the group without waiting for its session",
                    extra={"group": self._group_id, "member": member_id, "address": peer},
                )
        except KafkaError as error:  # tried again at the next probe; the session timeout removes it meanwhile
            log.warning("could not remove a gone member from the group", extra={"address": peer, "why": str(error)})

    async def _started_admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = self._admin_factory()
            await admin.start()
            self._admin = admin
        return self._admin


@dataclass(frozen=True)
class Membership:
    """A replica's part in one group whose members watch each other: the process's presence port (one for all its
    groups), the group's directory of addresses (its consumer's assignor), and the settings of a group member."""

    presence: Presence
    directory: ReplicaDirectory
    settings: GroupMemberSettings

    @classmethod
    def of(
        cls, presence: Presence, settings: GroupMemberSettings, directory: type[ReplicaDirectory] = RoundRobinDirectory
    ) -> Membership:
        """A group the process joins, advertising its own URL (under aiokafka's round robin unless `directory` says
        otherwise)."""
        return cls(presence, directory(settings.own_url), settings)

    def consumer_options(self) -> dict[str, Any]:
        """What the group's consumer is made with: the directory as its only assignor, the session and heartbeat.
        (One assignor only: aiokafka 0.14 sends one JoinGroup per assignor, each with a longer list of protocols, and
        the broker takes each later one as changed metadata and rebalances again: two members doing so kept a group
        rebalancing for minutes, aio-libs/aiokafka#1168.)"""
        return {"partition_assignment_strategy": (self.directory,), **self.settings.group_timing()}

    async def before_joining(self, group_id: str, client_id: str) -> PeerWatch | None:
        """What a replica does before it joins `group_id`: it opens its presence port (its peers watch it from then
        on) and, unless probing is off (PEER_PROBE_SECONDS=0), removes a former process at its own address and
        returns the watch of the others, for the caller to run beside its consumer."""
        await self.presence.open(self.settings.http_host)
        if not self.settings.peer_probe_seconds:
            return None
        settings = self.settings
        watch = PeerWatch(
            group_id, self.directory.others, lambda: make_admin(settings, client_id), settings.peer_probe_seconds
        )
        await watch.remove_former_self(self.directory.address)
        return watch


async def refused(host: str, port: int, timeout_s: float) -> bool:
    """Whether a connection to (host, port) is refused: nothing listens there. Not answering in time is not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False
