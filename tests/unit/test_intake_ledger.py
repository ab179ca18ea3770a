"""The ledger serialises commands per ticket and replays its own log harmlessly (with an in-memory log)."""

import asyncio
import json
import uuid
from datetime import timedelta

import pytest

from intake.domain import (
    ChangeStatus,
    CommandContext,
    IdempotencyKeyReused,
    NotReady,
    TicketUnreadable,
    child_id_for,
    decide,
    fold,
)
from intake.idempotency import RequestKeys
from intake.ledger import TicketLedger
from intake.log import EVENTS_UNREADABLE, Landed, follow
from intake.ticket_store import VERSIONS_CONTESTED, Filters, Logged, TicketStore
from tests.builders import T0
from tests.fakes_kafka import FakeBroker, FakeConsumer
from tests.polling import until
from tests.unit.test_intake_domain import create, keyed, worklog
from ticketstream_shared.contract import InvalidEvent, TicketStatus, encode, read_logged
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.store import Changes, LocalStore


class SlowLog:
    """Records appends, as the log's one writer; yields to the event loop mid-append so concurrent commands really
    interleave."""

    def __init__(self):
        self.events = []

    def read_so_far(self):
        return {}

    async def append(self, events, read):
        await asyncio.sleep(0)
        self.events.extend(events)
        return Landed(0, len(self.events) - 1, alone=True)

    async def read_back(self, landed):
        raise AssertionError("the log's one writer never reads back")


def context():
    return CommandContext(now=T0, correlation_id="c", command_id=str(uuid.uuid4()))


@pytest.fixture
def ledger():
    return _ledger()


def a_ledger(log, now=lambda: T0):
    """A ledger as intake builds one, over a local store of its own (a temporary directory)."""
    store = LocalStore(None)
    return TicketLedger(log, RequestKeys(timedelta(hours=24), now, store), TicketStore(store), recent=100)


def read_back(ledger, *events):
    """What following the log does with `events`: one write of the store."""
    changes = Changes()
    for event in events:
        raw = encode(event)
        ledger.apply(changes, read_logged(TICKETS_EVENTS, raw), raw)
    ledger.tickets.store.write(changes)


def _ledger(log=None, now=lambda: T0):
    ledger = a_ledger(log or SlowLog(), now)
    ledger.caught_up.set()
    return ledger


async def _concurrent_worklogs(ledger, count):
    await ledger.execute(create(), context())
    await asyncio.gather(*(ledger.execute(worklog(minutes=1), context()) for _ in range(count)))


def test_concurrent_commands_on_one_ticket_get_contiguous_versions(ledger):
    asyncio.run(_concurrent_worklogs(ledger, 50))
    versions = [event.aggregate_version for event in ledger._event_log.events]
    assert versions == list(range(1, 52))
    assert ledger.get("t-1").worklog_minutes == 50
    assert ledger._in_flight == {}


def test_reading_back_its_own_events_changes_nothing(ledger):
    asyncio.run(_concurrent_worklogs(ledger, 3))
    before = ledger.get("t-1")
    read_back(ledger, *ledger._event_log.events)
    assert ledger.get("t-1") == before


def test_a_ledger_that_has_not_read_its_log_answers_nothing():
    ledger = a_ledger(SlowLog())
    with pytest.raises(NotReady):
        ledger.get("t-1")
    with pytest.raises(NotReady):
        asyncio.run(ledger.execute(create(), context()))


def _keyed_worklog(minutes=30, ticket_id="t-1", caller="portal", key="k-1"):
    command = worklog(ticket_id=ticket_id, minutes=minutes, worklog_id=child_id_for(caller, ticket_id, key))
    return command, keyed(command, key=key, caller=caller)


async def _keyed_story(ledger):
    await ledger.execute(create(), context())
    await ledger.execute(create(ticket_id="t-2"), context())
    first, replayed = await ledger.execute(*_keyed_worklog())
    await ledger.execute(worklog(minutes=5), context())
    again, again_replayed = await ledger.execute(*_keyed_worklog())
    return first, replayed, again, again_replayed


def test_a_keyed_retry_answers_with_the_first_outcome_and_adds_nothing(ledger):
    first, replayed, again, again_replayed = asyncio.run(_keyed_story(ledger))
    assert (replayed, again_replayed) == (False, True)
    assert again == first and again.version == 2
    assert ledger.get("t-1").worklog_minutes == 35


@pytest.mark.parametrize(
    ("command", "differs"),
    [
        (lambda: _keyed_worklog(minutes=45), ("body.minutes",)),
        (lambda: _keyed_worklog(ticket_id="t-2"), ("target",)),
        (
            lambda: (lambda c: (c, keyed(c)))(ChangeStatus(ticket_id="t-1", status="resolved")),
            ("operation",),
        ),
    ],
    ids=["other minutes", "another ticket", "another operation"],
)
def test_a_key_reused_for_anything_else_is_refused_naming_what_differs(ledger, command, differs):
    asyncio.run(_keyed_story(ledger))
    with pytest.raises(IdempotencyKeyReused) as refused:
        asyncio.run(ledger.execute(*command()))
    assert refused.value.differs == differs
    assert ledger.get("t-1").worklog_minutes == 35


def test_another_caller_may_use_the_same_key(ledger):
    asyncio.run(_keyed_story(ledger))
    _, replayed = asyncio.run(ledger.execute(*_keyed_worklog(minutes=45, caller="erp")))
    assert not replayed and ledger.get("t-1").worklog_minutes == 80


def test_keys_are_known_to_a_ledger_rebuilt_from_the_log_until_their_ttl_passes(ledger):
    asyncio.run(_keyed_story(ledger))
    now = [T0]
    rebuilt = _ledger(now=lambda: now[0])
    read_back(rebuilt, *ledger._event_log.events)
    with pytest.raises(IdempotencyKeyReused):
        asyncio.run(rebuilt.execute(*_keyed_worklog(ticket_id="t-2")))
    now[0] = T0 + timedelta(hours=24, seconds=1)
    asyncio.run(rebuilt.execute(*_keyed_worklog(ticket_id="t-2")))
    assert rebuilt.get("t-2").worklog_minutes == 30


def test_a_version_decided_elsewhere_is_waited_for_until_the_log_brings_it():
    """Another replica decided it: reached() returns once this ledger has read it back, and every waiter wakes."""

    async def story():
        source = _ledger()
        await _concurrent_worklogs(source, 2)
        events = source._event_log.events
        reader = _ledger()
        waiting = [asyncio.create_task(reader.reached("t-1", version)) for version in (1, 3, 3)]
        await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)
        read_back(reader, events[0])
        await asyncio.wait_for(waiting[0], 1)
        read_back(reader, events[1])
        await asyncio.sleep(0)
        assert not waiting[1].done() and not waiting[2].done()
        read_back(reader, events[2])
        await asyncio.wait_for(asyncio.gather(*waiting[1:]), 1)
        assert reader.get("t-1").version == 3 and reader._waiting == 0

    asyncio.run(story())


def test_a_logged_event_missing_a_field_or_outside_the_contract_is_refused_naming_it_and_nothing_is_kept(ledger):
    """The log is read back without the contract's models (read_logged): a field the ledger needs and does not find,
    or finds outside what the contract allows, is named as decode_event names it, before anything is written."""
    [created] = decide(None, create(), context())
    for field, written in (("requester_id", None), ("priority", "P9")):
        payload = json.loads(encode(created))
        if written is None:
            del payload["data"][field]
        else:
            payload["data"][field] = written
        raw = json.dumps(payload).encode()
        changes = Changes()
        with pytest.raises(InvalidEvent) as refused:
            ledger.apply(changes, read_logged(TICKETS_EVENTS, raw), raw)
        assert f"data.{field}" in refused.value.reason and len(changes) == 0


def test_an_event_another_writer_put_on_the_log_is_judged_whole_and_one_refused_is_not_kept(ledger):
    """Intake is the log's one writer: an event of another writer's is read through the contract's models, so one
    the contract refuses in a field the ledger does not file it by (a title too long) is refused, not kept to fail
    every later load of its ticket."""
    [created] = decide(None, create(), context())
    payload = json.loads(encode(created))
    payload.update(producer="mailer", data={**payload["data"], "title": "x" * 201})
    raw = json.dumps(payload).encode()
    changes = Changes()
    with pytest.raises(InvalidEvent) as refused:
        ledger.apply(changes, read_logged(TICKETS_EVENTS, raw), raw)
    assert "data.title" in refused.value.reason and len(changes) == 0
    assert ledger.tickets.load(created.ticket_id) is None


def test_a_second_event_at_a_version_is_ignored_and_counted_and_a_redelivery_is_not(ledger):
    """Two replicas deciding for one ticket (one the group no longer counts as its owner, which has not noticed yet)
    may both append at the same version: the first in the log stands, and the other is said, not silently lost."""
    [created] = decide(None, create(), context())
    [first] = decide(fold(None, [created]), worklog(minutes=30), context())
    [second] = decide(fold(None, [created]), worklog(minutes=45), context())
    assert first.aggregate_version == second.aggregate_version == 2 and first.event_id != second.event_id
    contested = VERSIONS_CONTESTED._value.get()

    read_back(ledger, created, first, first)  # a redelivery: the same event again
    assert VERSIONS_CONTESTED._value.get() == contested
    read_back(ledger, second)

    assert VERSIONS_CONTESTED._value.get() == contested + 1
    ledger.forget_opened()
    [logged] = ledger.get(created.ticket_id).worklogs.values()
    assert logged.minutes == 30


def test_a_ticket_whose_stored_history_this_intake_cannot_read_is_refused_saying_why():
    """A store a newer intake wrote (an event of a schema_version this one does not know): the ticket is neither
    answered nor decided on, and the refusal names the ticket and the event's fault, not a server error."""
    log = SlowLog()
    ledger = _ledger(log)
    [created] = decide(None, create(), context())
    raw = encode(created)
    newer = json.dumps({**json.loads(raw), "schema_version": 99}).encode()
    changes = Changes()
    ledger.tickets.apply(changes, Logged.of(read_logged(TICKETS_EVENTS, raw)), newer)
    ledger.tickets.store.write(changes)
    with pytest.raises(TicketUnreadable) as refused:
        ledger.get(created.ticket_id)
    assert f"ticket {created.ticket_id}: its history holds an event" in str(refused.value)
    assert "schema_version" in str(refused.value)
    with pytest.raises(TicketUnreadable):
        asyncio.run(ledger.execute(worklog(), context()))
    assert log.events == []


@pytest.mark.parametrize(
    "written_otherwise",
    [
        lambda payload: payload["data"].pop("status") and payload["data"].pop("channel"),
        lambda payload: payload.update(aggregate_version=1.0),
        lambda payload: payload.update(occurred_at=int(T0.timestamp())),
    ],
    ids=["defaults left out", "version as 1.0", "time in seconds"],
)
def test_an_event_the_contract_reads_otherwise_than_intake_writes_it_is_filed_as_the_contract_reads_it(
    ledger, written_otherwise
):
    """Another writer may leave out what has a default, or write a value the contract reads leniently: the ledger
    files the event as decode_event reads it, not under a key or a summary of its own making."""
    [created] = decide(None, create(), context())
    payload = json.loads(encode(created))
    written_otherwise(payload)
    raw = json.dumps(payload).encode()
    changes = Changes()
    ledger.apply(changes, read_logged(TICKETS_EVENTS, raw), raw)
    ledger.tickets.store.write(changes)
    assert ledger.tickets.version(created.ticket_id) == 1
    as_intake_writes_it = encode(created)
    assert ledger.apply(Changes(), read_logged(TICKETS_EVENTS, as_intake_writes_it), as_intake_writes_it) == set()
    assert ledger.get(created.ticket_id) == fold(None, [created])
    assert ledger.tickets.find(Filters(status=TicketStatus.NEW), None, 10) == [created.ticket_id]


def test_a_log_read_past_an_unreadable_event_holds_the_rest():
    """Following the log skips what it cannot read, counts it, and goes on with the next event."""
    broker, ledger = FakeBroker(), a_ledger(SlowLog())
    [created] = decide(None, create(), context())
    broken = json.loads(encode(created))
    broken["aggregate_version"] = "one"
    skipped = EVENTS_UNREADABLE.labels(TICKETS_EVENTS)._value.get()
    for value in (json.dumps(broken).encode(), encode(created)):
        broker.append(TICKETS_EVENTS, value, key=created.ticket_id.encode())
    store = ledger.tickets.store

    async def read() -> None:
        following = asyncio.create_task(
            follow(FakeConsumer(broker), TICKETS_EVENTS, store, ledger.apply, ledger.caught_up)
        )
        await until(lambda: ledger.caught_up.is_set())
        following.cancel()

    asyncio.run(read())
    assert ledger.get(created.ticket_id) == fold(None, [created])
    assert EVENTS_UNREADABLE.labels(TICKETS_EVENTS)._value.get() == skipped + 1


class SharedLog(SlowLog):
    """A log another writer appends to as well, which this replica's reader never gets to."""

    async def append(self, events, read):
        landed = await super().append(events, read)
        return landed._replace(alone=False)

    async def read_back(self, landed):
        await asyncio.Event().wait()


def test_a_decision_not_read_back_in_time_is_a_retry_not_an_acknowledgement(monkeypatch):
    monkeypatch.setattr("intake.ledger.READ_BACK_WITHIN_S", 0.05)
    ledger = _ledger(SharedLog())
    with pytest.raises(NotReady, match="not read it back to know it stands"):
        asyncio.run(ledger.execute(create(), context()))
    assert ledger.get("t-1") is None, "what is not known to stand is not taken as the ticket"
