"""The worklog ledger: its plain sums equal the newest version of every worklog, voided ones counting nothing,
whatever order the versions arrive in, however they are batched, and however often they are delivered."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import timedelta

import pytest

from reporting.business_hours import ClientCalendars
from reporting.ledger import LedgerRow, ledger_rows, ledger_rows_of
from reporting.worklogs import WorklogRow, worklog_rows
from tests.builders import T0, a_worklog_recorded
from tests.reporting_events import a_worklog_corrected, a_worklog_voided, read
from ticketstream_shared.contract import Envelope


def versions(event: Envelope, offset: int) -> WorklogRow:
    (row,) = worklog_rows(read(event, offset=offset), ClientCalendars())
    return row


def newest_rows(ledger: Iterable[LedgerRow]) -> dict[uuid.UUID, LedgerRow]:
    """What the warehouse's lookup returns: per worklog, the row of the newest version, +1 over -1."""
    newest: dict[uuid.UUID, LedgerRow] = {}
    for row in sorted(ledger, key=lambda row: (row.aggregate_version, row.sign)):
        newest[row.worklog_id] = row
    return newest


def sums(ledger: Iterable[LedgerRow]) -> dict[tuple[str, object], tuple[int, int]]:
    """(minutes, worklogs) per technician and day, zero sums left out."""
    totals: dict[tuple[str, object], tuple[int, int]] = {}
    for row in ledger:
        minutes, count = totals.get((row.technician_id, row.performed_at.date()), (0, 0))
        totals[(row.technician_id, row.performed_at.date())] = (minutes + row.minutes, count + row.sign)
    return {key: value for key, value in totals.items() if value != (0, 0)}


RECORDED = a_worklog_recorded("T-1", 2, minutes=30)
OTHER = a_worklog_recorded("T-1", 3, minutes=45, technician_id="tech-2")
HISTORY: list[Envelope] = [
    RECORDED,
    OTHER,
    a_worklog_corrected(RECORDED, 4, minutes=50, performed_at=T0 + timedelta(days=3)),
    a_worklog_corrected(RECORDED, 5, minutes=20, technician_id="tech-3"),
    a_worklog_voided(OTHER, 6),
]
#: The newest version of each: RECORDED as corrected last (20 minutes by tech-3 on T0's day), OTHER voided.
EXPECTED = {("tech-3", T0.date()): (20, 1)}


def test_a_correction_cancels_the_version_it_replaces_and_a_void_cancels_the_last() -> None:
    ledger = ledger_rows_of([versions(event, offset) for offset, event in enumerate(HISTORY)], {})

    assert [(row.sign, row.minutes) for row in ledger] == [(1, 30), (1, 45), (-1, -30), (1, 50), (-1, -50), (1, 20),
                                                          (-1, -45)]  # fmt: skip
    assert sums(ledger) == EXPECTED


def test_a_version_the_ledger_holds_already_writes_nothing() -> None:
    recorded = versions(RECORDED, 0)
    (row,) = ledger_rows(None, recorded)

    assert ledger_rows(row, recorded) == []
    assert ledger_rows(row, versions(a_worklog_corrected(RECORDED, 1), 1)) == []  # older than the newest


def test_a_void_of_a_worklog_never_counted_is_remembered_so_its_late_recording_counts_nothing() -> None:
    (void,) = ledger_rows(None, versions(a_worklog_voided(RECORDED, 3), 1))

    assert (void.sign, void.minutes) == (0, 0)
    assert ledger_rows(void, versions(RECORDED, 0)) == []


@pytest.mark.parametrize("seed", range(25))
def test_any_order_batching_and_redelivery_gives_the_newest_versions(seed: int) -> None:
    rng = random.Random(seed)
    deliveries = [versions(event, offset) for offset, event in enumerate(HISTORY)]
    arriving = rng.sample(deliveries, len(deliveries)) + rng.choices(deliveries, k=rng.randint(0, 6))
    ledger: list[LedgerRow] = []
    while arriving:
        size = rng.randint(1, 4)
        batch, arriving = arriving[:size], arriving[size:]
        ledger += ledger_rows_of(batch, newest_rows(ledger))

    assert sums(ledger) == EXPECTED
