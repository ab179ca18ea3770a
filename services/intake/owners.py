"""Which intake replica decides for which ticket, and how a command reaches it.

The consumer group `intake-owners` on intake.commands hands each replica some partitions; a replica owns the
tickets whose partition of tickets.events has the same number (same key, same partitioner, same partition count).
Only the owner decides a ticket's commands, so versions stay contiguous however many replicas run:

- A command for an owned ticket is decided at once, in process (the fast path; with one replica, every path).
- Any other command is sent to intake.commands, keyed by ticket; the owner decides it and answers on
  intake.replies with the version it reached (or the refusal); the sender waits until its own copy of the log
  holds that version, then answers its caller from it.
- Hand-over: a replica losing a partition stops deciding for it and waits for decisions in flight to be
  appended; one gaining a partition decides only after it has read tickets.events up to the end that partition
  had at assignment. A command the old owner carried out but had not committed comes to the new owner again,
  which derives the same event ids from it and recognises it as done (domain.decide), so it answers, not repeats.

A command carrying someone's words (a title, a comment, a note) travels sealed under that person's data key, as
its events will be (privacy.py); the owner opens it.

Whatever cannot be read on intake.commands or intake.replies (not JSON, the wrong shape, oversized) goes to the
topic's DLQ with the reason, and the replica goes on; a caller whose answer was unreadable gets a 503 and retries.

A zombie, an owner paused past its session timeout that wakes and appends before noticing the rebalance, is not
fenced off the log (Kafka transactions with one transactional id per partition would be). Should it append at a
version the new owner wrote first (or the other way round), intake keeps the log's first and says so
(`ticketstream_intake_versions_contested_total`, and an error naming the ticket and both events), and the caller
of the other is not told it was made: a replica acknowledges at once only what no other writer's event can have
preceded (log.KafkaTicketLog), and reads anything else back first, answering NotReady (retry) if it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.contract.codec import describe_validation_error, parse_message
from ticketstream_shared.contract.personal import SEALED_PREFIX
from ticketstream_shared.contract.topics import INTAKE_COMMANDS, INTAKE_REPLIES, TICKETS_EVENTS
from ticketstream_shared.privacy import ERASED, KeyNotYetRead
from ticketstream_shared.runtime.changelog import ChangelogWriter
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.runtime.kafka import commit_unless_rebalanced, dead_letter, header, partition_of
from ticketstream_shared.runtime.logging import correlated

from . import domain
from .domain import REFUSALS, Command, CommandContext, DomainError, IdempotencyKeyReused, InvalidCommand, NotReady
from .ledger import TicketLedger
from .log import LogPositions

log = logging.getLogger(__name__)

#: How long a caller waits for the owner of its ticket before it is told to retry (503).
FORWARD_TIMEOUT_S = 10.0

#: Draws of a new ticket's id before giving up on one of this replica's own partitions ((5/6)^32 < 0.3%).
MAX_DRAWS = 32
COMMANDS = Counter("ticketstream_intake_commands_total", "Commands by where they were decided", ["path"])

_COMMANDS: dict[str, type] = {kind.__name__: kind for kind in Command.__args__}
_REFUSALS: dict[str, type[DomainError]] = {kind.__name__: kind for kind in REFUSALS}
_CONTEXT = TypeAdapter(CommandContext)
_CALL_FIELDS = {"kind", "command", "context"}


class _Decided(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str
    version: int = Field(ge=1)
    replayed: bool


class _Refused(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str
    refused: Literal[tuple(_REFUSALS)]  # type: ignore[valid-type]
    message: str
    field: str | None = None
    differs: list[str] | None = None


_REPLY: TypeAdapter[_Decided | _Refused] = TypeAdapter(_Decided | _Refused)


def encode_call(command: Command, context: CommandContext) -> bytes:
    return json.dumps(
        {
            "kind": type(command).__name__,
            "command": TypeAdapter(type(command)).dump_python(command, mode="json"),
            "context": _CONTEXT.dump_python(context, mode="json"),
        }
    ).encode()


def decode_call(raw: bytes) -> tuple[Command, CommandContext]:
    """The command and its context; InvalidEvent (so, the DLQ) with the reason otherwise."""
    call = parse_message(raw)
    if unexpected := set(call) ^ _CALL_FIELDS:
        raise InvalidEvent(f"a call has exactly the fields {sorted(_CALL_FIELDS)}, not {sorted(unexpected)}")
    kind = _COMMANDS.get(call["kind"])
    if kind is None:
        raise InvalidEvent(f"kind: unknown command {call['kind']!r}")
    try:
        return TypeAdapter(kind).validate_python(call["command"]), _CONTEXT.validate_python(call["context"])
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


def decode_reply(raw: bytes) -> dict[str, Any]:
    """An owner's answer, checked; InvalidEvent (so, the DLQ) with the reason otherwise."""
    reply = parse_message(raw)
    try:
        _REPLY.validate_python(reply)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None
    return reply


def refusal_reply(refusal: DomainError) -> dict[str, Any]:
    """How an owner tells the sender that (and why) it refused a command."""
    reply: dict[str, Any] = {"refused": type(refusal).__name__, "message": str(refusal)}
    if isinstance(refusal, InvalidCommand):
        reply.update(field=refusal.field_name, message=refusal.message)
    if isinstance(refusal, IdempotencyKeyReused):
        reply.update(differs=list(refusal.differs))
    return reply


def refusal_of(reply: dict[str, Any]) -> DomainError:
    """The refusal an owner replied with, as the same class with the same details."""
    kind = _REFUSALS[reply["refused"]]
    if kind is InvalidCommand:
        return InvalidCommand(reply["field"], reply["message"])
    if kind is IdempotencyKeyReused:
        return IdempotencyKeyReused(reply["message"], tuple(reply.get("differs") or ()))
    return kind(reply["message"])


class Ownership(ConsumerRebalanceListener):
    """The partitions this replica decides for, with the hand-over rules of the module docstring."""

    def __init__(
        self,
        positions: LogPositions,
        log_end: Callable[[list[int]], Awaitable[dict[int, int]]],
        changelog: ChangelogWriter | None = None,
    ) -> None:
        self._positions = positions
        self._log_end = log_end
        #: The owner of a partition is also the writer of its changelog (intake.tickets).
        self._changelog = changelog
        self._read_before_deciding: dict[int, int] = {}
        self._in_flight: Tally[int] = Tally()
        self._settled = asyncio.Condition()
        self.joined = False

    def owns(self, partition: int) -> bool:
        return partition in self._read_before_deciding

    async def read_to_end(self, partition: int, timeout_s: float) -> None:
        """Return once this replica has read `partition` of tickets.events as far as it reaches now: what another
        replica has acknowledged is then known here too (read-your-writes across replicas)."""
        try:
            async with asyncio.timeout(timeout_s):
                ends = await self._log_end([partition])
                await self._positions.reached(partition, ends[partition])
        except TimeoutError:
            raise NotReady("intake is still reading the ticket log; retry shortly") from None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        partitions = {tp.partition for tp in revoked}
        for partition in partitions:
            self._read_before_deciding.pop(partition, None)
        if self._changelog is not None:
            self._changelog.give_up(partitions)
        async with self._settled:
            await self._settled.wait_for(lambda: not any(self._in_flight[p] for p in partitions))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        ends = await self._log_end([tp.partition for tp in assigned])
        self._read_before_deciding.update(ends)
        if self._changelog is not None:
            self._changelog.take(ends)
        self.joined = True
        log.info("owning ticket partitions", extra={"partitions": sorted(ends)})

    @contextlib.asynccontextmanager
    async def deciding(self, partition: int) -> AsyncIterator[bool]:
        """Yields True while this replica may decide for `partition` (and holds the hand-over until done)."""
        offset = self._read_before_deciding.get(partition)
        if offset is None:
            yield False
            return
        self._in_flight[partition] += 1
        try:
            await self._positions.reached(partition, offset)
            yield self.owns(partition)
        finally:
            self._in_flight[partition] -= 1
            async with self._settled:
                self._settled.notify_all()


class CommandBus:
    """Decides a command here when this replica owns its ticket, or carries it to the owner and back."""

    def __init__(
        self,
        ledger: TicketLedger,
        ownership: Ownership,
        answer_within_s: float = FORWARD_TIMEOUT_S,
        personal: PersonalData = PLAIN,
    ) -> None:
        """`personal`: seals a call carrying someone's words under their key (intake.commands is a topic too)."""
        self.replica_id = str(uuid.uuid4())
        self._personal = personal
        self.producer: AIOKafkaProducer | None = None
        self.partitions = 0  # of tickets.events, known once connected
        self.listening = False
        self._ledger = ledger
        self._ownership = ownership
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: How long a forwarded command may wait for the owner's reply, and then for this replica's copy of the log.
        self._answer_within_s = answer_within_s

    def fresh_ticket_id(self) -> str:
        """A new ticket's random id, drawn so that its partition is one this replica owns (when it owns any): the
        creation is then decided here, without a round trip through intake.commands. Each draw lands on an owned
        partition with probability owned/partitions, so a few draws do; after MAX_DRAWS the last one is used and
        the creation is carried to its owner as any command is."""
        candidate = str(uuid.uuid4())
        for _ in range(MAX_DRAWS):
            if not self.partitions or self._ownership.owns(partition_of(candidate, self.partitions)):
                break
            candidate = str(uuid.uuid4())
        return candidate

    async def execute(self, command: Command, context: CommandContext) -> tuple[domain.Ticket, bool]:
        """The ticket after `command` and whether the command had been carried out before (a replay)."""
        local = await self.decide_if_owner(command, context)
        if local is not None:
            COMMANDS.labels("here").inc()
            return local
        COMMANDS.labels("forwarded").inc()
        reply = await self._ask_owner(command, context)
        if "refused" in reply:
            raise refusal_of(reply)
        try:
            # Bounded: this replica's reader of the log may be behind (a slow broker); the caller gets a 503 instead of
            # a request that never ends. The change is made: a retry under its key is answered with it.
            await asyncio.wait_for(self._ledger.reached(command.ticket_id, reply["version"]), self._answer_within_s)
        except TimeoutError:
            raise NotReady("the change was made, but this replica has not read it yet; retry shortly") from None
        return self._ledger.at_version(command.ticket_id, reply["version"]), reply["replayed"]

    async def decide_if_owner(self, command: Command, context: CommandContext) -> tuple[domain.Ticket, bool] | None:
        if not self.partitions:
            raise NotReady("intake is still connecting to Kafka; retry shortly")
        async with self._ownership.deciding(partition_of(command.ticket_id, self.partitions)) as owner:
            if not owner:
                return None
            return await self._ledger.execute(command, context)

    async def lookup(self, ticket_id: str) -> domain.Ticket | None:
        """The ticket as this replica knows it; on a miss, after reading its partition to the current end, since
        another replica may have just created it. Until the log's partitions are known (the replica has just
        started), which partition that is cannot be told: NotReady, not None, which would tell a caller that a ticket
        another replica acknowledged a moment ago does not exist."""
        ticket = self._ledger.get(ticket_id)
        if ticket is None:
            if not self.partitions:
                raise NotReady("intake is still connecting to Kafka; retry shortly")
            await self._ownership.read_to_end(partition_of(ticket_id, self.partitions), timeout_s=5)
            ticket = self._ledger.get(ticket_id)
        return ticket

    async def _ask_owner(self, command: Command, context: CommandContext) -> dict[str, Any]:
        if self.producer is None or not self.listening:
            raise NotReady("intake is still connecting to its peers; retry shortly")
        call_id = str(uuid.uuid4())
        answer = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        try:
            call = encode_call(command, context)
            if (person := domain.whose_words_in(command, self._ledger.get(command.ticket_id))) is not None:
                call = (await self._personal.seal(call.decode(), person)).encode()
            await self.producer.send_and_wait(
                INTAKE_COMMANDS,
                call,
                key=command.ticket_id.encode(),
                headers=[("reply_to", self.replica_id.encode()), ("call_id", call_id.encode())],
            )
            return await asyncio.wait_for(answer, self._answer_within_s)
        except TimeoutError:
            raise NotReady("the owner of this ticket did not answer in time; retry shortly") from None
        finally:
            self._waiting.pop(call_id, None)

    async def serve(self, consumer: AIOKafkaConsumer) -> None:
        """As an owner: decide the commands other replicas send, in order per ticket, and answer each."""
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            by_ticket: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
            for records in batches.values():
                for record in records:
                    by_ticket[record.key].append(record)
            await asyncio.gather(*(self._serve_in_order(records) for records in by_ticket.values()))
            if batches:
                await commit_unless_rebalanced(consumer)

    async def _serve_in_order(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            call_id, reply_to = header(record, "call_id"), header(record, "reply_to")
            try:
                if call_id is None or reply_to is None:
                    raise InvalidEvent("headers: a call needs call_id and reply_to")
                command, context = decode_call(await self._opened(record.value or b""))
            except InvalidEvent as error:
                await self._dead_letter(record, error.reason)
                continue
            except KeyNotYetRead:  # the caller is told to retry; nothing was decided
                assert call_id is not None and reply_to is not None
                await self._reply(reply_to, call_id, refusal_reply(NotReady("a data key is still being read")))
                continue
            with correlated([context.correlation_id]):  # the caller's flow: in logs, and in what is appended
                try:
                    decided = await self.decide_if_owner(command, context)
                except DomainError as refusal:
                    reply = refusal_reply(refusal)
                else:
                    if decided is None:  # the partition moved on meanwhile; its new owner gets the command again
                        return
                    ticket, replayed = decided
                    reply = {"version": ticket.version, "replayed": replayed}
                await self._reply(reply_to, call_id, reply)

    async def _reply(self, reply_to: str, call_id: str, reply: dict[str, Any]) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(
            INTAKE_REPLIES, json.dumps({"call_id": call_id, **reply}).encode(), key=reply_to.encode()
        )

    async def _opened(self, call: bytes) -> bytes:
        if not call.startswith(SEALED_PREFIX.encode()):
            return call
        opened = await self._personal.open(call.decode())
        if opened == ERASED:
            raise InvalidEvent("a call carrying the words of a person erased since")
        return opened.encode()

    async def listen(self, consumer: AIOKafkaConsumer) -> None:
        """Take the answers meant for this replica off intake.replies (read by every replica, from the end)."""
        consumer.subscribe([INTAKE_REPLIES])
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            if not self.listening and consumer.assignment():
                for partition in consumer.assignment():
                    await consumer.position(partition)  # fixes "from the end" now, before any call goes out
                self.listening = True
            for records in batches.values():
                for record in records:
                    if record.key != self.replica_id.encode():
                        continue  # another replica's: it reads (or dead-letters) it
                    try:
                        reply = decode_reply(record.value or b"")
                    except InvalidEvent as error:
                        await self._dead_letter(record, error.reason)
                        continue
                    waiting = self._waiting.get(reply["call_id"])
                    if waiting is not None and not waiting.done():
                        waiting.set_result(reply)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        """As answering does, this needs the producer: an owner may read a call before its producer has connected
        (then, as for an answer, the assertion fails and the owner's task ends; readiness says so)."""
        assert self.producer is not None, "dead-lettering before the broker answered"
        await dead_letter(self.producer, record, reason, "intake")


async def tickets_log_end(consumer: AIOKafkaConsumer, partitions: list[int]) -> dict[int, int]:
    ends = await consumer.end_offsets([TopicPartition(TICKETS_EVENTS, p) for p in partitions])
    return {tp.partition: offset for tp, offset in ends.items()}
