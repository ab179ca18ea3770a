"""The ledger serialises commands per ticket and replays its own log harmlessly (with an in-memory log)."""

import asyncio
import uuid

import pytest

from intake.domain import CommandContext
from intake.ledger import NotReady, TicketLedger
from tests.builders import T0
from tests.unit.test_intake_domain import create, worklog


class SlowLog:
    """Records appends; yields to the event loop mid-append so concurrent commands really interleave."""

    def __init__(self):
        self.events = []

    async def append(self, events):
        await asyncio.sleep(0)
        self.events.extend(events)


def context():
    return CommandContext(now=T0, correlation_id="c", command_id=str(uuid.uuid4()))


@pytest.fixture
def ledger():
    ledger = TicketLedger(SlowLog())
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
    for event in ledger._event_log.events:
        ledger.apply(event)
    assert ledger.get("t-1") == before


def test_a_ledger_that_has_not_read_its_log_answers_nothing():
    ledger = TicketLedger(SlowLog())
    with pytest.raises(NotReady):
        ledger.get("t-1")
    with pytest.raises(NotReady):
        asyncio.run(ledger.execute(create(), context()))
